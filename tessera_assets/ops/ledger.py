"""The estimate ledger: what the planner expected of every partition beside what it measured,
and the planner rates corrected from it (docs/operations.md, "Estimate ledger").

Each ``embeddings`` partition records one :class:`LedgerEntry` at
``{root}/_ledger/{asset}/{tile}/{year}.json`` (a re-run replaces it, so the ledger holds the
latest run of every partition and concurrent runs never write the same file). Seconds are
*device* seconds — GPU-seconds on a GPU, CPU core-seconds on CPUs, the unit of
``planner.px_per_s`` — so estimate and actual compare directly.

:func:`calibration` turns the ledger into a measured throughput per (family, device): the work
the estimates priced (estimate seconds × the rate they used) over the measured seconds.
``tessera-assets ledger --calibrate`` stores it at ``{root}/_ledger/calibration.json`` and
:func:`calibrated` puts it in place of ``planner.px_per_s``, so the next plan, budget verdict
and estimate use the measured rates (and re-calibrating never compounds).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import fsspec

if TYPE_CHECKING:
    from tessera_assets.config import PlannerSettings

LEDGER_PREFIX = "_ledger"
CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class LedgerEntry:
    """One partition of one asset: the planner's estimate and the measurement."""

    asset: str
    tile: str
    year: int
    family: str
    device: str
    pixels: int
    estimate_seconds: float
    actual_seconds: float
    estimate_bytes: int
    actual_bytes: int
    estimate_usd: float
    actual_usd: float
    rate_px_per_s: float
    """The ``planner.px_per_s`` the estimate used."""
    recorded_at: str = ""
    run_id: str = ""

    @property
    def seconds_error(self) -> float:
        """Relative error of the estimate: (estimate − actual) / actual."""
        return relative_error(self.estimate_seconds, self.actual_seconds)


def relative_error(estimate: float, actual: float) -> float:
    return (estimate - actual) / actual if actual else 0.0


def device_cost(seconds: float, device: str, planner: PlannerSettings) -> float:
    """Dollars of ``seconds`` device-seconds at the planner's hourly prices."""
    hourly = planner.gpu_hour_usd if device == "gpu" else planner.cpu_hour_usd
    return seconds / 3600.0 * hourly


def _ledger_root(root: str) -> str:
    return f"{root.rstrip('/')}/{LEDGER_PREFIX}"


def entry_url(root: str, asset: str, tile: str, year: int) -> str:
    return f"{_ledger_root(root)}/{asset}/{tile}/{year}.json"


def record(root: str, entry: LedgerEntry, storage_options: dict[str, Any] | None = None) -> str:
    """Write (or replace) the entry of its partition; returns its URL."""
    url = entry_url(root, entry.asset, entry.tile, entry.year)
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "w") as f:
        f.write(json.dumps(asdict(entry), indent=1))
    return url


def read_entries(root: str, storage_options: dict[str, Any] | None = None,
                 asset: str | None = None) -> list[LedgerEntry]:
    """Every recorded entry (of ``asset`` if given), sorted by asset, tile and year."""
    fs, path = fsspec.core.url_to_fs(_ledger_root(root), **(storage_options or {}))
    pattern = f"{path}/{asset or '*'}/*/*.json"
    out = []
    for p in fs.glob(pattern):
        with fs.open(p) as f:
            out.append(LedgerEntry(**json.load(f)))
    return sorted(out, key=lambda e: (e.asset, e.tile, e.year))


def totals(entries: list[LedgerEntry]) -> dict[str, Any]:
    """Sums over ``entries`` and the relative error of each summed estimate."""
    est_s = sum(e.estimate_seconds for e in entries)
    act_s = sum(e.actual_seconds for e in entries)
    est_b = sum(e.estimate_bytes for e in entries)
    act_b = sum(e.actual_bytes for e in entries)
    est_c = sum(e.estimate_usd for e in entries)
    act_c = sum(e.actual_usd for e in entries)
    return {
        "partitions": len(entries),
        "estimate_seconds": est_s, "actual_seconds": act_s,
        "seconds_error": relative_error(est_s, act_s),
        "estimate_bytes": est_b, "actual_bytes": act_b,
        "bytes_error": relative_error(est_b, act_b),
        "estimate_usd": est_c, "actual_usd": act_c,
        "cost_error": relative_error(est_c, act_c),
    }


def calibration(entries: list[LedgerEntry]) -> dict[str, dict[str, float]]:
    """Measured ``{family: {device: px_per_s}}``: Σ priced work / Σ measured seconds over the
    entries with both."""
    sums: dict[tuple[str, str], list[float]] = {}
    for e in entries:
        if e.estimate_seconds > 0 and e.actual_seconds > 0 and e.rate_px_per_s > 0:
            acc = sums.setdefault((e.family, e.device), [0.0, 0.0])
            acc[0] += e.estimate_seconds * e.rate_px_per_s
            acc[1] += e.actual_seconds
    out: dict[str, dict[str, float]] = {}
    for (family, device), (work, seconds) in sorted(sums.items()):
        out.setdefault(family, {})[device] = work / seconds
    return out


def save_calibration(root: str, rates: dict[str, dict[str, float]],
                     storage_options: dict[str, Any] | None = None) -> str:
    url = f"{_ledger_root(root)}/{CALIBRATION_FILE}"
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "w") as f:
        f.write(json.dumps(rates, indent=1, sort_keys=True))
    return url


def load_calibration(root: str, storage_options: dict[str, Any] | None = None
                     ) -> dict[str, dict[str, float]]:
    """The stored measured rates, ``{}`` when the ledger was never calibrated."""
    url = f"{_ledger_root(root)}/{CALIBRATION_FILE}"
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    if not fs.exists(path):
        return {}
    with fs.open(path) as f:
        return json.load(f)


def calibrated(planner: PlannerSettings, rates: dict[str, dict[str, float]]
               ) -> PlannerSettings:
    """``planner`` with the measured ``rates`` in place of its ``px_per_s`` entries."""
    if not rates:
        return planner
    from tessera_assets.ops.planner import normalise_family

    table = {normalise_family(fam): dict(r) for fam, r in planner.px_per_s.items()}
    for fam, measured in rates.items():
        table.setdefault(normalise_family(fam), {}).update(
            {device: rate for device, rate in measured.items() if rate > 0})
    return planner.model_copy(update={"px_per_s": table})

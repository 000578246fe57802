"""Backfill planning: tiles × years × scenes → bytes, CPU/GPU-hours and dollars (DESIGN §8).

Before a backfill starts, the planner counts the scenes each tile-year would read (one catalog
search per collection over the union of the tiles, mapped to tiles with the same spatial index
the STAC sensor uses) and prices them with :class:`~tessera_assets.config.PlannerSettings`:

- input bytes  = Σ_sensor scenes × tile pixels × ``input_bytes_per_px[sensor]``
- ingest CPU-s = Σ_sensor scenes × tile megapixels × ``ingest_cpu_s_per_mpx[sensor]``
- inference s  = tile pixels × ``embedded_fraction`` / ``px_per_s[family][device]``
  (GPU-seconds on ``device="gpu"``, CPU core-seconds on ``device="cpu"``)
- cost = GPU-h × ``gpu_hour_usd`` + CPU-h × ``cpu_hour_usd`` + input GB × ``egress_gb_usd``

The device is the one the inference service runs on (``planner.device="auto"``: GPU when
``inference.slot_resource`` is ``"GPU"``, else CPU cores), and the ``embeddings`` asset prices
with the device its actors report, so an estimate never assumes a GPU a run does not have.

The same per-tile-year estimate is recorded next to the measured runtime and bytes in every
partition's materialisation metadata and in the estimate ledger (:mod:`tessera_assets.ops.ledger`);
once calibrated (``tessera-assets ledger --calibrate``) the measured rates replace
``planner.px_per_s`` in every estimate (:func:`effective_planner`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from tessera_assets.catalog.base import Catalog
from tessera_assets.ops.scene_watch import TileIndex, holds, match_items, search_collection

if TYPE_CHECKING:
    from tessera_assets.config import InferenceSettings, PipelineSettings, PlannerSettings
    from tessera_assets.sources.manifest import SceneManifest

SENSORS = ("s2", "s1", "landsat")
CUBE_OF_SENSOR = {"s2": "s2_cube", "s1": "s1_cube", "landsat": "landsat_cube"}
EMBEDDING_BYTES_PER_PX = 128 + 4 + 2 + 2
"""int8 embedding + float32 scale + two uint16 observation counts (uncompressed)."""


class PlannerError(ValueError):
    """The planner cannot price this configuration (e.g. no throughput for the family)."""


@dataclass(frozen=True)
class Estimate:
    """What one tile-year (or a sum of them) is expected to cost."""

    scenes: dict[str, int]
    pixels: int
    input_bytes: float
    ingest_cpu_s: float
    inference_s: float
    cpu_hours: float
    gpu_hours: float
    compute_usd: float
    egress_usd: float

    @property
    def cost_usd(self) -> float:
        return self.compute_usd + self.egress_usd

    def __add__(self, other: Estimate) -> Estimate:
        return Estimate(
            scenes={s: self.scenes.get(s, 0) + other.scenes.get(s, 0) for s in SENSORS},
            pixels=self.pixels + other.pixels,
            input_bytes=self.input_bytes + other.input_bytes,
            ingest_cpu_s=self.ingest_cpu_s + other.ingest_cpu_s,
            inference_s=self.inference_s + other.inference_s,
            cpu_hours=self.cpu_hours + other.cpu_hours,
            gpu_hours=self.gpu_hours + other.gpu_hours,
            compute_usd=self.compute_usd + other.compute_usd,
            egress_usd=self.egress_usd + other.egress_usd,
        )

    def scaled(self, n: int) -> Estimate:
        """``n`` partitions like this one (the budget guard's extrapolation)."""
        return Estimate({s: v * n for s, v in self.scenes.items()}, self.pixels * n,
                        self.input_bytes * n, self.ingest_cpu_s * n, self.inference_s * n,
                        self.cpu_hours * n, self.gpu_hours * n, self.compute_usd * n,
                        self.egress_usd * n)


ZERO = Estimate({s: 0 for s in SENSORS}, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def normalise_family(name: str) -> str:
    """``"v2_nano"``, ``"V2-Nano"``, ``"1.1"`` → the planner's keys (``v2-nano``, ``v1.1``)."""
    key = name.strip().lower().replace("_", "-")
    return key if key.startswith("v") else f"v{key}"


def planning_family(inference: InferenceSettings) -> str:
    """The model family to price: the configured one, else one named in the model source
    (e.g. ``…/v2-medium.pt``), else v1.1 (the published global store's family)."""
    if inference.family:
        return normalise_family(inference.family)
    source = inference.model_source.lower().replace("_", "-")
    for fam in ("v2-nano", "v2-small", "v2-medium", "v2-large", "v1.1", "v1.0", "v1-1", "v1-0"):
        if fam in source:
            return normalise_family(fam.replace("v1-", "v1."))
    return "v1.1"


def inference_device(settings: PipelineSettings) -> str:
    """``"gpu"`` or ``"cpu"``: ``planner.device``, or for ``"auto"`` the device the inference
    service runs on (its actors take GPUs when ``inference.slot_resource`` is ``"GPU"``)."""
    if settings.planner.device != "auto":
        return settings.planner.device
    return "gpu" if settings.inference.slot_resource == "GPU" else "cpu"


def device_of(torch_device: str) -> str:
    """The planner's device of a torch device string (``"cuda:0"`` → ``"gpu"``)."""
    return "gpu" if torch_device.startswith("cuda") else "cpu"


def effective_planner(settings: PipelineSettings, device: str | None = None
                      ) -> PlannerSettings:
    """The planner settings every estimate uses: the device resolved (``device`` if given,
    else :func:`inference_device`) and the ledger's measured rates, if calibrated, in place
    of ``px_per_s``."""
    from tessera_assets.ops.ledger import calibrated, load_calibration

    planner = calibrated(settings.planner, load_calibration(settings.root,
                                                            settings.storage_options))
    return planner.model_copy(update={"device": device or inference_device(settings)})


def _device(planner: PlannerSettings) -> str:
    if planner.device == "auto":
        raise PlannerError("planner.device 'auto' must be resolved first (effective_planner)")
    return planner.device


def throughput(planner: PlannerSettings, family: str) -> float:
    table = {normalise_family(k): v for k, v in planner.px_per_s.items()}
    fam = normalise_family(family)
    device = _device(planner)
    if fam not in table or device not in table[fam]:
        raise PlannerError(f"no {device} throughput for family {family!r} in "
                           f"planner.px_per_s (known: {sorted(table)})")
    rate = float(table[fam][device])
    if rate <= 0:
        raise PlannerError(f"planner.px_per_s[{fam}][{device}] must be positive")
    return rate


def estimate_tile_year(scenes: Mapping[str, int], tile_size: int, planner: PlannerSettings,
                       family: str) -> Estimate:
    """The cost of one tile-year with ``scenes`` per sensor (see the module docstring)."""
    px = tile_size * tile_size
    mpx = px / 1e6
    counts = {s: int(scenes.get(s, 0)) for s in SENSORS}
    input_bytes = sum(counts[s] * px * planner.input_bytes_per_px.get(s, 0.0) for s in SENSORS)
    ingest_s = sum(counts[s] * mpx * planner.ingest_cpu_s_per_mpx.get(s, 0.0) for s in SENSORS)
    inference_s = px * planner.embedded_fraction / throughput(planner, family)
    if planner.device == "gpu":
        gpu_h, cpu_h = inference_s / 3600.0, ingest_s / 3600.0
    else:
        gpu_h, cpu_h = 0.0, (ingest_s + inference_s) / 3600.0
    compute = gpu_h * planner.gpu_hour_usd + cpu_h * planner.cpu_hour_usd
    egress = input_bytes / 1e9 * planner.egress_gb_usd
    return Estimate(counts, px, input_bytes, ingest_s, inference_s, cpu_h, gpu_h, compute,
                    egress)


def asset_estimates(scenes: Mapping[str, int], days: Mapping[str, int], tile_size: int,
                    planner: PlannerSettings, family: str) -> dict[str, dict[str, float]]:
    """Per-asset expectations of one tile-year, recorded beside the measured values:
    ``seconds`` (CPU core-seconds for cubes, device seconds for embeddings), ``input_bytes``
    (archive bytes read) and ``bytes`` (uncompressed output: days × bands × pixels)."""
    from tessera_assets.products.cubes import cube_schema

    px = tile_size * tile_size
    out: dict[str, dict[str, float]] = {}
    for sensor, cube in CUBE_OF_SENSOR.items():
        n = int(scenes.get(sensor, 0))
        per_day = _bytes_per_px_day(cube_schema(cube, [2020], tile_size))
        out[cube] = {
            "seconds": n * px / 1e6 * planner.ingest_cpu_s_per_mpx.get(sensor, 0.0),
            "input_bytes": n * px * planner.input_bytes_per_px.get(sensor, 0.0),
            "bytes": float(per_day * px * int(days.get(sensor, 0))),
        }
    out["embeddings"] = {
        "seconds": px * planner.embedded_fraction / throughput(planner, family),
        "bytes": float(EMBEDDING_BYTES_PER_PX * px),
    }
    return out


def manifest_estimates(manifest: SceneManifest, settings: PipelineSettings,
                       device: str | None = None) -> dict[str, dict[str, float]]:
    """:func:`asset_estimates` of a built manifest (its scenes and acquisition days) with the
    :func:`effective_planner` (on ``device`` when the run knows it)."""
    counts = manifest.counts()
    days = {sensor: len(manifest.days(sensor)) for sensor in counts}
    return asset_estimates(counts, days, settings.tile_size, effective_planner(settings, device),
                           planning_family(settings.inference))


def _bytes_per_px_day(schema) -> int:
    total = 0
    for var in schema.variables:
        bands = schema.dim_size("band") if "band" in var.dims else 1
        total += bands * np.dtype(var.dtype).itemsize
    return total


# ------------------------------------------------------------------------------ plans


@dataclass
class TileYearPlan:
    tile: str
    year: int
    estimate: Estimate


@dataclass
class Plan:
    """A priced backfill: every tile-year, totals and the budget verdict."""

    family: str
    device: str
    tile_size: int
    parts: list[TileYearPlan]
    budget_usd: float | None
    prices: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> Estimate:
        out = ZERO
        for p in self.parts:
            out = out + p.estimate
        return out

    @property
    def tiles(self) -> list[str]:
        return sorted({p.tile for p in self.parts})

    @property
    def years(self) -> list[int]:
        return sorted({p.year for p in self.parts})

    @property
    def over_budget(self) -> bool:
        return self.budget_usd is not None and self.total.cost_usd > self.budget_usd

    def refusal(self) -> str | None:
        """The error a backfill of this plan must stop with, or None when it may start."""
        if not self.over_budget:
            return None
        return (f"estimated cost ${self.total.cost_usd:,.2f} for {len(self.parts)} tile-years "
                f"exceeds the budget ${self.budget_usd:,.2f} (planner.budget_usd); raise the "
                "budget or plan fewer tiles/years")

    def summary(self) -> dict:
        t = self.total
        return {
            "tiles": len(self.tiles), "years": self.years, "tile_years": len(self.parts),
            "scenes": t.scenes, "input_bytes": t.input_bytes, "cpu_hours": t.cpu_hours,
            "gpu_hours": t.gpu_hours, "compute_usd": t.compute_usd,
            "egress_usd": t.egress_usd, "cost_usd": t.cost_usd, "family": self.family,
            "device": self.device, "budget_usd": self.budget_usd,
            "over_budget": self.over_budget,
        }


def plan_backfill(
    scene_counts: Mapping[tuple[str, int], Mapping[str, int]],
    settings: PipelineSettings,
) -> Plan:
    """Price every (tile, year) of ``scene_counts`` with the settings' planner prices (the
    :func:`effective_planner`)."""
    planner = effective_planner(settings)
    family = planning_family(settings.inference)
    parts = [TileYearPlan(tile, year, estimate_tile_year(counts, settings.tile_size, planner,
                                                         family))
             for (tile, year), counts in sorted(scene_counts.items())]
    prices = {"gpu_hour_usd": planner.gpu_hour_usd, "cpu_hour_usd": planner.cpu_hour_usd,
              "egress_gb_usd": planner.egress_gb_usd, "px_per_s": throughput(planner, family),
              "embedded_fraction": planner.embedded_fraction}
    return Plan(family, planner.device, settings.tile_size, parts, planner.budget_usd, prices)


def count_scenes(
    catalog: Catalog,
    tile_years: Mapping[str, Iterable[int]],
    collections: Mapping[str, str],
    *,
    max_s2_cloud_cover: float = 100.0,
) -> dict[tuple[str, int], dict[str, int]]:
    """Scenes per sensor for every (tile, year): one search per collection and search box
    over all the years, mapped to tiles by footprint and to years by solar day. Same-day
    duplicates are counted (each is read); every requested tile-year appears, with zeros."""
    index = TileIndex.build(tile_years)
    all_years = sorted({int(y) for ys in tile_years.values() for y in ys})
    out = {(t, int(y)): {s: 0 for s in SENSORS} for t, ys in tile_years.items() for y in ys}
    start = datetime(all_years[0], 1, 1) - timedelta(days=1)
    end = datetime(all_years[-1], 12, 31, 23, 59, 59) + timedelta(days=1)
    for sensor, collection in collections.items():
        if not holds(catalog, collection):  # e.g. a demo period without a Landsat pass
            continue
        items = search_collection(catalog, collection, index.boxes, start, end)
        for tile, year, _ in match_items(index, items, sensor,
                                         max_s2_cloud_cover=max_s2_cloud_cover):
            out[(tile, year)][sensor] += 1
    return out


def collections_of(settings: PipelineSettings) -> dict[str, str]:
    """Sensor → collection id of the configured catalog, sensors without one left out."""
    return settings.catalog.collections()  # each sensor's own catalog where it names one


def plan_tile_years(catalog: Catalog, tile_years: Mapping[str, Iterable[int]],
                    settings: PipelineSettings) -> Plan:
    """Count the scenes of every tile-year in ``catalog`` and price them: what ``plan`` prints
    and what a backfill is checked against."""
    counts = count_scenes(catalog, tile_years, collections_of(settings),
                          max_s2_cloud_cover=settings.catalog.max_s2_cloud_cover)
    return plan_backfill(counts, settings)

"""One tile-year at several tile sizes, one asset per fresh ``dagster`` process (issue 14).

Each case is a demo archive and settings for one tile-year of ``size`` px and ``days`` days of
scenes. Its assets run in order, each as ``dagster asset materialize`` in a new process against
a DAGSTER_HOME of the case, attached to ONE local Ray cluster started for the whole benchmark,
which holds the one embedding actor (created once, before the first run, and timed).

Per asset: the process's wall time; the asset step's own duration from the run's step stats
(overhead = wall − all steps of the run; the asset's checks are steps of the same run and are
reported apart); peak RSS of the process tree and of the Ray actor (psutil, every 0.1 s); bytes
read and written (``rchar``/``wchar`` of ``/proc/<pid>/io``, read when the process has exited but
is not yet reaped, so its reaped children are included; minus a no-op process that loads the same
code location, ``dagster definitions validate``), plus the actor's delta; the stored bytes of the
asset's store (one tile-year per root, so its region); the ``embeddings`` read-accounting
metadata where the run records it. Then least-squares fits over pixels and pixel-acquisitions,
and the 2048-px figures, measured or extrapolated (and labelled so).

    .venv/bin/python benchmarks/bench_tile_size.py --work /tmp/tilesize --out /tmp/tilesize.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psutil

INGEST = ["scene_manifest", "s2_cube", "s1_cube", "s2_masked", "s1_calibrated"]
EMBED = ["embeddings", "embeddings_coarse"]
DRIVER = {
    "scene_manifest": "s2+s1",
    "s2_cube": "s2",
    "s1_cube": "s1",
    "s2_masked": "s2",
    "s1_calibrated": "s1",
    "embeddings": "s2+s1",
    "embeddings_coarse": None,
}
"""The acquisitions each asset's work grows with (None: none, it reads embeddings only)."""
PRODUCTION = {"px": 2048, "s2": 140, "s1": 60}
MAX_AREA_M = 20_480.0
"""The demo generator's cap on an archive side: a 2048 px tile gets no margin around it."""
COMMIT = subprocess.run(
    ["git", "rev-parse", "--short", "HEAD"],
    capture_output=True,
    text=True,
    cwd=Path(__file__).parent,
).stdout.strip()
"""The commit measured (other work may be uncommitted beside it): each run records it, since a
--resume run may add runs of a later tree."""
GIB = 2**30
MIB = 2**20


@dataclass
class Case:
    size: int
    days: int
    assets: list[str]

    @property
    def name(self) -> str:
        return f"px{self.size}_d{self.days}"


@dataclass
class Measure:
    """What one process did: wall, peak RSS, bytes read and written."""

    wall_s: float = 0.0
    returncode: int = 0
    peak_rss_tree: int = 0
    rchar: int = 0
    wchar: int = 0
    actor_peak_rss: int = 0
    actor_rchar: int = 0
    actor_wchar: int = 0
    peak_at: float = 0.0
    started: float = 0.0
    ended: float = 0.0


@dataclass
class AssetRun:
    case: str
    size: int
    days: int
    asset: str
    acquisitions: dict[str, int]
    wall_s: float
    step_s: float | None
    checks_s: float
    overhead_s: float | None
    startup_s: float | None
    peak_rss_mib: float
    read_mb: float
    written_mb: float
    actor_peak_rss_mib: float
    actor_read_mb: float
    actor_written_mb: float
    region_mb: float | None
    success: bool
    commit: str = ""
    peak_in: str = ""
    """The step (the asset's or a check's) running when the process tree's RSS peaked."""
    load_avg: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


class Poller:
    """Peak RSS of a process tree and of the Ray cluster's worker processes, every 0.1 s."""

    def __init__(self, pid: int, ray_temp_dir: str | None) -> None:
        self.pid = pid
        self.ray_temp_dir = ray_temp_dir
        self.peak_tree = 0
        self.peak_at = 0.0
        self.workers: dict[int, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._ray_pids: list[int] = []
        self._refreshed = 0.0
        if ray_temp_dir:
            self._refresh_workers()  # the io counters before the run: the actor's baseline

    def _refresh_workers(self) -> None:
        from tessera_assets.inference.local_cluster import _cluster_pids

        self._ray_pids = [
            p for p in _cluster_pids(self.ray_temp_dir or "") if _name(p).startswith("ray::")
        ]
        self._refreshed = time.monotonic()
        self._sample_workers()

    def _sample_workers(self) -> None:
        for pid in self._ray_pids:
            with contextlib.suppress(psutil.Error, OSError):
                proc = psutil.Process(pid)
                rss = proc.memory_info().rss
                io = _io(pid)
                w = self.workers.setdefault(pid, {"name": proc.name(), "first": io, "peak": 0})
                w["last"], w["peak"] = io, max(w["peak"], rss)
                w["name"] = proc.name()

    def _loop(self) -> None:
        root = psutil.Process(self.pid)
        while not self._stop.wait(0.1):
            with contextlib.suppress(psutil.Error):
                procs = [root, *root.children(recursive=True)]
                rss = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        rss += p.memory_info().rss
                if rss > self.peak_tree:
                    self.peak_tree, self.peak_at = rss, time.time()
            if self.ray_temp_dir:
                if time.monotonic() - self._refreshed > 1.0:
                    self._refresh_workers()
                else:
                    self._sample_workers()

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.ray_temp_dir:
            self._sample_workers()

    def actor(self) -> tuple[int, int, int]:
        """Peak RSS, bytes read and written during the run by the embedding actor(s)."""
        peak = rchar = wchar = 0
        for w in self.workers.values():
            if "EmbeddingWorker" not in w["name"]:
                continue
            peak = max(peak, w["peak"])
            rchar += w["last"][0] - w["first"][0]
            wchar += w["last"][1] - w["first"][1]
        return peak, rchar, wchar


def _name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return ""


def _io(pid: int) -> tuple[int, int]:
    values = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(values["rchar"]), int(values["wchar"])


def measure(
    cmd: list[str], env: dict[str, str], log: Path, ray_temp_dir: str | None, timeout: float
) -> Measure:
    """Run ``cmd`` and measure it; bytes come from the exited (not yet reaped) process."""
    m = Measure(started=time.time())
    t0 = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
    timer.start()
    with Poller(proc.pid, ray_temp_dir) as poll:
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        m.wall_s = time.perf_counter() - t0
        m.ended = time.time()
        m.rchar, m.wchar = _io(proc.pid)
    timer.cancel()
    _, status = os.waitpid(proc.pid, 0)
    proc.returncode = m.returncode = os.waitstatus_to_exitcode(status)
    m.peak_rss_tree, m.peak_at = poll.peak_tree, poll.peak_at
    m.actor_peak_rss, m.actor_rchar, m.actor_wchar = poll.actor()
    return m


# -- a case: archive, settings, instance ---------------------------------------------------------


def _tile(size: int):
    from tessera_assets.aoi import load_aoi
    from tessera_assets.demo.area import DEMO_AOI_UTM, DEMO_EPSG
    from tessera_assets.grid import tiles_for_geometry

    return tiles_for_geometry(load_aoi(list(DEMO_AOI_UTM), crs=f"EPSG:{DEMO_EPSG}"), size)[0]


def _archive_bounds(tile) -> tuple[float, ...]:
    """The demo margin (640 m) where it fits under the generator's 20.48 km cap, else less."""
    from tessera_assets.demo.area import DEMO_MARGIN_M

    x0, y0, x1, y1 = tile.bounds
    margin = min(DEMO_MARGIN_M, max(0.0, (MAX_AREA_M - (x1 - x0)) / 2 // 20 * 20))
    return x0 - margin, y0 - margin, x1 + margin, y1 + margin


def prepare_case(case: Case, work: Path, model: Path) -> dict[str, Any]:
    """Archive, settings file, DAGSTER_HOME with the AOI registered; returns the case's env."""
    from tessera_assets.cli.aoi import register_aoi
    from tessera_assets.cli.common import dagster_instance
    from tessera_assets.defs.partitions import partition_key
    from tessera_assets.demo import DemoSpec, generate_demo_archive
    from tessera_assets.demo.area import DEMO_EPSG, DemoPaths, demo_settings

    home = work / case.name
    paths = DemoPaths(home)
    tile = _tile(case.size)
    settings = demo_settings(paths, tile_size=case.size)
    settings = settings.model_copy(
        update={
            "executor": "in_process",
            "inference": settings.inference.model_copy(
                update={"model_source": str(model), "ray_address": "auto"}
            ),
        }
    )
    year = settings.years[0]
    start = date(year, 4, 1)
    t0 = time.perf_counter()
    archive = generate_demo_archive(
        DemoSpec(
            epsg=DEMO_EPSG,
            bounds=_archive_bounds(tile),
            year=year,
            start=start,
            end=start + timedelta(days=case.days - 1),
        ),
        paths.archive,
    )
    archive_s = time.perf_counter() - t0
    settings.save(paths.settings_file)
    fresh = not paths.dagster_home.exists()
    instance = dagster_instance(paths.dagster_home)
    if fresh:
        register_aoi(
            instance, settings, "bench", list(tile.bounds), [year], crs=f"EPSG:{DEMO_EPSG}"
        )
    return {
        "home": home,
        "paths": paths,
        "settings": settings,
        "tile": tile,
        "year": year,
        "partition": partition_key(tile, year),
        "archive_s": round(archive_s, 1),
        "archive_items": archive.item_counts,
    }


def dagster_cmd(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("dagster")), *args]


def run_asset(
    ctx: dict[str, Any], asset: str, env: dict[str, str], ray_temp_dir: str, timeout: float
) -> tuple[Measure, str | None]:
    cmd = dagster_cmd(
        "asset",
        "materialize",
        "-m",
        "tessera_assets.defs",
        "-a",
        "defs",
        "--select",
        asset,
        "--partition",
        ctx["partition"],
    )
    log = ctx["home"] / f"{asset}.log"
    m = measure(cmd, env, log, ray_temp_dir if asset == "embeddings" else None, timeout)
    tail = None if m.returncode == 0 else log.read_text(errors="replace")[-3000:]
    return m, tail


def run_facts(dagster_home: Path, asset: str, m: Measure) -> dict[str, Any]:
    """Step durations, run start/end and the asset's materialisation metadata from the instance."""
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return {}
        run = runs[0]
        stats = instance.get_run_stats(run.run_id)
        windows = {
            s.step_key: (s.start_time or 0, s.end_time or 0)
            for s in instance.get_run_step_stats(run.run_id)
        }
        steps = {k: end - start for k, (start, end) in windows.items()}
        records = instance.fetch_materializations(AssetKey(asset), limit=1).records
        meta: dict[str, Any] = {}
        if records and records[0].run_id == run.run_id:
            for k, v in records[0].asset_materialization.metadata.items():
                value = getattr(v, "value", v)
                if isinstance(value, int | float | str | bool):
                    meta[k] = value
    asset_step = steps.get(asset)
    return {
        "run_id": run.run_id,
        "steps": steps,
        "asset_step_s": asset_step,
        "checks_s": sum(v for k, v in steps.items() if k != asset),
        "startup_s": (stats.start_time - m.started) if stats.start_time else None,
        "peak_in": next(
            (k for k, (a, b) in windows.items() if a <= m.peak_at <= b), "outside the steps"
        ),
        "metadata": meta,
    }


def region_mb(ctx: dict[str, Any], asset: str) -> float | None:
    """Stored bytes of the asset's store: the case's root holds this one tile-year only."""
    from tessera_assets.products.registry import store_url

    if asset == "scene_manifest":
        return None
    path = Path(store_url(ctx["settings"].root, asset))
    if not path.exists():
        return None
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def acquisitions(ctx: dict[str, Any]) -> dict[str, int]:
    from tessera_assets.products.registry import manifest_url
    from tessera_assets.sources.manifest import SceneManifest

    try:
        m = SceneManifest.load(manifest_url(ctx["settings"].root, ctx["tile"].id, ctx["year"]))
    except FileNotFoundError:
        return {}
    return {s: len(m.days(s)) for s in ("s2", "s1")}


# -- the benchmark ----------------------------------------------------------------------------


def plan(args: argparse.Namespace) -> list[Case]:
    cases = []
    for size in sorted({*args.sizes, *args.ingest_sizes}):
        assets = INGEST + (EMBED if size in args.embed_sizes else [])
        cases.append(Case(size, args.days, assets))
    for size in args.extra_sizes:
        for days in args.extra_days:
            embed = size in args.embed_sizes and not args.extra_ingest_only
            cases.append(Case(size, days, INGEST + (EMBED if embed else [])))
    return cases


def baseline(ctx: dict[str, Any], env: dict[str, str]) -> Measure:
    """A no-op process of the same kind: it loads the code location and runs nothing."""
    cmd = dagster_cmd("definitions", "validate", "-m", "tessera_assets.defs", "-a", "defs")
    return measure(cmd, env, ctx["home"] / "baseline.log", None, 300)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--sizes", type=int, nargs="*", default=[256, 512, 1024])
    ap.add_argument(
        "--ingest-sizes",
        type=int,
        nargs="*",
        default=[2048],
        help="sizes run for the ingest and prepare assets only",
    )
    ap.add_argument(
        "--embed-sizes",
        type=int,
        nargs="*",
        default=[256, 512],
        help="sizes that also run embeddings and embeddings_coarse",
    )
    ap.add_argument("--days", type=int, default=16, help="days of scenes from 1 April")
    ap.add_argument(
        "--extra-days",
        type=int,
        nargs="*",
        default=[48],
        help="further periods at --extra-sizes, to fit the acquisition dependence",
    )
    ap.add_argument("--extra-sizes", type=int, nargs="*", default=[256, 2048])
    ap.add_argument(
        "--extra-ingest-only",
        action="store_true",
        help="the further periods run the ingest and prepare assets only",
    )
    ap.add_argument("--timeout", type=float, default=1800.0, help="per asset process")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="keep the successful runs already in --out and run only the others",
    )
    args = ap.parse_args()

    from tessera_assets.demo.area import DEMO_MODEL_FAMILY
    from tessera_assets.inference import local_cluster
    from tessera_assets.model.demo_weights import write_demo_checkpoint

    args.work.mkdir(parents=True, exist_ok=True)
    model = args.work / "model" / "demo-v2-nano.pt"
    if not model.exists():
        write_demo_checkpoint(model, family=DEMO_MODEL_FAMILY, seed=0)
    cases = plan(args)
    report: dict[str, Any] = {"cases": [], "runs": []}
    if args.resume and args.out and args.out.exists():
        report = json.loads(args.out.read_text())
        report["runs"] = [r for r in report["runs"] if r["success"]]
        for r in report["runs"]:  # ru_maxrss held the forking parent's RSS: not kept
            r.pop("ru_maxrss_mib", None)
    report["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    report["machine"] = machine()
    done = {(r["case"], r["asset"]) for r in report["runs"]}
    todo = [c for c in cases if any((c.name, a) not in done for a in c.assets)]
    state = args.work / "ray-state"
    cluster = None
    if any((c.name, a) not in done for c in todo for a in EMBED if a in c.assets):
        t0 = time.perf_counter()
        cluster = local_cluster.up(state, head_cpus=2, head_slots=1, worker_nodes=0)
        report["ray_cluster_start_s"] = round(time.perf_counter() - t0, 1)
    try:
        for case in todo:
            if not run_case(case, args, model, state, cluster, report, done):
                break
    finally:
        if cluster:
            local_cluster.down(state)
    report["fits"] = fits(report["runs"], args.days)
    _save(report, args.out)
    print(markdown(report))


def run_case(
    case: Case,
    args: argparse.Namespace,
    model: Path,
    state: Path,
    cluster: Any,
    report: dict[str, Any],
    done: set[tuple[str, str]],
) -> bool:
    """Measure the case's assets not yet ``done``; False after a failed asset."""
    ctx = prepare_case(case, args.work, model)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(ctx["paths"].dagster_home),
        "TESSERA_CONFIG": str(ctx["paths"].settings_file),
        "TESSERA_RAY_STATE_DIR": str(state),
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    env.pop("RAY_ADDRESS", None)
    if cluster and "actor_start_s" not in report.get("session", {}):
        report.setdefault("session", {})["actor_start_s"] = warm_actor(ctx, cluster.address)
    known = next((c for c in report["cases"] if c["case"] == case.name), None)
    if known is None:
        base = baseline(ctx, env)
        known = {
            "case": case.name,
            "size": case.size,
            "days": case.days,
            "archive_s": ctx["archive_s"],
            "archive_items": ctx["archive_items"],
            "baseline": asdict(base),
        }
        report["cases"].append(known)
    base = Measure(**known["baseline"])
    for asset in case.assets:
        if (case.name, asset) in done:
            continue
        m, tail = run_asset(ctx, asset, env, cluster.temp_dir if cluster else "", args.timeout)
        facts = run_facts(ctx["paths"].dagster_home, asset, m)
        steps = sum(facts.get("steps", {}).values())
        run = AssetRun(
            case=case.name,
            size=case.size,
            days=case.days,
            asset=asset,
            acquisitions=acquisitions(ctx),
            wall_s=round(m.wall_s, 2),
            step_s=_r(facts.get("asset_step_s")),
            checks_s=round(facts.get("checks_s", 0), 2),
            overhead_s=round(m.wall_s - steps, 2) if steps else None,
            startup_s=_r(facts.get("startup_s")),
            peak_in=facts.get("peak_in", ""),
            peak_rss_mib=round(m.peak_rss_tree / MIB, 1),
            read_mb=round((m.rchar - base.rchar) / 1e6, 1),
            written_mb=round((m.wchar - base.wchar) / 1e6, 1),
            actor_peak_rss_mib=round(m.actor_peak_rss / MIB, 1),
            actor_read_mb=round(m.actor_rchar / 1e6, 1),
            actor_written_mb=round(m.actor_wchar / 1e6, 1),
            region_mb=_r(region_mb(ctx, asset), 1),
            success=m.returncode == 0,
            commit=COMMIT,
            load_avg=round(os.getloadavg()[0], 1),
            metadata=facts.get("metadata", {}),
        )
        report["runs"].append(asdict(run))
        print(
            f"{case.name} {asset}: wall {run.wall_s} s, step {run.step_s} s, "
            f"peak {run.peak_rss_mib} MiB, read {run.read_mb} MB, "
            f"written {run.written_mb} MB, region {run.region_mb} MB"
            + ("" if run.success else " FAILED"),
            flush=True,
        )
        _save(report, args.out)
        if tail:
            print(tail, file=sys.stderr)
            return False
    return True


def warm_actor(ctx: dict[str, Any], address: str) -> float:
    """Create the shared embedding actor once (model load), as the first run on a fresh
    cluster would; every measured run then attaches to it."""
    from tessera_assets.inference.service import InferenceService

    os.environ["RAY_ADDRESS"] = address
    t0 = time.perf_counter()
    service = InferenceService(ctx["settings"].inference).connect()
    seconds = time.perf_counter() - t0
    service.detach()
    del os.environ["RAY_ADDRESS"]
    return round(seconds, 1)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "mem_gib": round(psutil.virtual_memory().total / GIB, 1),
        "load_avg_at_start": os.getloadavg(),
        "python": sys.version.split()[0],
        "host": os.uname().nodename,
    }


def _r(v: float | None, n: int = 2) -> float | None:
    return None if v is None else round(v, n)


def _save(report: dict[str, Any], out: Path | None) -> None:
    if out:
        out.write_text(json.dumps(report, indent=1, default=str))


# -- fits -------------------------------------------------------------------------------------

METRICS = (
    "wall_s",
    "step_s",
    "peak_rss_mib",
    "read_mb",
    "written_mb",
    "actor_peak_rss_mib",
    "actor_read_mb",
)


def _acq(run: dict[str, Any], production: bool = False) -> int:
    sensors = DRIVER[run["asset"]]
    if sensors is None:
        return 0
    source = PRODUCTION if production else run["acquisitions"]
    return sum(source.get(s, 0) for s in sensors.split("+"))


def fits(runs: list[dict[str, Any]], base_days: int) -> dict[str, Any]:
    """Per asset and metric: y = a + b·px over the base period's sizes (px = pixels), and, where
    the asset ran over two periods, y = a + b·px + c·px·acq over every run. Each gives the
    2048-px figure, labelled measured (a run at 2048 px) or extrapolated."""
    out: dict[str, Any] = {}
    for asset in INGEST + EMBED:
        mine = [r for r in runs if r["asset"] == asset and r["success"]]
        if not mine:
            continue
        base = [r for r in mine if r["days"] == base_days]
        measured = next((r for r in base if r["size"] == PRODUCTION["px"]), None)
        per: dict[str, Any] = {}
        for metric in METRICS:
            ys = [r[metric] for r in mine]
            if any(y is None for y in ys) or not any(ys):
                continue
            entry: dict[str, Any] = {}
            pts = [(r["size"] ** 2, r[metric]) for r in base]
            if len({p for p, _ in pts}) >= 2:
                a, b = _lstsq([[1.0, p] for p, _ in pts], [y for _, y in pts])
                entry["vs_px"] = {"a": a, "b_per_mpx": b * 1e6, "points": len(pts)}
                at = a + b * PRODUCTION["px"] ** 2
                entry["at_2048_base_period"] = (
                    {"value": measured[metric], "how": "measured"}
                    if measured
                    else {"value": at, "how": "extrapolated (a + b·px)"}
                )
            acqs = {_acq(r) for r in mine}
            if DRIVER[asset] and len(acqs) >= 2 and len(mine) >= 3:
                rows = [[1.0, r["size"] ** 2, r["size"] ** 2 * _acq(r)] for r in mine]
                coef = _lstsq(rows, ys)
                if coef is not None:
                    a, b, c = coef
                    px = PRODUCTION["px"] ** 2
                    prod_acq = _acq({"asset": asset}, production=True)
                    entry["vs_px_acq"] = {
                        "a": a,
                        "b_per_mpx": b * 1e6,
                        "c_per_mpx_acq": c * 1e6,
                        "points": len(rows),
                        "exact": len(rows) == 3,
                    }
                    if len(rows) > 3:  # three points fit exactly: noise, not a trend
                        entry["at_2048_production"] = {
                            "value": a + b * px + c * px * prod_acq,
                            "acquisitions": prod_acq,
                            "how": "extrapolated (a + b·px + c·px·acq)",
                        }
            per[metric] = entry
        out[asset] = per
    return out


def _lstsq(rows: list[list[float]], ys: list[float]) -> list[float] | None:
    a = np.asarray(rows, dtype=float)
    if np.linalg.matrix_rank(a) < a.shape[1]:
        return None
    coef, *_ = np.linalg.lstsq(a, np.asarray(ys, dtype=float), rcond=None)
    return [float(c) for c in coef]


# -- report -----------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| size | days (S2/S1 acq.) | asset | load | wall s | step s | checks s | overhead s | "
        "peak RSS MiB | actor peak MiB | read MB | written MB | actor read MB | region MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        acq = r["acquisitions"]
        lines.append(
            f"| {r['size']} | {r['days']} ({acq.get('s2', '?')}/{acq.get('s1', '?')}) | "
            f"{r['asset']}{'' if r['success'] else ' FAILED'} | {r.get('load_avg', '?')} | "
            f"{r['wall_s']} | {r['step_s']} | "
            f"{r['checks_s']} | {r['overhead_s']} | {r['peak_rss_mib']} | "
            f"{r['actor_peak_rss_mib'] or '—'} | {r['read_mb']} | {r['written_mb']} | "
            f"{r['actor_read_mb'] or '—'} | {r['region_mb'] if r['region_mb'] is not None else '—'} |"
        )
    lines += [
        "",
        "| asset | metric | fit vs px (a; b per Mpx) | 2048 px, base period | "
        "fit vs px·acq (c per Mpx·acq) | 2048 px, production acq. |",
        "|---|---|---|---|---|---|",
    ]
    for asset, per in report.get("fits", {}).items():
        for metric, e in per.items():
            f1 = e.get("vs_px")
            f2 = e.get("vs_px_acq")
            at = e.get("at_2048_base_period")
            prod = e.get("at_2048_production")
            if not (f1 or f2):
                continue
            lines.append(
                f"| {asset} | {metric} | "
                + (f"{f1['a']:.4g}; {f1['b_per_mpx']:.4g}" if f1 else "—")
                + " | "
                + (f"{at['value']:.4g} ({at['how'].split()[0]})" if at else "—")
                + " | "
                + (
                    f"{f2['a']:.4g} + {f2['b_per_mpx']:.4g}·Mpx + {f2['c_per_mpx_acq']:.4g}·Mpx·acq"
                    + (" (exact fit, not extrapolated)" if f2["exact"] else "")
                    if f2
                    else "—"
                )
                + " | "
                + (
                    f"{prod['value']:.4g} at {prod['acquisitions']} acq. (extrapolated)"
                    if prod
                    else "—"
                )
                + " |"
            )
    lines.append("")
    lines.append(
        f"Ray cluster start: {report.get('ray_cluster_start_s')} s (once); embedding "
        "actor start (model load, once per cluster): "
        f"{report.get('session', {}).get('actor_start_s')} s"
    )
    for c in report["cases"]:
        b = c["baseline"]
        lines.append(
            f"{c['case']}: archive {c['archive_s']} s {c['archive_items']}; no-op "
            f"process {b['wall_s']:.1f} s, {b['peak_rss_tree'] / MIB:.0f} MiB, "
            f"read {b['rchar'] / 1e6:.1f} MB, written {b['wchar'] / 1e6:.1f} MB"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""The scale run behind ``test_scale_backfill.py`` and ``benchmarks/bench_scale_backfill.py``.

A backfill of many demo tile-years launched through the webserver's GraphQL API on a
production-like deployment on loopback: Postgres instance storage, the daemon's
QueuedRunCoordinator with run and pool limits, runs as separate processes, every store on an
S3-protocol server (moto) with credentials from the environment, and a Ray cluster of a head
plus worker nodes whose custom ``inference_slot`` resource stands in for GPUs. Then the same
partitions run one after another in-process into a second root, and the stores are compared
byte for byte.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from tessera_assets_tests.infra.backfill import launch_asset_backfill, wait_for_backfill
from tessera_assets_tests.infra.dagster_stack import dagster_stack
from tessera_assets_tests.infra.monitor import PeakMemory
from tessera_assets_tests.infra.postgres import postgres_server
from tessera_assets_tests.infra.s3 import s3_server

ASSETS = ["scene_manifest", "s2_cube", "s1_cube", "s2_masked", "s1_calibrated", "embeddings",
          "embeddings_coarse"]
"""The embeddings path: Landsat feeds no model, so a production backfill leaves it out."""
PG_TABLES = ["runs", "run_tags", "event_logs", "asset_keys", "asset_event_tags",
             "dynamic_partitions", "bulk_actions", "concurrency_slots", "pending_steps",
             "concurrency_limits", "kvs"]


@dataclass(frozen=True)
class ScaleConfig:
    tiles_x: int = 6
    tiles_y: int = 4
    tile_size: int = 32
    year: int = 2024
    period: tuple[date, date] = (date(2024, 4, 1), date(2024, 4, 30))
    max_concurrent_runs: int = 4
    backfill_run_limit: int = 4
    worker_nodes: int = 1
    slots_per_node: int = 2
    strip_rows: int = 32
    """Rows per inference strip (rounded up to whole stored-chunk rows: a 32 px tile is one)."""
    family: str = "v2-nano"
    """Model family of the demo weights: a bigger one (e.g. ``v2-small``) makes partitions
    inference-heavy, as production's 2048 px tiles are, to measure how busy the slots stay."""
    timeout_s: float = 2700.0
    sequential_baseline: bool = True
    reembed: bool = False
    """Measure a re-embedding backfill: the cubes are made first (in-process, on an instance of
    their own, so the automation daemon sees nothing to follow) and the backfill launched
    through GraphQL covers ``embeddings`` and ``embeddings_coarse`` only — a new model over an
    archive already ingested, where the inference slots, not ingest, bound the backfill."""

    @property
    def partitions(self) -> int:
        return self.tiles_x * self.tiles_y


@dataclass
class ScaleResult:
    config: dict[str, Any]
    partitions: int
    run_status: dict[str, int]
    backfill_seconds: float
    step_work_seconds: float
    run_wall_seconds: list[float]
    dagster_overhead_seconds: list[float]
    step_median_seconds: dict[str, float]
    """Median seconds of each step (by step key) over the backfill's runs: where a run's time
    goes besides the strips (input verification, write, checks, the coarse product)."""
    mean_in_flight: dict[str, float]
    """Time-averaged count over the backfill of runs started and not finished, and of
    ``embeddings`` steps (each holds a ``gpu`` pool slot): what keeps the slots fed."""
    embeddings_phase_seconds: float
    slot_busy_fraction: float
    tile_years_per_minute: float
    actors: list[dict[str, Any]]
    workers_seen: list[str]
    sequential_seconds: float | None
    compared_objects: int
    differing_objects: list[str]
    missing_objects: list[str]
    postgres_rows: dict[str, int]
    peak_rss_mib: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, default=str)


def _aoi_tiles(cfg: ScaleConfig):
    from tessera_assets.aoi import load_aoi
    from tessera_assets.demo.area import DEMO_EPSG
    from tessera_assets.grid import tiles_for_geometry

    span = cfg.tile_size * 10.0
    probe = tiles_for_geometry(load_aoi([637_000.0, 5_762_000.0, 637_001.0, 5_762_001.0],
                                        crs=f"EPSG:{DEMO_EPSG}"), cfg.tile_size)[0]
    x0, y0 = probe.bounds[0], probe.bounds[1]
    bbox = [x0 + 1, y0 + 1, x0 + cfg.tiles_x * span - 1, y0 + cfg.tiles_y * span - 1]
    tiles = tiles_for_geometry(load_aoi(bbox, crs=f"EPSG:{DEMO_EPSG}"), cfg.tile_size)
    assert len(tiles) == cfg.partitions, (len(tiles), cfg.partitions)
    return bbox, tiles


def _settings(paths, cfg: ScaleConfig, root: str, endpoint: str):
    from tessera_assets.demo.area import demo_settings

    base = demo_settings(paths, tile_size=cfg.tile_size, year=cfg.year)
    inference = base.inference.model_copy(update={
        "ray_address": "auto", "num_workers": 0, "slot_resource": "inference_slot",
        "slots_per_worker": 1.0, "cpus_per_worker": 1.0, "strip_rows": cfg.strip_rows,
        "family": cfg.family})
    return base.model_copy(update={
        "root": root, "inference": inference, "executor": "in_process",
        # the endpoint only: credentials come from the environment, never from settings
        "storage_options": {"client_kwargs": {"endpoint_url": endpoint}},
    })


def _objects(fs, root: str) -> dict[str, str]:
    """Relative path → absolute path of every chunk object of the zarr products."""
    out = {}
    for product in ASSETS[1:]:
        base = f"{root}/{product}.zarr"
        if not fs.exists(base):
            continue
        for path in fs.find(base):
            rel = path.split(f"{product}.zarr/", 1)[1]
            if "/c/" in f"/{rel}":
                out[f"{product}.zarr/{rel}"] = path
    return out


def _compare(fs, a_root: str, b_root: str) -> tuple[int, list[str], list[str]]:
    a, b = _objects(fs, a_root), _objects(fs, b_root)
    missing = sorted(set(a) ^ set(b))
    differing = [rel for rel in sorted(set(a) & set(b)) if fs.cat(a[rel]) != fs.cat(b[rel])]
    return len(set(a) & set(b)), differing, missing


def _actor_stats(address: str) -> list[dict[str, Any]]:
    import ray

    from tessera_assets.inference.service import NAMESPACE, control, shared_actors

    ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    try:
        stats = []
        for name in shared_actors():
            handle = ray.get_actor(name, namespace=NAMESPACE)
            stats.append({"actor": name, **ray.get(control(handle.stats).remote())})
        return stats
    finally:
        ray.shutdown()


def run_scale(work: Path, cfg: ScaleConfig, log=print) -> ScaleResult:
    """Run the whole scale scenario under ``work`` and return what was measured; the process
    environment (Ray state folder, S3 credentials) is restored afterwards."""
    import ray

    saved = dict(os.environ)
    if ray.is_initialized():  # e.g. connected to another test's cluster
        ray.shutdown()
    try:
        return _run_scale(work, cfg, log)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        os.environ.clear()
        os.environ.update(saved)


def _run_scale(work: Path, cfg: ScaleConfig, log) -> ScaleResult:
    import s3fs
    from dagster import DagsterInstance, RunsFilter

    from tessera_assets.cli.aoi import register_aoi
    from tessera_assets.defs.partitions import partition_key
    from tessera_assets.demo import DemoSpec, generate_demo_archive
    from tessera_assets.demo.area import DEMO_EPSG, DemoPaths, demo_bounds
    from tessera_assets.inference import local_cluster
    from tessera_assets.inference.cluster_address import STATE_DIR_ENV
    from tessera_assets.model.demo_weights import write_demo_checkpoint

    paths = DemoPaths(work)
    bbox, tiles = _aoi_tiles(cfg)
    t0 = time.perf_counter()
    spec = DemoSpec(epsg=DEMO_EPSG, bounds=demo_bounds([t.bounds for t in tiles]), year=cfg.year,
                    start=cfg.period[0], end=cfg.period[1])
    generate_demo_archive(spec, paths.archive)
    write_demo_checkpoint(paths.model, family=cfg.family, seed=0)
    log(f"archive for {len(tiles)} tiles in {time.perf_counter() - t0:.1f} s")
    ray_state = work / "ray-state"
    os.environ[STATE_DIR_ENV] = str(ray_state)
    keys = [str(partition_key(t, cfg.year)) for t in tiles]
    with s3_server() as s3, postgres_server() as pg:
        s3_env = s3.credentials_file_env(work)
        os.environ.update(s3_env)
        cluster = local_cluster.up(ray_state, head_cpus=1, head_slots=0,
                                   worker_nodes=cfg.worker_nodes, worker_cpus=cfg.slots_per_node,
                                   worker_slots=cfg.slots_per_node)
        try:
            log(f"ray cluster {cluster.address}: nodes {cluster.nodes}, {cluster.slots} slots")
            settings = _settings(paths, cfg, f"s3://{s3.bucket}/backfill", s3.endpoint)
            config_file = work / "tessera.json"
            config_file.write_text(settings.model_dump_json(indent=1))
            env = {**s3_env, "TESSERA_CONFIG": str(config_file), STATE_DIR_ENV: str(ray_state)}
            home = work / "dagster_home"
            assets = ASSETS
            if cfg.reembed:
                assets = ASSETS[-2:]
                t_cubes = time.perf_counter()
                _materialize_in_process(settings, ASSETS[:-2], keys, bbox, cfg)
                log(f"cubes of {len(keys)} tile-years in-process in "
                    f"{time.perf_counter() - t_cubes:.1f} s (not measured)")
            with dagster_stack(home, pg.url, env, max_concurrent_runs=cfg.max_concurrent_runs,
                               backfill_run_limit=cfg.backfill_run_limit,
                               pool_limit=2 * cluster.slots,
                               run_buffer=cluster.slots) as stack:
                instance = DagsterInstance.from_config(str(home))
                register_aoi(instance, settings, "scale", bbox, [cfg.year],
                             crs=f"EPSG:{DEMO_EPSG}")
                before = {a["actor"]: a for a in _actor_stats(cluster.address)}
                roots = {
                    "dagster webserver": [stack.processes["webserver"].pid],
                    "dagster daemon": [stack.processes["daemon"].pid],
                    "ray cluster": local_cluster._cluster_pids(cluster.temp_dir),
                }
                with PeakMemory(lambda: roots) as memory:
                    t_launch = time.time()
                    backfill_id = launch_asset_backfill(stack, assets, keys, "scale test")
                    log(f"backfill {backfill_id}: {len(keys)} tile-years launched via GraphQL")
                    status = wait_for_backfill(stack, backfill_id, cfg.timeout_s)
                    t_done = time.time()
                log(f"backfill {status['status']} in {t_done - t_launch:.1f} s")
                after = _actor_stats(cluster.address)
                runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id}))
                result = _measure(instance, runs, before, after, t_launch, t_done)
                result.postgres_rows = {t: int(pg.psql(f"SELECT count(*) FROM {t}"))
                                        for t in PG_TABLES}
                result.peak_rss_mib = {k: round(v, 1) for k, v in sorted(memory.peaks.items())}
                result.workers_seen, strip_seconds = _embeddings_records(instance, runs)
                if strip_seconds:
                    result.step_median_seconds["embeddings: strips submitted → all back"] = \
                        round(statistics.median(strip_seconds), 2)
                instance.dispose()
            result.config = {**asdict(cfg), "period": [str(d) for d in cfg.period],
                             "cluster_nodes": cluster.nodes, "slots": cluster.slots}
            if cfg.sequential_baseline:
                seq = settings.model_copy(update={"root": f"s3://{s3.bucket}/sequential"})
                t_seq = time.perf_counter()
                _materialize_in_process(seq, ASSETS, keys, bbox, cfg)
                result.sequential_seconds = round(time.perf_counter() - t_seq, 1)
                log(f"sequential in-process baseline: {result.sequential_seconds} s")
                fs = s3fs.S3FileSystem(**s3.storage_options)
                n, diff, missing = _compare(fs, f"{s3.bucket}/backfill", f"{s3.bucket}/sequential")
                result.compared_objects, result.differing_objects = n, diff
                result.missing_objects = missing
        finally:
            local_cluster.down(ray_state)
    return result


def _materialize_in_process(settings, assets, keys, bbox, cfg: ScaleConfig) -> None:
    """``assets`` of every partition, one after another, in this process, on an ephemeral
    instance (the stack's instance and its daemon never hear of these runs)."""
    from dagster import AssetKey, DagsterInstance

    from tessera_assets.cli.aoi import register_aoi
    from tessera_assets.defs import PIPELINE_JOB, build_definitions
    from tessera_assets.demo.area import DEMO_EPSG

    job = build_definitions(settings).resolve_job_def(PIPELINE_JOB)
    local = DagsterInstance.ephemeral()
    register_aoi(local, settings, "scale", bbox, [cfg.year], crs=f"EPSG:{DEMO_EPSG}")
    selection = [AssetKey(a) for a in assets]
    for key in keys:
        job.execute_in_process(partition_key=key, instance=local, asset_selection=selection)


def _embeddings_records(instance, runs) -> tuple[list[str], list[float]]:
    """Names of the actors that embedded strips, and each run's seconds from submitting its
    strips to holding them all (queue + actor time), from the embeddings materialisations."""
    from dagster import AssetKey, DagsterEventType, EventRecordsFilter

    seen: set[str] = set()
    strip_seconds: list[float] = []
    records = instance.get_event_records(EventRecordsFilter(
        event_type=DagsterEventType.ASSET_MATERIALIZATION, asset_key=AssetKey("embeddings")))
    run_ids = {r.run_id for r in runs}
    for rec in records:
        if rec.run_id not in run_ids:
            continue
        meta = rec.asset_materialization.metadata
        if "ray_workers" in meta:
            seen.update(meta["ray_workers"].value)
        if "seconds" in meta:
            strip_seconds.append(float(meta["seconds"].value))
    return sorted(seen), strip_seconds


def _measure(instance, runs, before, after, t_launch: float, t_done: float) -> ScaleResult:
    status: dict[str, int] = {}
    walls, overheads, work = [], [], 0.0
    by_step: dict[str, list[float]] = {}
    spans: dict[str, list[tuple[float, float]]] = {"runs": [], "embeddings steps": []}
    for run in runs:
        status[run.status.value] = status.get(run.status.value, 0) + 1
        stats = instance.get_run_stats(run.run_id)
        steps = instance.get_run_step_stats(run.run_id)
        step_sum = sum((s.end_time or 0) - (s.start_time or 0) for s in steps if s.start_time)
        work += step_sum
        if stats.start_time and stats.end_time:
            walls.append(round(stats.end_time - stats.start_time, 2))
            overheads.append(round(stats.end_time - stats.start_time - step_sum, 2))
            spans["runs"].append((stats.start_time, stats.end_time))
        for s in steps:
            if s.start_time and s.end_time:
                by_step.setdefault(s.step_key, []).append(s.end_time - s.start_time)
                if s.step_key == "embeddings":
                    spans["embeddings steps"].append((s.start_time, s.end_time))
    emb = spans["embeddings steps"]
    phase = max(max(e for _, e in emb) - min(b for b, _ in emb), 1e-9) if emb else 0.0
    busy = sum(a["busy_seconds"] - before.get(a["actor"], {}).get("busy_seconds", 0.0)
               for a in after)
    seconds = t_done - t_launch
    return ScaleResult(
        config={}, partitions=len(runs), run_status=status,
        backfill_seconds=round(seconds, 1), step_work_seconds=round(work, 1),
        run_wall_seconds=walls, dagster_overhead_seconds=overheads,
        step_median_seconds={k: round(statistics.median(v), 2) for k, v in sorted(by_step.items())},
        mean_in_flight={k: round(sum(e - b for b, e in v) / max(seconds, 1e-9), 2)
                        for k, v in spans.items()},
        embeddings_phase_seconds=round(phase, 1),
        slot_busy_fraction=round(busy / (len(after) * phase), 3) if phase and after else 0.0,
        tile_years_per_minute=round(len(runs) / seconds * 60, 2),
        actors=after, workers_seen=[], sequential_seconds=None, compared_objects=0,
        differing_objects=[], missing_objects=[], postgres_rows={}, peak_rss_mib={},
    )

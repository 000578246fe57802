"""Strips shipped from the run vs read by the inference workers from the stores (issue 9).

Materialises the masked cubes of one demo tile-year, then embeds the tile twice through the
shared inference service on a local Ray cluster: once with ``StripTask``s whose pixel series
the driver reads and ships through Ray's object store, once with ``StripRef``s that the
worker reads from the stores itself. Reports wall time, bytes the driver shipped, the driver's
peak RSS growth, and that both give identical codes.

    .venv/bin/python benchmarks/bench_strip_transport.py --tile-size 160 --out /tmp/strips.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np
import psutil
from dagster import AssetKey, DagsterInstance

from tessera_assets.aoi import load_aoi
from tessera_assets.cli.aoi import register_aoi
from tessera_assets.defs import PIPELINE_JOB, build_definitions
from tessera_assets.defs.partitions import partition_key
from tessera_assets.demo import DemoSpec, generate_demo_archive
from tessera_assets.demo.area import DEMO_AOI_UTM, DEMO_EPSG, DemoPaths, demo_bounds, demo_settings
from tessera_assets.grid import tiles_for_geometry
from tessera_assets.inference import local_cluster
from tessera_assets.inference.service import InferenceService
from tessera_assets.inference.strips import strip_refs, strip_tasks
from tessera_assets.inference.tasks import assemble_tile
from tessera_assets.model.demo_weights import write_demo_checkpoint
from tessera_assets.products.registry import manifest_url, open_store
from tessera_assets.sources.manifest import SceneManifest

UPSTREAM = ["scene_manifest", "s2_cube", "s1_cube", "s2_masked", "s1_calibrated"]


class Peak:
    """Peak RSS of this process above its level at start, sampled every 50 ms."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> Peak:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tile-size", type=int, default=160)
    ap.add_argument("--strip-rows", type=int, default=32)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tessera-strips-"))
    paths = DemoPaths(work)
    settings = demo_settings(paths, tile_size=args.tile_size)
    tile = tiles_for_geometry(load_aoi(list(DEMO_AOI_UTM), crs=f"EPSG:{DEMO_EPSG}"),
                              args.tile_size)[0]
    year = settings.years[0]
    generate_demo_archive(DemoSpec(epsg=DEMO_EPSG, bounds=demo_bounds([tile.bounds]), year=year,
                                   start=date(year, 4, 1), end=date(year, 6, 30)), paths.archive)
    write_demo_checkpoint(paths.model, family="v2-nano", seed=0)
    instance = DagsterInstance.ephemeral()
    register_aoi(instance, settings, "bench", list(tile.bounds), [year], crs=f"EPSG:{DEMO_EPSG}")
    build_definitions(settings).resolve_job_def(PIPELINE_JOB).execute_in_process(
        partition_key=partition_key(tile, year), instance=instance,
        asset_selection=[AssetKey(a) for a in UPSTREAM])
    state = work / "ray-state"
    cluster = local_cluster.up(state, head_cpus=2, head_slots=1, worker_nodes=0)
    try:
        os.environ["RAY_ADDRESS"] = cluster.address
        service = InferenceService(settings.inference).connect()
        list(service.embed(strip_tasks(*(open_store(p, settings).read_tile(tile, year)
                                          for p in ("s2_masked", "s1_calibrated")),
                                        _manifest(settings, tile, year), args.strip_rows)))  # warm
        h, w = tile.geobox.shape
        report = {"tile_px": args.tile_size, "strip_rows": args.strip_rows}
        for mode in ("ship", "store"):
            manifest = _manifest(settings, tile, year)
            shipped = [0]
            with Peak() as peak:
                t0 = time.perf_counter()
                if mode == "ship":
                    s2, s1 = (open_store(p, settings).read_tile(tile, year)
                              for p in ("s2_masked", "s1_calibrated"))

                    def counted(tasks, box=shipped):
                        for t in tasks:
                            box[0] += sum(v.nbytes for v in vars(t.series).values())
                            yield t

                    tasks = counted(strip_tasks(s2, s1, manifest, args.strip_rows))
                else:
                    tasks = strip_refs(tile.id, year, h, manifest, args.strip_rows,
                                       settings.model_dump_json())
                result = assemble_tile(service.embed(tasks), h, w)
                seconds = time.perf_counter() - t0
            report[mode] = {"seconds": round(seconds, 2), "bytes_shipped": shipped[0],
                            "driver_peak_rss_growth_mib": round((peak.peak - peak.base) / 2**20, 1),
                            "worker_read_seconds": round(result.read_seconds, 2),
                            "worker_model_seconds": round(result.worker_seconds, 2)}
            report[f"{mode}_codes_sha"] = hashlib.sha256(result.codes.tobytes()).hexdigest()[:16]
            report[f"{mode}_scales"] = result.scales
        report["identical"] = bool(report["ship_codes_sha"] == report["store_codes_sha"]
                                   and np.array_equal(report.pop("ship_scales"),
                                                      report.pop("store_scales"), equal_nan=True))
        service.detach()
    finally:
        local_cluster.down(state)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)


def _manifest(settings, tile, year) -> SceneManifest:
    return SceneManifest.load(manifest_url(settings.root, tile.id, year), settings.storage_options)


if __name__ == "__main__":
    main()

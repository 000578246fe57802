"""``s2_cube`` against a raw rasterio decode of exactly the same COG windows (issue 14).

For one demo tile per tile size, in one process, back to back and repeated:

a. **raw decode**: ``rasterio.open`` + ``read`` of the window of every S2 asset of every item
   the cube reads, at the level and window the cube itself reads (computed beforehand, as
   odc-geo computes it), nothing else;
b. **s2_cube**: :func:`tessera_assets.ingest.cubes.s2_cube` computed (asset checks, reads,
   20 m → 10 m resampling, same-day mosaics), without writing it;
c. **s2_cube + write**: the same, written into a fresh cube store (the Zarr write and commit).

All of it on one thread (dask's synchronous scheduler), as the issue measured it. Prints a
table of min/median seconds and the ratios b/a and c/a per tile size, and the top cumulative
entries of a cProfile of (b). Example (the numbers in docs/performance.md were taken this way)::

    .venv/bin/python benchmarks/bench_ingest_decode.py --tile-size 256 512 --tries 3 \\
        --out /tmp/bench-ingest.json
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import platform
import pstats
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import dask
import numpy as np
import rasterio
from odc.geo.converters import rio_geobox
from odc.geo.overlap import compute_reproject_roi
from odc.geo.roi import w_

from tessera_assets.aoi import load_aoi
from tessera_assets.catalog.factory import catalog_from_config
from tessera_assets.demo import DemoSpec, generate_demo_archive
from tessera_assets.demo.area import DEMO_AOI_UTM, DEMO_EPSG, demo_bounds
from tessera_assets.grid import Tile, tiles_for_geometry
from tessera_assets.ingest.cog_reading import ReadConfig
from tessera_assets.ingest.cubes import S2_CUBE_BANDS, s2_cube
from tessera_assets.products.cubes import cube_schema
from tessera_assets.sources.manifest import SceneManifest, build_manifest, search_tile
from tessera_assets.sources.plan_record import recorded_plan
from tessera_assets.store.zone_store import ZoneStore

S2 = "sentinel-2-c1-l2a"
LINEAGE = {"manifest_digest": "bench", "code_version": "bench", "config_digest": "bench"}


def _manifest(
    work: Path, tile_size: int, year: int, start: date, end: date
) -> tuple[Tile, SceneManifest]:
    tile = tiles_for_geometry(load_aoi(list(DEMO_AOI_UTM), crs=f"EPSG:{DEMO_EPSG}"), tile_size)[0]
    archive = generate_demo_archive(
        DemoSpec(
            epsg=DEMO_EPSG, bounds=demo_bounds([tile.bounds]), year=year, start=start, end=end
        ),
        work / f"archive-{tile_size}",
    )
    catalog = catalog_from_config("geoparquet", archive.catalog_dir)
    manifest = build_manifest(tile, year, search_tile(catalog, tile, year, {"s2": S2}))
    return tile, manifest


def _windows(tile: Tile, manifest: SceneManifest) -> list[tuple[str, Any]]:
    """(href, window) of every S2 asset the cube reads, as odc-geo computes the source region
    (bilinear 20 m bands: the same 0.05 px tolerance the cube's reader uses)."""
    out = []
    for items in manifest.days("s2").values():
        for item in items:
            plan = recorded_plan(item)
            for band in S2_CUBE_BANDS:
                bp = plan.band(band)
                with rasterio.open(item.assets[bp.asset].href) as src:
                    ttol = 0.9 if bp.resampling == "nearest" else 0.05
                    rr = compute_reproject_roi(rio_geobox(src), tile.geobox, ttol=ttol)
                    if rr.roi_src[0].stop > rr.roi_src[0].start:
                        out.append((item.assets[bp.asset].href, w_[rr.roi_src]))
    return out


def raw_decode(windows: list[tuple[str, Any]]) -> int:
    total = 0
    for href, window in windows:
        with rasterio.open(href) as src:
            total += src.read(1, window=window).nbytes
    return total


def cube_only(tile: Tile, manifest: SceneManifest) -> np.ndarray:
    return s2_cube(manifest, tile, read=ReadConfig())["bands"].data.compute()


def cube_and_write(tile: Tile, manifest: SceneManifest, root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
    ds = s2_cube(manifest, tile, read=ReadConfig())
    store = ZoneStore(str(root), "s2_cube", cube_schema("s2_cube", [manifest.year], tile.size))
    attrs = {k.removeprefix("tessera:"): v for k, v in ds.attrs.items() if k.startswith("tessera:")}
    store.write_tile(tile, manifest.year, ds, {**LINEAGE, **attrs})


def _times(fn: Callable[[], Any], tries: int) -> list[float]:
    out = []
    for _ in range(tries):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _profile(fn: Callable[[], Any], top: int) -> list[dict[str, Any]]:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = max(v[3] for v in stats.stats.values())  # the outermost cumulative time
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][3], reverse=True)[:top]
    return [
        {
            "function": f"{Path(f).name}:{line}({name})",
            "calls": v[1],
            "cumulative_s": round(v[3], 4),
            "share": round(v[3] / total, 3),
        }
        for (f, line, name), v in rows
    ]


def bench(tile_size: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    tile, manifest = _manifest(work, tile_size, args.year, args.start, args.end)
    windows = _windows(tile, manifest)
    days = manifest.days("s2")
    cube_only(tile, manifest)  # warm: imports, page cache
    raw_decode(windows)
    runs: dict[str, list[float]] = {"raw": [], "cube": [], "cube_write": []}
    store_root = work / f"store-{tile_size}"
    for _ in range(args.tries):  # interleaved, so load from other processes hits all three
        runs["raw"] += _times(lambda: raw_decode(windows), 1)
        runs["cube"] += _times(lambda: cube_only(tile, manifest), 1)
        runs["cube_write"] += _times(lambda: cube_and_write(tile, manifest, store_root), 1)
    stats = {
        k: {
            "min_s": round(min(v), 4),
            "median_s": round(statistics.median(v), 4),
            "all_s": [round(x, 4) for x in v],
        }
        for k, v in runs.items()
    }
    raw = stats["raw"]
    return {
        "tile_px": tile_size,
        "days": len(days),
        "items": sum(len(v) for v in days.values()),
        "windows": len(windows),
        **stats,
        "ratio_cube_raw": {s: round(stats["cube"][s] / raw[s], 2) for s in ("min_s", "median_s")},
        "ratio_write_raw": {
            s: round(stats["cube_write"][s] / raw[s], 2) for s in ("min_s", "median_s")
        },
        "profile_cube": _profile(lambda: cube_only(tile, manifest), args.top),
    }


def _table(results: list[dict[str, Any]]) -> str:
    head = (
        f"{'tile px':>7} {'items':>5} {'raw min/med s':>15} {'cube min/med s':>15} "
        f"{'+write min/med s':>17} {'b/a min/med':>12} {'c/a min/med':>12}"
    )
    lines = [head]

    def mm(r: dict[str, Any], k: str) -> str:
        return f"{r[k]['min_s']:.3f}/{r[k]['median_s']:.3f}"

    for r in results:
        lines.append(
            f"{r['tile_px']:>7} {r['items']:>5} {mm(r, 'raw'):>15} {mm(r, 'cube'):>15} "
            f"{mm(r, 'cube_write'):>17} "
            f"{r['ratio_cube_raw']['min_s']:>5.2f}/{r['ratio_cube_raw']['median_s']:<5.2f} "
            f"{r['ratio_write_raw']['min_s']:>5.2f}/{r['ratio_write_raw']['median_s']:<5.2f}"
        )
    for r in results:
        lines.append(f"\ncProfile of s2_cube at {r['tile_px']} px (cumulative):")
        lines += [
            f"  {p['share']:6.1%} {p['cumulative_s']:8.3f} s {p['calls']:>7}  {p['function']}"
            for p in r["profile_cube"]
        ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tile-size", type=int, nargs="+", default=[256, 512])
    ap.add_argument(
        "--period",
        default="2024-04-01:2024-04-30",
        help="first:last acquisition day of the archive (inclusive)",
    )
    ap.add_argument("--tries", type=int, default=3)
    ap.add_argument("--top", type=int, default=25, help="cProfile entries to report")
    ap.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "tessera-bench-ingest",
        help="archives are generated here once and reused",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    first, last = (date.fromisoformat(d) for d in args.period.split(":"))
    args.year, args.start, args.end = first.year, first, last
    args.work.mkdir(parents=True, exist_ok=True)
    with dask.config.set(scheduler="synchronous"):  # one core, as the issue measured
        results = [bench(size, args, args.work) for size in args.tile_size]
    report = {
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor(),
            "gdal": rasterio.__gdal_version__,
            "rasterio": rasterio.__version__,
        },
        "period": args.period,
        "tries": args.tries,
        "results": results,
    }
    print(_table(results))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

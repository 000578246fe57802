"""Generate the whole demo archive: land cover, COGs and stac-geoparquet catalogs.

Everything is written into a staging folder next to the destination and moved into place at
the end, then a marker recording the spec's digest is written. Asking again for the same spec
returns the existing archive without touching it; a different spec replaces it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import stac_geoparquet.arrow as sga

from tessera_assets.demo import items, landsat, sentinel1, sentinel2
from tessera_assets.demo.cog import write_cog
from tessera_assets.demo.context import DATA_DIR, DemoContext
from tessera_assets.demo.geo import to_lonlat
from tessera_assets.demo.grids import crop
from tessera_assets.demo.landcover import CLASSES, LandCover
from tessera_assets.demo.spec import GENERATOR_VERSION, DemoSpec

COLLECTIONS = (sentinel2.COLLECTION, sentinel1.COLLECTION, landsat.COLLECTION)
MARKER = "demo-archive.json"
LOCK_FILE = ".demo-archive.lock"
CATALOG_DIR = "catalog"
LANDCOVER_FILE = "landcover.tif"
_OWNED = (DATA_DIR, CATALOG_DIR, LANDCOVER_FILE)
_MIN_TASKS_PER_POOL = 24

_COLOURS = {
    LandCover.WINTER_CEREAL: (230, 200, 70),
    LandCover.SPRING_CEREAL: (240, 225, 130),
    LandCover.MAIZE: (250, 160, 40),
    LandCover.OILSEED_RAPE: (255, 240, 0),
    LandCover.GRASSLAND: (140, 200, 90),
    LandCover.DECIDUOUS_FOREST: (40, 130, 40),
    LandCover.EVERGREEN_FOREST: (10, 80, 40),
    LandCover.WATER: (40, 90, 200),
    LandCover.URBAN: (200, 60, 60),
    LandCover.BARE: (160, 120, 90),
}


class DemoArchiveError(RuntimeError):
    """The destination cannot hold a demo archive (e.g. foreign files in the way)."""


@dataclass(frozen=True)
class DemoArchive:
    """Where a generated archive lives and what it holds."""

    root: Path
    spec: DemoSpec
    catalog_paths: dict[str, Path]
    ndjson_paths: dict[str, Path]
    landcover_path: Path
    classes: dict[int, str]
    collections: list[str]
    item_counts: dict[str, int]
    bbox_lonlat: tuple[float, float, float, float] = field(default=(0.0, 0.0, 0.0, 0.0))

    @property
    def catalog_dir(self) -> Path:
        return self.root / CATALOG_DIR

    def item_dicts(self, collection: str, *, raw: bool = False) -> list[dict[str, Any]]:
        """The items of one collection as read back from its stac-geoparquet file, or with
        ``raw`` exactly as generated (the NDJSON copy keeps quirks that geoparquet normalises,
        such as Planetary Computer's ``start_datetime`` format)."""
        if raw:
            lines = self.ndjson_paths[collection].read_text().splitlines()
            return [json.loads(line) for line in lines if line.strip()]
        return list(sga.stac_table_to_items(pq.read_table(self.catalog_paths[collection])))

    @classmethod
    def from_marker(cls, root: Path) -> DemoArchive:
        record = json.loads((root / MARKER).read_text())
        return cls(
            root=root,
            spec=DemoSpec.model_validate(record["spec"]),
            catalog_paths={c: root / p for c, p in record["catalog_paths"].items()},
            ndjson_paths={c: root / p for c, p in record["ndjson_paths"].items()},
            landcover_path=root / LANDCOVER_FILE,
            classes={int(k): v for k, v in record["classes"].items()},
            collections=list(record["collections"]),
            item_counts=dict(record["item_counts"]),
            bbox_lonlat=tuple(record["bbox_lonlat"]),
        )


def generate_demo_archive(
    spec: DemoSpec | None = None,
    out_dir: Path | str = "data/demo",
    *,
    workers: int | None = None,
    force: bool = False,
) -> DemoArchive:
    """Generate (or reuse) the synthetic archive of ``spec`` under ``out_dir``.

    ``workers`` processes render scenes in parallel (default: the CPU count, at most 4, or
    none for short periods, where starting processes costs more than it saves); the output
    does not depend on it. ``force`` regenerates even when a complete archive of the same
    spec is already there.
    """
    spec = spec or DemoSpec()
    root = Path(out_dir).resolve()
    existing = _existing(root, spec)
    if existing is not None and not force:
        return existing
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root / LOCK_FILE):  # e.g. parallel Dagster steps asking for the same demo
        existing = _existing(root, spec)
        if existing is not None and not force:
            return existing
        return _generate(spec, root, workers)


def _generate(spec: DemoSpec, root: Path, workers: int | None) -> DemoArchive:
    for leftover in root.glob(".staging-*"):  # from interrupted runs (we hold the lock)
        shutil.rmtree(leftover)
    staging = root / f".staging-{spec.digest()[:12]}"
    staging.mkdir(parents=True)
    ctx = DemoContext.create(spec, write_root=staging, final_root=root)
    _write_landcover(ctx, staging / LANDCOVER_FILE)

    tasks: list[tuple[Callable[[DemoContext, Any], list[dict]], Any]] = [
        *((sentinel2.render, p) for p in sentinel2.schedule(spec)),
        *((sentinel1.render, p) for p in sentinel1.schedule(spec)),
        *((landsat.render, p) for p in landsat.schedule(spec, ctx.centre_lonlat)),
    ]
    if workers is None:
        workers = 1 if len(tasks) < _MIN_TASKS_PER_POOL else min(4, os.cpu_count() or 1)
    results = _run(ctx, tasks, workers)
    by_collection: dict[str, list[dict]] = {c: [] for c in COLLECTIONS}
    for item_list in results:
        for item in item_list:
            by_collection[item["collection"]].append(item)

    catalog_paths, ndjson_paths = {}, {}
    (staging / CATALOG_DIR).mkdir()
    for collection, found in by_collection.items():
        if not found:  # e.g. a short test period without a Landsat pass
            continue
        found.sort(key=lambda i: (i["properties"]["datetime"], i["id"]))
        catalog_paths[collection] = f"{CATALOG_DIR}/{collection}.parquet"
        ndjson_paths[collection] = f"{CATALOG_DIR}/{collection}.ndjson"
        _write_catalog(staging / catalog_paths[collection], collection, found)

    _replace(root, staging)
    x0, y0, x1, y1 = spec.bounds
    lons, lats = to_lonlat(spec.epsg, [x0, x1, x0, x1], [y0, y0, y1, y1])
    record = {
        "generator": GENERATOR_VERSION,
        "digest": spec.digest(),
        "spec": spec.model_dump(mode="json"),
        "catalog_paths": catalog_paths,
        "ndjson_paths": ndjson_paths,
        "classes": {str(k): v for k, v in CLASSES.items()},
        "collections": list(catalog_paths),
        "item_counts": {c: len(by_collection[c]) for c in catalog_paths},
        "bbox_lonlat": [min(lons), min(lats), max(lons), max(lats)],
        "note": "Synthetic demo data generated by tessera_assets.demo; not real observations.",
    }
    tmp = root / f"{MARKER}.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(root / MARKER)
    return DemoArchive.from_marker(root)


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (no-op where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: no concurrent-generation guard
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_worker_ctx: DemoContext | None = None


def _init_worker(ctx: DemoContext) -> None:
    global _worker_ctx
    _worker_ctx = ctx


def _render(task: tuple[Callable[[DemoContext, Any], list[dict]], Any]) -> list[dict]:
    assert _worker_ctx is not None
    return task[0](_worker_ctx, task[1])


def _run(ctx: DemoContext, tasks: list, workers: int) -> list[list[dict]]:
    """Render every task, in worker processes when ``workers`` > 1.

    Processes, not threads: GDAL's COG writer holds the GIL, so threads do not overlap. Workers
    come from a fork server (a clean, single-threaded parent) rather than a plain fork of the
    caller, which may hold locks in other threads (Dagster, DuckDB, GDAL). Results come back in
    task order, so the output does not depend on scheduling.
    """
    if workers <= 1 or len(tasks) < 2:
        return [task[0](ctx, task[1]) for task in tasks]
    methods = multiprocessing.get_all_start_methods()
    mp = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        mp.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(workers, mp_context=mp, initializer=_init_worker,
                             initargs=(ctx,)) as pool:
        return list(pool.map(_render, tasks, chunksize=4))


def _existing(root: Path, spec: DemoSpec) -> DemoArchive | None:
    """The archive already at ``root`` if it was made from ``spec`` and is complete."""
    marker = root / MARKER
    if not marker.exists():
        foreign = [name for name in _OWNED if (root / name).exists()]
        if foreign:
            raise DemoArchiveError(
                f"{root} already holds {foreign} but no {MARKER}: not a demo archive "
                "(or an interrupted one); remove them or choose another folder"
            )
        return None
    try:
        archive = DemoArchive.from_marker(root)
    except (ValueError, KeyError, OSError):
        return None
    if archive.spec.digest() != spec.digest():
        return None
    needed = [archive.landcover_path, *archive.catalog_paths.values(), *archive.ndjson_paths.values()]
    if not all(p.exists() for p in needed):
        return None
    return archive


def _replace(root: Path, staging: Path) -> None:
    """Move the staged archive into ``root``, replacing a previous demo archive there."""
    (root / MARKER).unlink(missing_ok=True)
    for name in _OWNED:
        target = root / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        (staging / name).rename(target)
    staging.rmdir()


def _write_landcover(ctx: DemoContext, path: Path) -> None:
    classes = crop(ctx.land.classes, ctx.base, ctx.area10)
    write_cog(
        path,
        np.ascontiguousarray(classes),
        ctx.area10,
        ctx.spec.epsg,
        nodata=0,
        categorical=True,
        colormap={int(c): (*rgb, 255) for c, rgb in _COLOURS.items()},
        tags={f"CLASS_{k}": v for k, v in CLASSES.items()},
    )


def _write_catalog(path: Path, collection: str, found: list[dict]) -> None:
    """One stac-geoparquet file per collection, with the raw items as NDJSON and the
    collection as JSON beside it."""
    meta = items.collection_dict(collection, found)
    sga.to_parquet(sga.parse_stac_items_to_arrow(found), path, collections={collection: meta})
    path.with_suffix(".ndjson").write_text("".join(json.dumps(i) + "\n" for i in found))
    path.with_name(f"{collection}.collection.json").write_text(json.dumps(meta, indent=2) + "\n")

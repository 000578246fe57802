"""STAC sensor tick time with ~10,000 registered tiles on the embedded (stac-geoparquet) catalog.

Builds a synthetic but realistically dense archive index over the registered area — Sentinel-2
MGRS-like 110 km granules every 5 days, Sentinel-1 250 × 170 km frames every 6 days, Landsat
185 km scenes every 8 days, from 1 January of this year until yesterday (or ``--archive-end``) —
as stac-geoparquet, registers AOIs with ~10,000 tiles of 2048 px (20.48 km) in several UTM
zones plus a far-away AOI (its own zone and latitude band), then evaluates the real ``stac_scene_sensor`` through Dagster (``build_sensor_context`` on an
instance holding the 10,000 tile partitions):

1. bootstrap tick (no cursor: finds the newest scenes, requests nothing);
2. a day of new scenes is published; tick (cold: index built) → the affected tile-years;
3. the same tick again from the same cursor (warm: index cached in the code server);
4. a tick with nothing new.

Example (the numbers in docs/performance.md, section "STAC sensor", were taken this way)::

    .venv/bin/python benchmarks/bench_sensor.py --out /tmp/bench-sensor
    .venv/bin/python benchmarks/bench_sensor.py --out /tmp/bench-sensor --archive-end 2024-12-20
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import stac_geoparquet.arrow as sgpa
from pyproj import Transformer
from shapely.geometry import box, mapping

S2, S1, LANDSAT = "sentinel-2-c1-l2a", "sentinel-1-rtc", "landsat-c2-l2"
NEW_DAYS = 1
AOIS = {
    # Four AOIs side by side (one request may cover at most 1,000,000 km²) ...
    **{f"europe-{i}": box(-5.0 + 6 * i, 41.0, 1.0 + 6 * i, 58.0) for i in range(5)},
    # ... and one far away, in its own zone and latitude band.
    "lake-victoria": box(32.0, -1.5, 33.5, 0.0),
}


def _grid_cells(zone: int, lon_lat_box: shapely.Geometry, size_m: float, step_m: float
                ) -> list[shapely.Geometry]:
    """Square footprints of ``size_m`` every ``step_m`` in a zone, as lon/lat polygons,
    keeping those that meet the area."""
    to_utm = Transformer.from_crs(4326, 32600 + zone, always_xy=True)
    to_ll = Transformer.from_crs(32600 + zone, 4326, always_xy=True)
    west = -180 + 6 * (zone - 1)
    part = lon_lat_box.intersection(box(west - 0.5, -80, west + 6.5, 84))
    if part.is_empty:
        return []
    xs, ys = to_utm.transform(*np.array(part.exterior.coords).T)
    cells = []
    for x0 in np.arange(np.floor(min(xs) / step_m) * step_m, max(xs), step_m):
        for y0 in np.arange(np.floor(min(ys) / step_m) * step_m, max(ys), step_m):
            cx = np.array([x0, x0 + size_m, x0 + size_m, x0, x0])
            cy = np.array([y0, y0, y0 + size_m, y0 + size_m, y0])
            lon, lat = to_ll.transform(cx, cy)
            poly = shapely.Polygon(zip(lon, lat, strict=True))
            if poly.intersects(lon_lat_box):
                cells.append(poly)
    return cells


def _items(collection: str, cells: list[shapely.Geometry], every_days: int, start: datetime,
           end: datetime, seed: int, area: str) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for ci, cell in enumerate(cells):
        lon = cell.centroid.x
        offset = int(hashlib.sha1(f"{collection}{area}{ci}".encode()).hexdigest(), 16) % every_days
        day = start + timedelta(days=offset)
        while day < end:
            when = day.replace(hour=10, minute=30) - timedelta(hours=lon / 15.0)
            stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            props: dict[str, Any] = {"datetime": stamp, "platform": "synthetic",
                                     "updated": stamp, "eo:cloud_cover": float(rng.uniform(0, 100))}
            if collection == S1:
                props["sat:orbit_state"] = "ascending" if (day.toordinal() // every_days) % 2 \
                    else "descending"
            out.append({
                "type": "Feature", "stac_version": "1.0.0",
                "id": f"{collection[:2]}-{area}-{ci:05d}-{day:%Y%m%d}", "collection": collection,
                "geometry": mapping(cell), "bbox": list(cell.bounds), "properties": props,
                "assets": {"data": {"href": f"s3://synthetic/{collection}/{ci}/{day:%Y%m%d}.tif",
                                    "type": "image/tiff; application=geotiff"}},
                "links": [],
            })
            day += timedelta(days=every_days)
    return out


def write_catalog(folder: Path, area: shapely.Geometry, zones: list[int], start: datetime,
                  end: datetime, tag: str, name: str) -> dict[str, int]:
    folder.mkdir(parents=True, exist_ok=True)
    specs = {S2: (110_000, 100_000, 5), S1: (250_000, 170_000, 6), LANDSAT: (185_000, 170_000, 8)}
    counts = {}
    for seed, (coll, (size, step, every)) in enumerate(specs.items()):
        cells = [c for z in zones for c in _grid_cells(z, area, size, step)]
        items = _items(coll, cells, every, start, end, seed, name)
        if items:  # geoparquet metadata, so DuckDB reads the geometry column as GEOMETRY
            sgpa.to_parquet(sgpa.parse_stac_items_to_arrow(items), folder / f"{coll}-{tag}.parquet")
        counts[coll] = len(items)
    return counts


def _zones(geom: shapely.Geometry) -> list[int]:
    from tessera_assets.grid import zone_for_lon

    west, _, east, _ = geom.bounds
    return list(range(zone_for_lon(west), zone_for_lon(east) + 1))


def _breakdown(settings, cursor) -> dict[str, float]:
    """Where a 'new scenes' tick spends its time, stage by stage (domain calls only)."""
    from tessera_assets.catalog.factory import catalog_from_settings
    from tessera_assets.ops.aoi_registry import AoiRegistry
    from tessera_assets.ops.planner import collections_of
    from tessera_assets.ops.scene_watch import TileIndex, scan_new_scenes

    out = {}
    t = time.perf_counter()
    tile_years = AoiRegistry(settings.root).tile_years()
    out["read_registry"] = time.perf_counter() - t
    t = time.perf_counter()
    index = TileIndex.build(tile_years)
    out["build_index"] = time.perf_counter() - t
    t = time.perf_counter()
    catalog = catalog_from_settings(settings.catalog)
    out["open_catalog"] = time.perf_counter() - t
    result = scan_new_scenes(catalog, index, collections_of(settings), cursor,
                             now=datetime.now(UTC), years=settings.years)
    for scan in result.scans:
        out[f"scan_{scan.collection}"] = scan.seconds
    return {k: round(v, 3) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench-sensor"))
    ap.add_argument("--tile-size", type=int, default=2048)
    ap.add_argument("--archive-end", default="live",
                    help="'live': the archive runs until yesterday (a catalog in service); or a "
                         "date such as 2024-12-20 (an archive that ended long ago, like the demo)")
    args = ap.parse_args()
    if args.archive_end == "live":
        catalog_end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) \
            - timedelta(days=NEW_DAYS)
    else:
        catalog_end = datetime.fromisoformat(args.archive_end).replace(tzinfo=UTC)
    year = catalog_end.year

    from dagster import DagsterInstance, build_sensor_context

    from tessera_assets.config import CatalogSettings, PipelineSettings
    from tessera_assets.defs import build_definitions
    from tessera_assets.defs.partitions import TILES
    from tessera_assets.defs.resources import CatalogResource, PipelineResource
    from tessera_assets.defs.sensors import _INDEX_CACHE, STAC_SENSOR
    from tessera_assets.ops.aoi_registry import AoiRegistry
    from tessera_assets.ops.scene_watch import WatchCursor

    shutil.rmtree(args.out, ignore_errors=True)
    catalog_dir = args.out / "catalog"
    settings = PipelineSettings(root=str(args.out / "data"), tile_size=args.tile_size,
                                years=[year], catalog=CatalogSettings(url=str(catalog_dir)))
    registry = AoiRegistry(settings.root)
    t0 = time.perf_counter()
    records = [registry.add(name, list(geom.bounds), [year], args.tile_size)
               for name, geom in AOIS.items()]
    tiles = sorted({t for r in records for t in r.tiles})
    zones = sorted({int(t[3:5]) for t in tiles})
    counts: dict[str, int] = {}
    for name, geom in AOIS.items():
        for coll, n in write_catalog(catalog_dir, geom.buffer(0.5), _zones(geom),
                                     datetime(year, 1, 1, tzinfo=UTC), catalog_end,
                                     f"{year}-{name}", name).items():
            counts[coll] = counts.get(coll, 0) + n
    setup_s = time.perf_counter() - t0
    print(f"{len(tiles):,} tiles in zones {zones}; catalog {counts} "
          f"({sum(counts.values()):,} items) built in {setup_s:.1f} s")

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TILES.name, tiles)
    defs = build_definitions(settings)
    sensor = next(s for s in defs.sensors if s.name == STAC_SENSOR)
    pipeline = PipelineResource(settings_json=settings.model_dump_json())
    resources = {"pipeline": pipeline, "catalog": CatalogResource(pipeline=pipeline)}

    def tick(cursor: str | None, label: str) -> tuple[str | None, dict[str, Any]]:
        with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
            t = time.perf_counter()
            result = sensor(ctx)
            seconds = time.perf_counter() - t
        runs = list(result.run_requests or [])
        row = {"tick": label, "seconds": round(seconds, 3), "run_requests": len(runs),
               "cursor_bytes": len(result.cursor or "")}
        print(json.dumps(row))
        return result.cursor, row

    rows = []
    cursor, row = tick(None, "bootstrap (no cursor)")
    rows.append(row)
    new_counts: dict[str, int] = {}
    for name, geom in AOIS.items():
        for coll, n in write_catalog(catalog_dir, geom.buffer(0.5), _zones(geom), catalog_end,
                                     catalog_end + timedelta(days=NEW_DAYS),
                                     f"new-{name}", name).items():
            new_counts[coll] = new_counts.get(coll, 0) + n
    print(f"published {new_counts} new items ({NEW_DAYS} day)")
    _INDEX_CACHE.clear()
    cursor2, row = tick(cursor, "new scenes, cold (index built)")
    rows.append(row)
    _, row = tick(cursor, "new scenes, warm (index cached)")
    rows.append(row)
    _, row = tick(cursor2, "nothing new, warm")
    rows.append(row)
    breakdown = _breakdown(settings, WatchCursor.from_json(cursor))
    print(json.dumps({"breakdown_s": breakdown}))
    print(json.dumps({"machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                      "python": platform.python_version(), "tiles": len(tiles),
                      "catalog_items": sum(counts.values()), "ticks": rows,
                      "breakdown_s": breakdown}, indent=1))


if __name__ == "__main__":
    main()

"""Served catalogs built from the real STAC fixtures: the published items, with the assets the
pipeline reads rewritten to small synthetic COGs whose grids match the items' ``proj:*``.

For each test location (a small tile inside the footprints of real items) the items that
cover it get COGs for their load-plan assets, cropped to a window around the tile; the
window keeps the item's own grid (origin, resolution, CRS), and ``proj:shape`` /
``proj:transform`` / ``proj:bbox`` are adjusted to the crop, so metadata and files agree.
Items without ``proj:*`` (OPERA from CMR) get a file on a 30 m UTM grid and keep their
metadata as published. Pixel values follow each catalog's conventions (S2 DN with or without
the +1000 BOA offset, S1 nodata -32768 or NaN, Landsat C2 DN and QA_PIXEL bits) so the cubes
are comparable across catalogs. Every other item is served as published.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
import rasterio.shutil
from affine import Affine
from pyproj import Transformer
from rasterio.io import MemoryFile
from shapely.geometry import shape

from tessera_assets.grid import PIXEL_SIZE, Tile, zone_for_lon
from tessera_assets.sources.load_plan import load_plan
from tessera_assets_tests.fixtures import stac_fixture_dir

TILE_SIZE = 64
MARGIN_M = 300.0


@dataclass(frozen=True)
class Location:
    """A test tile: inside the footprints of the named real items."""

    name: str
    lon: float
    lat: float

    @property
    def tile(self) -> Tile:
        zone = zone_for_lon(self.lon)
        epsg = 32600 + zone
        x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(self.lon, self.lat)
        span = TILE_SIZE * PIXEL_SIZE
        return Tile(zone=zone, col=int(x // span), row=int((9_400_000.0 - y) // span),
                    size=TILE_SIZE)


LOCATIONS = (
    Location("colorado", -105.044, 40.156),  # MGRS 13TDE: ES C1 x10, ES L2A, PC x2, Landsat
    Location("antarctic", -59.427, -60.422),  # MGRS 20EPT: one acquisition in two collections
    Location("iowa", -93.52, 41.99),  # OPERA burst T063-133417-IW3
    Location("libya", 15.177, 30.358),  # PC S1 RTC, descending
    Location("austria", 15.75, 48.25),  # CDSE 33UWP
    Location("coral-sea", 152.312, -11.568),  # USGS Landsat 092/068
)


@dataclass
class ServedArchive:
    """Items per catalog (as served), their stac-geoparquet files, and where the COGs are."""

    root: Path
    base_url: str
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    parquet: dict[str, Path] = field(default_factory=dict)
    """Per catalog: a folder of stac-geoparquet files, one per collection, with a
    ``collections.json`` listing them (what the STAC API serves)."""
    cogs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """Per location: (item id, asset key) with a COG."""

    def item(self, item_id: str) -> dict[str, Any]:
        for items in self.items.values():
            for it in items:
                if it["id"] == item_id:
                    return it
        raise KeyError(item_id)

    def path_of(self, href: str) -> Path:
        return self.root / href.removeprefix(self.base_url).lstrip("/")


def fixture_items() -> dict[str, list[dict[str, Any]]]:
    """Every fixture item (ItemCollections unpacked), grouped by catalog."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(stac_fixture_dir().glob("*.json")):
        doc = json.loads(path.read_text())
        feats = doc["features"] if doc.get("type") == "FeatureCollection" else [doc]
        out.setdefault(path.name.split("__")[0], []).extend(copy.deepcopy(feats))
    return out


def build_archive(root: Path, base_url: str, locations: Iterable[str] | None = None
                  ) -> ServedArchive:
    """Write the COGs under ``root`` (served at ``base_url``, e.g. an HTTP server's URL or
    ``root.as_uri()``) for ``locations`` (default all), and the catalogs' parquet files."""
    import stac_geoparquet.arrow as sga

    archive = ServedArchive(root=root, base_url=base_url.rstrip("/"))
    archive.items = fixture_items()
    wanted = set(locations) if locations is not None else {loc.name for loc in LOCATIONS}
    for loc in (loc for loc in LOCATIONS if loc.name in wanted):
        tile = loc.tile
        here = shape(tile_footprint(tile))
        done = archive.cogs.setdefault(loc.name, [])
        for catalog, items in archive.items.items():
            for doc in items:
                if not shape(doc["geometry"]).contains(here):
                    continue
                done.extend((doc["id"], key) for key in _materialise(archive, catalog, doc, tile))
    for catalog, items in archive.items.items():
        folder = root / "catalogs" / catalog
        folder.mkdir(parents=True, exist_ok=True)
        collections = []
        for coll in sorted({i["collection"] for i in items}):
            path = folder / f"{coll}.parquet"
            members = [copy.deepcopy(i) for i in items if i["collection"] == coll]
            sga.to_parquet(sga.parse_stac_items_to_arrow(members), path)
            collections.append(_collection(coll, path))
        (folder / "collections.json").write_text(json.dumps(collections))
        archive.parquet[catalog] = folder
    return archive


def _collection(coll: str, parquet: Path) -> dict[str, Any]:
    return {
        "type": "Collection", "id": coll, "stac_version": "1.0.0", "license": "other",
        "description": f"{coll} (real fixture items, assets rewritten to local COGs)",
        "extent": {"spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
                   "temporal": {"interval": [[None, None]]}},
        "links": [],
        "assets": {"data": {"href": str(parquet), "type": "application/vnd.apache.parquet"}},
    }


def tile_footprint(tile: Tile) -> dict[str, Any]:
    from shapely.geometry import mapping

    return mapping(tile.footprint_lonlat())


# --------------------------------------------------------------------------- COGs


def _materialise(archive: ServedArchive, catalog: str, doc: dict[str, Any], tile: Tile
                 ) -> list[str]:
    item = pystac.Item.from_dict(copy.deepcopy(doc))
    plan = load_plan(item)
    props = doc["properties"]
    item_epsg = _epsg(props) or tile.epsg
    written = []
    item_grid = _grid(props)
    for band in plan.bands:
        asset = doc["assets"][band.asset]
        grid = _grid(asset) or item_grid
        epsg = _epsg(asset) or item_epsg
        if grid is None:  # no proj:* (OPERA): a 30 m grid of our own, metadata untouched
            grid = ([30.0, 0.0, 0.0, 0.0, -30.0, 0.0], None)
        transform, shape_ = _crop(grid, tile, epsg)
        values = _values(catalog, doc["id"], band.band, plan, transform, shape_, epsg)
        rel = f"{catalog}/{doc['id']}/{band.asset}.tif"
        _write_cog(archive.root / rel, values, transform, epsg, band.nodata)
        asset["href"] = f"{archive.base_url}/{rel}"
        if _grid(asset):
            _set_grid(asset, transform, shape_)
        written.append(band.asset)
    if item_grid is not None:  # item-level grid (PC S1, Landsat): every asset shares it
        transform, shape_ = _crop(item_grid, tile, item_epsg)
        _set_grid(props, transform, shape_)
    return written


def _epsg(obj: dict[str, Any]) -> int | None:
    if obj.get("proj:epsg"):
        return int(obj["proj:epsg"])
    code = obj.get("proj:code")
    return int(str(code).split(":")[-1]) if code else None


def _grid(obj: dict[str, Any]) -> tuple[list[float], list[int] | None] | None:
    if "proj:transform" in obj:
        return [float(v) for v in obj["proj:transform"][:6]], list(obj.get("proj:shape") or [])
    return None


def _set_grid(obj: dict[str, Any], transform: Affine, shape_: tuple[int, int]) -> None:
    full = [transform.a, transform.b, transform.c, transform.d, transform.e, transform.f]
    if len(obj.get("proj:transform", [])) == 9:
        full += [0.0, 0.0, 1.0]
    obj["proj:transform"] = full
    obj["proj:shape"] = list(shape_)
    if "proj:bbox" in obj:
        h, w = shape_
        obj["proj:bbox"] = [transform.c, transform.f + h * transform.e,
                            transform.c + w * transform.a, transform.f]


def _crop(grid: tuple[list[float], list[int] | None], tile: Tile, epsg: int
          ) -> tuple[Affine, tuple[int, int]]:
    """The window of the item's grid around the tile (plus a margin), clipped to the grid."""
    (res, _, x0, _, neg_res, y0), full = grid
    west, south, east, north = tile.bounds
    if epsg != tile.epsg:
        tr = Transformer.from_crs(tile.epsg, epsg, always_xy=True)
        xs, ys = tr.transform([west, east, west, east], [south, south, north, north])
        west, east, south, north = min(xs), max(xs), min(ys), max(ys)
    west, south, east, north = (west - MARGIN_M, south - MARGIN_M, east + MARGIN_M,
                                north + MARGIN_M)
    col0, col1 = math.floor((west - x0) / res), math.ceil((east - x0) / res)
    row0, row1 = math.floor((y0 - north) / -neg_res), math.ceil((y0 - south) / -neg_res)
    if full:
        col0, row0 = max(col0, 0), max(row0, 0)
        col1, row1 = min(col1, full[1]), min(row1, full[0])
    if col1 <= col0 or row1 <= row0:
        raise ValueError(f"tile {tile.id} is outside the item's grid")
    return Affine(res, 0.0, x0 + col0 * res, 0.0, neg_res, y0 + row0 * neg_res), (
        row1 - row0, col1 - col0)


def _seed(*parts: str) -> int:
    return int(hashlib.sha256("/".join(parts).encode()).hexdigest()[:8], 16)


def _values(catalog: str, item_id: str, band: str, plan: Any, transform: Affine,
            shape_: tuple[int, int], epsg: int) -> np.ndarray:
    """Smooth fields of world coordinates (so overlapping granules agree), with per-item
    clouds and a nodata strip, in the catalog's value conventions."""
    h, w = shape_
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    x = transform.c + cols * transform.a
    y = transform.f + rows * transform.e
    seed = _seed(item_id)
    k = _seed(band) % 97 / 97.0
    field_ = 0.5 + 0.5 * np.sin(x / 410.0 + 6.0 * k) * np.cos(y / 530.0 - 3.0 * k)
    blob = ((np.floor((x + seed % 1000) / 240) + np.floor((y - seed % 700) / 240)) % 6)
    edge = x < (transform.c + (w * transform.a) * (0.25 + (seed % 20) / 100.0))
    sensor = plan.sensor
    if sensor == "s2":
        if band == "SCL":
            scl = np.full((h, w), 4, np.uint8)
            scl[blob == 0] = 9
            scl[blob == 1] = 3
            scl[field_ > 0.9] = 6
            return np.where(edge, 0, scl).astype(np.uint8)
        refl = 0.02 + 0.4 * field_
        dn = np.round(refl * 10000).astype(np.int64) + int(plan.boa_offset.value)
        return np.where(edge, 0, dn).astype(np.uint16)
    if sensor == "s1":
        gamma0 = (0.01 + 0.25 * field_ * (1.3 if band == "vv" else 0.4)).astype(np.float32)
        nodata = np.nan if plan.band(band).data_type == "float32" and math.isnan(
            plan.band(band).nodata) else -32768.0
        return np.where(edge, nodata, gamma0).astype(np.float32)
    if band == "qa_pixel":
        qa = np.full((h, w), 21824, np.uint16)  # clear, low confidences
        qa[blob == 0] = 22280  # cloud + dilated cloud, high confidence
        return np.where(edge, 1, qa).astype(np.uint16)
    refl = 0.03 + 0.35 * field_
    dn = np.round((refl + 0.2) / 2.75e-5).astype(np.int64)
    return np.where(edge, 0, dn).astype(np.uint16)


def _write_cog(path: Path, values: np.ndarray, transform: Affine, epsg: int,
               nodata: float | int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = values.shape
    profile = {"driver": "GTiff", "width": w, "height": h, "count": 1,
               "dtype": values.dtype.name, "crs": f"EPSG:{epsg}", "transform": transform,
               "nodata": nodata}
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(values, 1)
        with mem.open() as src:
            rasterio.shutil.copy(src, path, driver="COG", blocksize=64, compress="DEFLATE",
                                 overviews="NONE")



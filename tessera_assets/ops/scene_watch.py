"""Which registered tile-years gained scenes: the domain logic of the STAC sensor (DESIGN §8).

A tick must stay cheap with tens of thousands of registered tiles, so it never searches per
tile. Instead:

1. :class:`TileIndex` holds every registered tile's lon/lat footprint in a shapely STRtree and a
   handful of search boxes (one per UTM zone, split where the zone's tiles leave a latitude gap);
2. each collection is searched once per box, for acquisitions from the cursor's watermark minus
   a look-back window onwards;
3. items not seen before (by collection, id and ``updated`` time, so a republished item counts
   as new) are matched to tiles with one vectorised STRtree query, and to years by their solar
   day, exactly as the scene manifest assigns them.

The cursor (:class:`WatchCursor`) keeps, per collection, the newest acquisition time seen and
short hashes of the items inside the look-back window. Scenes older than the window when they
are published are not noticed; re-running a tile-year's ``scene_manifest`` (or a backfill)
picks them up.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pystac
import shapely
from pyproj import Transformer

from tessera_assets.catalog.base import Catalog
from tessera_assets.grid import PIXEL_SIZE, ZONE_ORIGIN_X, ZONE_ORIGIN_Y, Tile, zone_epsg
from tessera_assets.sources.decisions import item_datetime, solar_day

BBox = tuple[float, float, float, float]
CURSOR_VERSION = 1
LATITUDE_GAP_DEG = 1.0
"""Tiles of one zone further apart than this (in latitude) get separate search boxes."""
_KEY_CHARS = 12
BOOTSTRAP_MAX_STEPS = 4
"""The longest window a bootstrap search reads, in look-backs."""


# ----------------------------------------------------------------------------- tile index


def tile_footprints(tiles: Iterable[Tile], per_edge: int = 4) -> np.ndarray:
    """Lon/lat footprint polygons of many tiles, vectorised per zone (one pyproj transformer
    per zone instead of one per tile: 10,000 tiles take milliseconds, not minutes)."""
    tiles = list(tiles)
    out = np.empty(len(tiles), dtype=object)
    by_zone: dict[int, list[int]] = {}
    for i, t in enumerate(tiles):
        by_zone.setdefault(t.zone, []).append(i)
    f = np.linspace(0.0, 1.0, per_edge, endpoint=False)
    # Unit square walked clockwise from the north-west corner: (dx, dy) in tile spans.
    ux = np.concatenate([f, np.ones(per_edge), 1 - f, np.zeros(per_edge)])
    uy = np.concatenate([np.zeros(per_edge), f, np.ones(per_edge), 1 - f])
    for zone, idx in by_zone.items():
        span = np.array([tiles[i].size * PIXEL_SIZE for i in idx])
        west = ZONE_ORIGIN_X + np.array([tiles[i].col for i in idx]) * span
        north = ZONE_ORIGIN_Y - np.array([tiles[i].row for i in idx]) * span
        xs = west[:, None] + ux[None, :] * span[:, None]
        ys = north[:, None] - uy[None, :] * span[:, None]
        fwd = Transformer.from_crs(zone_epsg(zone), 4326, always_xy=True)
        lon, lat = fwd.transform(xs, ys)
        out[idx] = shapely.polygons(np.stack([lon, lat], axis=-1))
    return out


def search_boxes(footprints: np.ndarray, zones: np.ndarray,
                 gap_deg: float = LATITUDE_GAP_DEG) -> list[BBox]:
    """Few lon/lat boxes covering all footprints: one per zone, split at latitude gaps, so
    AOIs far apart in one zone do not make one box that pulls in everything between them."""
    bounds = shapely.bounds(footprints)
    boxes: list[BBox] = []
    for zone in np.unique(zones):
        b = bounds[zones == zone]
        b = b[np.argsort(b[:, 1])]
        cur = list(b[0])
        for w, s, e, n in b[1:]:
            if s > cur[3] + gap_deg:
                boxes.append(_clamp(cur))
                cur = [w, s, e, n]
            else:
                cur = [min(cur[0], w), cur[1], max(cur[2], e), max(cur[3], n)]
        boxes.append(_clamp(cur))
    return boxes


def _clamp(b: list[float]) -> BBox:
    return (max(-180.0, b[0]), max(-90.0, b[1]), min(180.0, b[2]), min(90.0, b[3]))


@dataclass
class TileIndex:
    """Registered tiles (with the years each is registered for) in a spatial index."""

    ids: list[str]
    years: list[frozenset[int]]
    footprints: np.ndarray
    boxes: list[BBox]
    tree: shapely.STRtree
    key: str

    @classmethod
    def build(cls, tile_years: Mapping[str, Iterable[int]]) -> TileIndex:
        ids = sorted(tile_years)
        if not ids:
            raise ValueError("no registered tiles")
        tiles = [Tile.parse(t) for t in ids]
        footprints = tile_footprints(tiles)
        zones = np.array([t.zone for t in tiles])
        years = [frozenset(int(y) for y in tile_years[t]) for t in ids]
        return cls(ids=ids, years=years, footprints=footprints,
                   boxes=search_boxes(footprints, zones), tree=shapely.STRtree(footprints),
                   key=index_key(tile_years))

    def __len__(self) -> int:
        return len(self.ids)

    def match(self, geometries: np.ndarray) -> np.ndarray:
        """(2, K) array of (geometry index, tile index) pairs that intersect."""
        if len(geometries) == 0:
            return np.empty((2, 0), dtype=np.intp)
        return self.tree.query(geometries, predicate="intersects")


def index_key(tile_years: Mapping[str, Iterable[int]]) -> str:
    """Digest of the registered tile-years: the index is rebuilt only when it changes."""
    blob = json.dumps(sorted((t, sorted(int(y) for y in ys)) for t, ys in tile_years.items()))
    return hashlib.sha1(blob.encode()).hexdigest()


# ----------------------------------------------------------------------------- items → tiles


def item_key(item: pystac.Item) -> str:
    """Short hash of what makes an item new: collection, id and ``updated`` time."""
    updated = item.properties.get("updated") or ""
    blob = f"{item.collection_id}/{item.id}/{updated}"
    return hashlib.sha1(blob.encode()).hexdigest()[:_KEY_CHARS]


def item_geometry(item: pystac.Item) -> shapely.Geometry:
    if item.geometry:
        return shapely.geometry.shape(item.geometry)
    if item.bbox:  # 2-D (w, s, e, n) or 3-D (w, s, zmin, e, n, zmax)
        b = item.bbox
        return shapely.box(b[0], b[1], b[2], b[3]) if len(b) == 4 else shapely.box(b[0], b[1], b[3], b[4])
    return shapely.Point()


def item_year(item: pystac.Item) -> int:
    """The year a scene counts for: its local solar day's, as in the scene manifest."""
    try:
        return solar_day(item).year
    except Exception:  # an item without a usable datetime/bbox counts by its UTC date
        return item_datetime(item).year


def _usable(item: pystac.Item, sensor: str, max_s2_cloud_cover: float) -> bool:
    """Scenes the manifest would skip for their cloud cover do not change a scene set."""
    if sensor != "s2":
        return True
    cloud = item.properties.get("eo:cloud_cover")
    return cloud is None or float(cloud) <= max_s2_cloud_cover


def match_items(
    index: TileIndex,
    items: list[pystac.Item],
    sensor: str,
    *,
    years: Iterable[int] | None = None,
    max_s2_cloud_cover: float = 100.0,
) -> Iterator[tuple[str, int, pystac.Item]]:
    """(tile id, year, item) for every item footprint meeting a registered tile in one of the
    tile's registered years (and ``years``, when given)."""
    allowed = None if years is None else {int(y) for y in years}
    usable = [it for it in items if _usable(it, sensor, max_s2_cloud_cover)]
    if not usable:
        return
    geoms = np.array([item_geometry(it) for it in usable], dtype=object)
    item_years = [item_year(it) for it in usable]
    pairs = index.match(geoms)
    for i, t in zip(pairs[0].tolist(), pairs[1].tolist(), strict=True):
        year = item_years[i]
        if year in index.years[t] and (allowed is None or year in allowed):
            yield index.ids[t], year, usable[i]


# ----------------------------------------------------------------------------- cursor


@dataclass
class CollectionCursor:
    watermark: str | None = None
    """ISO time of the newest acquisition seen (UTC)."""
    seen: list[str] = field(default_factory=list)
    """Item keys (:func:`item_key`) within the look-back window of the watermark."""


@dataclass
class WatchCursor:
    collections: dict[str, CollectionCursor] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"v": CURSOR_VERSION, "collections": {
            c: {"watermark": cc.watermark, "seen": sorted(cc.seen)}
            for c, cc in sorted(self.collections.items())}}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> WatchCursor:
        """Parse a cursor; an empty, foreign or older-version one starts afresh."""
        if not text:
            return cls()
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            return cls()
        if not isinstance(doc, dict) or doc.get("v") != CURSOR_VERSION:
            return cls()
        return cls({c: CollectionCursor(d.get("watermark"), list(d.get("seen") or []))
                    for c, d in (doc.get("collections") or {}).items()})


# ----------------------------------------------------------------------------- scanning


@dataclass
class CollectionScan:
    collection: str
    bootstrap: bool
    window: tuple[str, str]
    items: int
    new: int
    seconds: float
    skipped: str = ""
    """Why the collection was not searched (e.g. the catalog does not hold it)."""
    source: str = ""
    """The catalog searched (``preset@URL``; one per sensor where sensors name their own)."""


def holds(catalog: Catalog, collection: str) -> bool:
    """False only when the catalog lists its collections and this one is not among them (a
    demo archive of a short period may have no Landsat pass); STAC APIs are always asked. A
    catalog per sensor (:class:`~tessera_assets.catalog.routed.RoutedCatalog`) answers for
    the catalog of the collection's sensor."""
    if callable(getattr(catalog, "holds", None)):
        return bool(catalog.holds(collection))  # type: ignore[attr-defined]
    known = getattr(catalog, "collections", None)
    return not isinstance(known, list | tuple | set) or collection in known


@dataclass
class ScanResult:
    affected: dict[tuple[str, int], list[str]]
    """(tile id, year) → ids of its new items."""
    keys: dict[tuple[str, int], list[str]]
    """(tile id, year) → :func:`item_key` of its new items (id + ``updated``: a republished
    item gets a new key, so it makes a new run key)."""
    cursor: WatchCursor
    scans: list[CollectionScan]
    seconds: float

    @property
    def new_items(self) -> int:
        return sum(s.new for s in self.scans)


def source_of(catalog: Catalog, collection: str) -> str:
    """Which catalog a collection is searched in, for logs."""
    sources = getattr(catalog, "sources", None)
    if isinstance(sources, dict) and collection in sources:
        return str(sources[collection])
    return str(getattr(catalog, "url", "") or repr(catalog))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def search_collection(catalog: Catalog, collection: str, boxes: Iterable[BBox],
                      start: datetime, end: datetime) -> list[pystac.Item]:
    """The items of ``collection`` in any of ``boxes`` between ``start`` and ``end``, each once
    (boxes may overlap)."""
    found: dict[str, pystac.Item] = {}
    for box in boxes:
        for it in catalog.search(collections=[collection], bbox=box, start=start, end=end):
            found.setdefault(it.id, it)
    return list(found.values())


def _bootstrap(catalog: Catalog, collection: str, boxes: list[BBox], now: datetime,
               earliest: datetime, lookback: timedelta
               ) -> tuple[datetime | None, list[pystac.Item]]:
    """The newest acquisition time and the items within ``lookback`` of it.

    Searches back from ``now`` in windows that double in length (``lookback``, 2×, 4×, up to
    :data:`BOOTSTRAP_MAX_STEPS` × ``lookback``): a live catalog answers from the first, small
    window; an archive that ended long ago (the demo) costs some empty searches, and the window
    that finds it never holds more than a few look-backs of items. Nothing back to
    ``earliest`` → no watermark."""
    end, step = now, lookback
    while end > earliest:
        start = max(earliest, end - step)
        items = search_collection(catalog, collection, boxes, start, end)
        step = min(step * 2, lookback * BOOTSTRAP_MAX_STEPS)
        if items:
            mark = max(_utc(item_datetime(it)) for it in items)
            if mark - lookback < start:  # the baseline must cover the whole window
                items += search_collection(catalog, collection, boxes, mark - lookback, start)
            keep = mark - lookback
            return mark, [it for it in items if _utc(item_datetime(it)) >= keep]
        end = start
    return None, []


def scan_new_scenes(
    catalog: Catalog,
    index: TileIndex,
    collections: Mapping[str, str],
    cursor: WatchCursor,
    *,
    now: datetime,
    years: Iterable[int],
    lookback: timedelta = timedelta(days=14),
    max_s2_cloud_cover: float = 100.0,
) -> ScanResult:
    """New items per collection since the cursor, mapped to the tile-years they change.

    ``collections`` maps sensor (``s2``, ``s1``, ``landsat``) to collection id. A collection
    the cursor has not seen yet is *bootstrapped*: its newest items become the baseline and no
    tile-year is reported for them (existing partitions were built from the same catalog;
    missing ones are a backfill's job, not the sensor's).
    """
    t0 = time.perf_counter()
    now = _utc(now)
    years = sorted({int(y) for y in years})
    earliest = datetime(years[0], 1, 1, tzinfo=UTC) - timedelta(days=1)
    affected: dict[tuple[str, int], set[str]] = {}
    keys: dict[tuple[str, int], set[str]] = {}
    scans: list[CollectionScan] = []
    out = WatchCursor()
    for sensor, collection in collections.items():
        t1 = time.perf_counter()
        prev = cursor.collections.get(collection)
        if not holds(catalog, collection):
            out.collections[collection] = prev or CollectionCursor()
            scans.append(CollectionScan(collection, False, ("", ""), 0, 0, 0.0,
                                        "not in the catalog", source_of(catalog, collection)))
            continue
        if prev is None or prev.watermark is None:
            mark, items = _bootstrap(catalog, collection, index.boxes, now, earliest, lookback)
            new: list[pystac.Item] = []
            window = ((mark - lookback).isoformat() if mark else earliest.isoformat(),
                      now.isoformat())
            bootstrap = True
        else:
            mark = _utc(datetime.fromisoformat(prev.watermark))
            start = mark - lookback
            items = search_collection(catalog, collection, index.boxes, start, now)
            seen = set(prev.seen)
            new = [it for it in items if item_key(it) not in seen]
            window = (start.isoformat(), now.isoformat())
            bootstrap = False
        for tile_id, year, item in match_items(index, new, sensor, years=years,
                                               max_s2_cloud_cover=max_s2_cloud_cover):
            affected.setdefault((tile_id, year), set()).add(item.id)
            keys.setdefault((tile_id, year), set()).add(item_key(item))
        if items:
            newest = max(_utc(item_datetime(it)) for it in items)
            mark = newest if mark is None else max(mark, newest)
        keep_from = (mark - lookback) if mark else None
        seen_keys = sorted({item_key(it) for it in items
                            if keep_from is None or _utc(item_datetime(it)) >= keep_from})
        out.collections[collection] = CollectionCursor(
            mark.isoformat() if mark else None, seen_keys)
        scans.append(CollectionScan(collection, bootstrap, window, len(items), len(new),
                                    time.perf_counter() - t1,
                                    source=source_of(catalog, collection)))
    return ScanResult({k: sorted(v) for k, v in sorted(affected.items())},
                      {k: sorted(v) for k, v in sorted(keys.items())}, out, scans,
                      time.perf_counter() - t0)

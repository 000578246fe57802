"""The tile grid: per-UTM-zone square tiles on a fixed 10 m lattice (DESIGN §3).

Every zone uses its *northern* CRS (EPSG:326NN) for both hemispheres, so southern tiles have
negative northings; this is the published TESSERA Zarr convention and gives each zone one
continuous y axis. Tiles are counted from a fixed zone origin, so a tile's pixel window inside
the zone-wide Zarr arrays is a pure function of its id, and every tile is a whole number of
storage chunks (``tile_size`` must be a multiple of the chunk size).

The lattice is odc-geo's: a :class:`~odc.geo.gridspec.GridSpec` per zone, tile size and
resolution gives each tile's geobox, and :class:`~odc.geo.geobox.GeoboxTiles` over the zone-wide
geobox gives its pixel window. This module is also the one place that says which tile sizes and
resolutions are valid (:func:`check_tile_size`, :func:`tile_pixels`, :func:`coarsen_factor`);
settings, store schemas and the coarse product call these rules instead of restating them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import shapely
from affine import Affine
from odc.geo import xy_
from odc.geo.geobox import GeoBox, GeoboxTiles
from odc.geo.gridspec import GridSpec
from pyproj import Transformer
from shapely import geometry as sg
from shapely.geometry.base import BaseGeometry

PIXEL_SIZE = 10.0
"""Metres per pixel of every fine product."""

ZONE_ORIGIN_X = 0.0
"""Easting of the zone-wide arrays' west edge (m). UTM eastings never go below ~160 km."""
ZONE_ORIGIN_Y = 9_400_000.0
"""Northing of the zone-wide arrays' north edge (m): north of 84°N, the UTM limit."""
ZONE_WIDTH_M = 1_000_000.0
ZONE_SOUTH_Y = -9_000_000.0
"""Canonical northing of the south edge (m): south of 80°S, the UTM limit."""

UTM_MIN_LAT = -80.0
UTM_MAX_LAT = 84.0
DEFAULT_TILE_SIZE = 2048
STORAGE_CHUNK = 32
"""Inner chunk size of the published TESSERA layout; tiles must be multiples of it."""

_TILE_ID = re.compile(r"^(?P<epsg>326\d\d)_(?P<size>\d+)_(?P<col>\d+)_(?P<row>\d+)$")
_WHOLE = 1e-9
"""Tolerance for "a whole number of pixels" (resolutions are floats)."""
_CANDIDATE_BLOCK = 4096
"""Candidate tiles tested against an AOI per vectorised step (bounds memory)."""


class GridError(ValueError):
    """A tile id, zone, tile size or resolution that the grid cannot represent."""


# -- Which tile sizes and resolutions are valid: the one place these rules live. ----------------


def check_tile_size(tile_size: int) -> int:
    """``tile_size`` (10 m px) if it is a positive multiple of :data:`STORAGE_CHUNK`, so a tile
    is always whole storage chunks; else :class:`GridError`."""
    if tile_size <= 0 or tile_size % STORAGE_CHUNK:
        raise GridError(
            f"tile size must be a positive multiple of {STORAGE_CHUNK} px, got {tile_size}")
    return tile_size


def valid_resolutions(tile_size: int) -> list[float]:
    """Resolutions (m, 10 m and coarser) at which a tile of ``tile_size`` px is whole pixels."""
    return [tile_size * PIXEL_SIZE / n for n in range(tile_size, 0, -1) if tile_size % n == 0]


def tile_pixels(tile_size: int, resolution: float = PIXEL_SIZE) -> int:
    """Pixels along a tile's side at ``resolution``; :class:`GridError` unless the resolution
    divides the tile span into whole pixels (products at any resolution share the tile grid)."""
    check_tile_size(tile_size)
    span = tile_size * PIXEL_SIZE
    n = span / resolution if resolution > 0 and math.isfinite(resolution) else 0.0
    if abs(n - round(n)) > _WHOLE or round(n) < 1:
        choices = ", ".join(f"{r:g}" for r in valid_resolutions(tile_size))
        raise GridError(f"resolution {resolution:g} m does not divide the tile span {span:g} m; "
                        f"valid resolutions: {choices} m")
    return round(n)


def valid_coarse_resolutions(tile_size: int, fine_resolution: float = PIXEL_SIZE) -> list[float]:
    """Coarse resolutions (m) :func:`coarsen_factor` accepts for a tile of ``tile_size`` px."""
    return [fine_resolution * f for f in range(2, tile_size + 1) if tile_size % f == 0]


def coarsen_factor(tile_size: int, resolution: float, fine_resolution: float = PIXEL_SIZE) -> int:
    """Fine pixels per coarse pixel side for a coarse ``resolution``, validated against the tile.

    The coarse resolution must be a whole multiple (≥ 2) of the fine one and divide the tile
    span, so every tile is a whole number of coarse pixels (one coarse shard per tile).
    """
    check_tile_size(tile_size)
    factor = resolution / fine_resolution if math.isfinite(resolution) else 0.0
    if abs(factor - round(factor)) > _WHOLE or round(factor) < 2 or tile_size % round(factor):
        choices = ", ".join(f"{v:g}" for v in valid_coarse_resolutions(tile_size, fine_resolution))
        raise GridError(
            f"coarse resolution {resolution:g} m does not divide the "
            f"{tile_size * fine_resolution:g} m tile ({tile_size} px at {fine_resolution:g} m) "
            f"into whole pixels; valid resolutions: {choices} m"
        )
    return round(factor)


# -- Zones. -----------------------------------------------------------------------------------


def zone_epsg(zone: int) -> int:
    """EPSG code of a zone's canonical (northern) CRS."""
    if not 1 <= zone <= 60:
        raise GridError(f"UTM zone must be 1..60, got {zone}")
    return 32600 + zone


def zone_for_lon(lon: float) -> int:
    """UTM zone number containing a longitude (the regular 6° bands, no Norway exceptions)."""
    return max(1, min(60, math.floor((lon + 180.0) / 6.0) + 1))


def zone_lon_bounds(zone: int) -> tuple[float, float]:
    west = -180.0 + 6.0 * (zone - 1)
    return west, west + 6.0


def zone_shape_px(resolution: float = PIXEL_SIZE) -> tuple[int, int]:
    """(height, width) in pixels of the zone-wide arrays."""
    return (
        round((ZONE_ORIGIN_Y - ZONE_SOUTH_Y) / resolution),
        round(ZONE_WIDTH_M / resolution),
    )


def zone_geobox(zone: int, resolution: float = PIXEL_SIZE) -> GeoBox:
    """The geobox of a zone's whole array extent at ``resolution``."""
    h, w = zone_shape_px(resolution)
    affine = Affine(resolution, 0.0, ZONE_ORIGIN_X, 0.0, -resolution, ZONE_ORIGIN_Y)
    return GeoBox((h, w), affine, f"EPSG:{zone_epsg(zone)}")


@lru_cache(maxsize=256)
def zone_grid(zone: int, tile_size: int = DEFAULT_TILE_SIZE,
              resolution: float = PIXEL_SIZE) -> GridSpec:
    """A zone's tile lattice: GridSpec index ``(col, row)`` is tile ``col``/``row``, columns
    counted east and rows south from the zone origin (``flipy``; odc-geo's origin is the
    bottom-left corner of tile (0, 0), one tile below the zone's north edge)."""
    n = tile_pixels(tile_size, resolution)
    span = n * resolution
    return GridSpec(f"EPSG:{zone_epsg(zone)}", (n, n), resolution,
                    origin=xy_(ZONE_ORIGIN_X, ZONE_ORIGIN_Y - span), flipy=True)


@lru_cache(maxsize=256)
def zone_tiles(zone: int, tile_size: int = DEFAULT_TILE_SIZE,
               resolution: float = PIXEL_SIZE) -> GeoboxTiles:
    """The zone-wide geobox at ``resolution`` cut into tiles, indexed ``(row, col)``."""
    n = tile_pixels(tile_size, resolution)
    return GeoboxTiles(zone_geobox(zone, resolution), (n, n))


# -- Tiles. -----------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Tile:
    """One square tile of ``size`` pixels at 10 m in a UTM zone.

    ``col``/``row`` count tiles east/south from the zone origin. The id
    ``{epsg}_{size}_{col}_{row}`` is stable, self-describing and parses back.
    """

    zone: int
    col: int
    row: int
    size: int = DEFAULT_TILE_SIZE

    def __post_init__(self) -> None:
        zone_epsg(self.zone)
        check_tile_size(self.size)
        h, w = zone_shape_px()
        if not (0 <= self.col < w // self.size and 0 <= self.row < h // self.size):
            raise GridError(f"tile col/row {self.col}/{self.row} outside zone {self.zone}")

    @property
    def epsg(self) -> int:
        return zone_epsg(self.zone)

    @property
    def crs(self) -> str:
        return f"EPSG:{self.epsg}"

    @property
    def id(self) -> str:
        return f"{self.epsg}_{self.size}_{self.col}_{self.row}"

    def __str__(self) -> str:
        return self.id

    @classmethod
    def parse(cls, tile_id: str) -> Tile:
        m = _TILE_ID.match(tile_id.strip())
        if not m:
            raise GridError(
                f"not a tile id: {tile_id!r} (expected '{{epsg}}_{{size}}_{{col}}_{{row}}', "
                "e.g. '32630_2048_31_177')"
            )
        return cls(
            zone=int(m["epsg"]) - 32600,
            col=int(m["col"]),
            row=int(m["row"]),
            size=int(m["size"]),
        )

    @property
    def span_m(self) -> float:
        return self.size * PIXEL_SIZE

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in the zone's canonical CRS."""
        return self.geobox.boundingbox.bbox

    @cached_property
    def geobox(self) -> GeoBox:
        """The tile's 10 m pixel grid (odc-geo)."""
        return self.geobox_at(PIXEL_SIZE)

    def geobox_at(self, resolution: float) -> GeoBox:
        """The tile's grid at another resolution (must divide the tile span)."""
        return zone_grid(self.zone, self.size, resolution).tile_geobox((self.col, self.row))

    def pixel_window(self, resolution: float = PIXEL_SIZE) -> tuple[slice, slice]:
        """(y, x) slices of this tile inside the zone-wide arrays at ``resolution``."""
        ys, xs = zone_tiles(self.zone, self.size, resolution).roi[self.row, self.col]
        return ys, xs

    def footprint_lonlat(self, densify: int = 16) -> sg.Polygon:
        """The tile outline in EPSG:4326 (edges densified so curvature is kept)."""
        west, south, east, north = self.bounds
        xs = np.concatenate(
            [
                np.linspace(west, east, densify),
                np.full(densify, east),
                np.linspace(east, west, densify),
                np.full(densify, west),
            ]
        )
        ys = np.concatenate(
            [
                np.full(densify, north),
                np.linspace(north, south, densify),
                np.full(densify, south),
                np.linspace(south, north, densify),
            ]
        )
        lon, lat = _to_lonlat(self.epsg).transform(xs, ys)
        return sg.Polygon(zip(lon, lat, strict=True))

    def bbox_lonlat(self) -> tuple[float, float, float, float]:
        return tuple(self.footprint_lonlat().bounds)  # type: ignore[return-value]

    def tessera_cells(self) -> list[str]:
        """Published TESSERA 0.1° grid cells (``grid_{lon:.2f}_{lat:.2f}``, centre-named)
        that this tile overlaps, for interop with geotessera's tile index."""
        fp = self.footprint_lonlat()
        west, south, east, north = fp.bounds
        cells = []
        for i in range(math.floor(west * 10), math.ceil(east * 10)):
            for j in range(math.floor(south * 10), math.ceil(north * 10)):
                cell = sg.box(i / 10, j / 10, (i + 1) / 10, (j + 1) / 10)
                if cell.intersects(fp) and cell.intersection(fp).area > 0:
                    cells.append(f"grid_{i / 10 + 0.05:.2f}_{j / 10 + 0.05:.2f}")
        return sorted(cells)


def _to_lonlat(epsg: int) -> Transformer:
    return _transformer(epsg, 4326)


def _transformer(src: int, dst: int) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def _to_zone_crs(geom_lonlat: BaseGeometry, zone: int) -> BaseGeometry:
    fwd = _transformer(4326, zone_epsg(zone))
    return shapely.transform(geom_lonlat, fwd.transform, interleaved=False)


# -- AOI → tiles. -----------------------------------------------------------------------------


def tiles_for_geometry(
    geom_lonlat: BaseGeometry, tile_size: int = DEFAULT_TILE_SIZE
) -> list[Tile]:
    """All tiles of ``tile_size`` px intersecting a geometry given in EPSG:4326.

    The geometry is split along UTM zone boundaries and each part is tiled in its own zone,
    so an AOI spanning two zones gets tiles from both (they overlap slightly at the seam,
    as the published store does).
    """
    check_tile_size(tile_size)
    if geom_lonlat.is_empty:
        raise GridError("AOI geometry is empty")
    west, south, east, north = geom_lonlat.bounds
    if south < UTM_MIN_LAT or north > UTM_MAX_LAT:
        raise GridError(
            f"AOI latitudes {south:.3f}..{north:.3f} leave UTM coverage "
            f"({UTM_MIN_LAT}..{UTM_MAX_LAT}); polar areas are not supported"
        )
    tiles: list[Tile] = []
    for zone in range(zone_for_lon(west), zone_for_lon(east) + 1):
        zw, ze = zone_lon_bounds(zone)
        part = geom_lonlat.intersection(sg.box(zw, UTM_MIN_LAT, ze, UTM_MAX_LAT))
        if part.is_empty or (part.area == 0 and part.length == 0):
            continue
        tiles.extend(_tiles_in_zone(_to_zone_crs(_densify(part), zone), zone, tile_size))
    return sorted(set(tiles))


def _densify(geom: BaseGeometry, max_deg: float = 0.05) -> BaseGeometry:
    return geom.segmentize(max_deg) if hasattr(geom, "segmentize") else geom


def _tiles_in_zone(geom: BaseGeometry, zone: int, tile_size: int) -> Iterator[Tile]:
    # Candidates: a coordinate on a tile edge belongs to the tile east/south of it, as a pixel
    # corner belongs to its pixel. GridSpec.tiles() would file a northing on an edge under the
    # tile *above* (flipy bins are closed at the bottom), changing point and line AOIs.
    span = tile_size * PIXEL_SIZE
    west, south, east, north = geom.bounds
    col0 = max(0, math.floor((west - ZONE_ORIGIN_X) / span))
    col1 = math.floor((east - ZONE_ORIGIN_X) / span)
    row0 = max(0, math.floor((ZONE_ORIGIN_Y - north) / span))
    row1 = math.floor((ZONE_ORIGIN_Y - south) / span)
    # Candidate boxes in blocks of rows (a long diagonal line can have millions): tile edges
    # are the zone geobox's pixel edges at multiples of tile_size, the values Tile.bounds gives.
    to_world = zone_geobox(zone).affine
    block = max(1, _CANDIDATE_BLOCK // (col1 - col0 + 1))
    for first in range(row0, row1 + 1, block):
        rows, cols = (a.ravel() for a in np.mgrid[first:min(first + block, row1 + 1),
                                                  col0:col1 + 1])
        xs = to_world.c + np.stack([cols, cols + 1]) * tile_size * to_world.a
        ys = to_world.f + np.stack([rows + 1, rows]) * tile_size * to_world.e
        inter = shapely.intersection(shapely.box(xs[0], ys[0], xs[1], ys[1]), geom)
        # Touching the edge is not intersecting: a tile must share area (or, for point/line
        # AOIs, any part of their interior).
        keep = ~shapely.is_empty(inter) & ((shapely.area(inter) > 0) | (geom.area == 0))
        for col, row in zip(cols[keep], rows[keep], strict=True):
            yield Tile(zone=zone, col=int(col), row=int(row), size=tile_size)

"""The tile grid: per-UTM-zone square tiles on a fixed 10 m lattice (DESIGN §3).

Every zone uses its *northern* CRS (EPSG:326NN) for both hemispheres, so southern tiles have
negative northings; this is the published TESSERA Zarr convention and gives each zone one
continuous y axis. Tiles are counted from a fixed zone origin, so a tile's pixel window inside
the zone-wide Zarr arrays is a pure function of its id, and every tile is a whole number of
storage chunks (``tile_size`` must be a multiple of the chunk size).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import shapely
from affine import Affine
from odc.geo.geobox import GeoBox
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


class GridError(ValueError):
    """A tile id, zone or tile size that the grid cannot represent."""


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
        _check_tile_size(self.size)
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
        west = ZONE_ORIGIN_X + self.col * self.span_m
        north = ZONE_ORIGIN_Y - self.row * self.span_m
        return west, north - self.span_m, west + self.span_m, north

    @cached_property
    def geobox(self) -> GeoBox:
        """The tile's 10 m pixel grid (odc-geo)."""
        return self.geobox_at(PIXEL_SIZE)

    def geobox_at(self, resolution: float) -> GeoBox:
        """The tile's grid at another resolution (must divide the tile span)."""
        n = self.span_m / resolution
        if abs(n - round(n)) > 1e-9:
            raise GridError(f"resolution {resolution} m does not divide tile span {self.span_m} m")
        west, _, _, north = self.bounds
        affine = Affine(resolution, 0.0, west, 0.0, -resolution, north)
        return GeoBox((round(n), round(n)), affine, self.crs)

    def pixel_window(self, resolution: float = PIXEL_SIZE) -> tuple[slice, slice]:
        """(y, x) slices of this tile inside the zone-wide arrays at ``resolution``."""
        n = round(self.span_m / resolution)
        return slice(self.row * n, (self.row + 1) * n), slice(self.col * n, (self.col + 1) * n)

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


def _check_tile_size(size: int) -> None:
    if size <= 0 or size % STORAGE_CHUNK:
        raise GridError(f"tile size must be a positive multiple of {STORAGE_CHUNK} px, got {size}")


def _to_lonlat(epsg: int) -> Transformer:
    return _transformer(epsg, 4326)


def _transformer(src: int, dst: int) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def _to_zone_crs(geom_lonlat: BaseGeometry, zone: int) -> BaseGeometry:
    fwd = _transformer(4326, zone_epsg(zone))
    return shapely.transform(geom_lonlat, fwd.transform, interleaved=False)


def tiles_for_geometry(
    geom_lonlat: BaseGeometry, tile_size: int = DEFAULT_TILE_SIZE
) -> list[Tile]:
    """All tiles of ``tile_size`` px intersecting a geometry given in EPSG:4326.

    The geometry is split along UTM zone boundaries and each part is tiled in its own zone,
    so an AOI spanning two zones gets tiles from both (they overlap slightly at the seam,
    as the published store does).
    """
    _check_tile_size(tile_size)
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
    span = tile_size * PIXEL_SIZE
    west, south, east, north = geom.bounds
    col0 = max(0, math.floor((west - ZONE_ORIGIN_X) / span))
    col1 = math.floor((east - ZONE_ORIGIN_X) / span)
    row0 = max(0, math.floor((ZONE_ORIGIN_Y - north) / span))
    row1 = math.floor((ZONE_ORIGIN_Y - south) / span)
    for row in range(row0, row1 + 1):
        for col in range(col0, col1 + 1):
            tile = Tile(zone=zone, col=col, row=row, size=tile_size)
            box = sg.box(*tile.bounds)
            inter = box.intersection(geom)
            # Touching the edge is not intersecting: a tile must share area (or, for
            # point/line AOIs, any part of their interior).
            if not inter.is_empty and (inter.area > 0 or geom.area == 0):
                yield tile


def parse_tile_ids(ids: Iterator[str] | list[str]) -> list[Tile]:
    return [Tile.parse(t) for t in ids]

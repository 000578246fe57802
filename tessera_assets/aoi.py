"""Areas of interest: parse GeoJSON, WKT or a bbox in any CRS into one EPSG:4326 geometry.

Every problem is reported here, before any work starts, as an :class:`AoiError` that says what
was wrong with the input (DESIGN §3, hard rule 5): unreadable or invalid geometry, empty
geometry, a polygon across the antimeridian, latitudes outside UTM coverage, and an AOI too
large for one request (:data:`DEFAULT_MAX_AREA_KM2`, :data:`DEFAULT_MAX_TILES`, configurable
per call or through ``TESSERA_AOI_MAX_AREA_KM2`` / ``TESSERA_AOI_MAX_TILES``).
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer
from pyproj.exceptions import CRSError
from shapely import geometry as sg
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from tessera_assets.grid import (
    PIXEL_SIZE,
    UTM_MAX_LAT,
    UTM_MIN_LAT,
    Tile,
    check_tile_size,
    tiles_for_geometry,
)

MAX_AREA_ENV = "TESSERA_AOI_MAX_AREA_KM2"
MAX_TILES_ENV = "TESSERA_AOI_MAX_TILES"
DEFAULT_MAX_AREA_KM2 = 1_000_000.0
"""One request (AOI registration) covers at most this much: about 2,400 tiles of 2048 px, a
few hundred thousand tile-year partitions over the archive. Bigger campaigns are split."""
DEFAULT_MAX_TILES = 10_000
"""At most this many tiles per AOI (DESIGN §3 keeps ≤ 100k partitions per asset)."""
_GEOD = Geod(ellps="WGS84")


class AoiError(ValueError):
    """The AOI cannot be used; the message says why."""


def load_aoi(
    spec: str | Path | dict[str, Any] | Sequence[float],
    crs: str | None = None,
    *,
    max_area_km2: float | None = None,
) -> BaseGeometry:
    """Turn an AOI given as a GeoJSON file/string/dict, WKT, ``minx,miny,maxx,maxy`` string or a
    4-sequence into a valid EPSG:4326 geometry.

    ``crs`` names the CRS of a bbox or WKT (default EPSG:4326). GeoJSON is always lon/lat
    (RFC 7946). A lon/lat bbox whose west edge is east of its east edge crosses the
    antimeridian and is split into two boxes. An AOI larger than ``max_area_km2`` (default
    ``$TESSERA_AOI_MAX_AREA_KM2`` or :data:`DEFAULT_MAX_AREA_KM2`) is refused.
    """
    geom = _parse(spec, crs)
    if geom.is_empty:
        raise AoiError("AOI geometry is empty")
    coords = shapely.get_coordinates(geom)
    if not np.isfinite(coords).all():
        raise AoiError("AOI has non-finite (NaN or infinite) coordinates")
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        raise AoiError(f"AOI geometry is invalid: {reason}")
    allowed = {"Polygon", "MultiPolygon", "Point", "MultiPoint", "LineString", "GeometryCollection"}
    if geom.geom_type not in allowed:
        raise AoiError(f"unsupported AOI geometry type {geom.geom_type}")
    _check_lonlat(geom)
    check_area(geom, max_area_km2)
    return geom


def aoi_area_km2(geom: BaseGeometry) -> float:
    """Geodesic area of a lon/lat geometry on the WGS84 ellipsoid, in km²."""
    area, _ = _GEOD.geometry_area_perimeter(geom)
    return abs(area) / 1e6


def _limit(value: float | None, env: str, default: float) -> float:
    if value is not None:
        return float(value)
    text = os.environ.get(env)
    if text:
        try:
            return float(text)
        except ValueError:
            raise AoiError(f"${env}={text!r} is not a number") from None
    return default


def check_area(geom: BaseGeometry, max_area_km2: float | None = None) -> float:
    """The AOI's area (km²); raises when it is larger than one request may be."""
    limit = _limit(max_area_km2, MAX_AREA_ENV, DEFAULT_MAX_AREA_KM2)
    area = aoi_area_km2(geom)
    if area > limit:
        raise AoiError(
            f"AOI covers {area:,.0f} km², more than the {limit:,.0f} km² one request may "
            f"cover: split it into smaller AOIs (or raise the limit with ${MAX_AREA_ENV})"
        )
    return area


def tiles_for_aoi(geom: BaseGeometry, tile_size: int, *, max_tiles: int | None = None
                  ) -> list[Tile]:
    """The tiles of an AOI, refusing more than ``max_tiles`` (default ``$TESSERA_AOI_MAX_TILES``
    or :data:`DEFAULT_MAX_TILES`). The count is estimated from the area first, so a huge AOI
    fails at once instead of after enumerating its tiles."""
    check_tile_size(tile_size)  # before the estimate divides by the tile area
    limit = int(_limit(max_tiles, MAX_TILES_ENV, DEFAULT_MAX_TILES))
    tile_km2 = (tile_size * PIXEL_SIZE / 1000.0) ** 2
    estimate = math.floor(aoi_area_km2(geom) / tile_km2)
    message = ("AOI needs {n} tiles of {size} px, more than the {limit} one request may add: "
               "split it, use a larger tile_size, or raise the limit with $" + MAX_TILES_ENV)
    if estimate > limit:
        raise AoiError(message.format(n=f"at least {estimate:,}", size=tile_size,
                                      limit=f"{limit:,}"))
    tiles = tiles_for_geometry(geom, tile_size)
    if len(tiles) > limit:
        raise AoiError(message.format(n=f"{len(tiles):,}", size=tile_size, limit=f"{limit:,}"))
    return tiles


def _parse(spec: Any, crs: str | None) -> BaseGeometry:
    if isinstance(spec, dict):
        return _from_geojson(spec)
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        return _from_bbox([float(v) for v in spec], crs)
    if isinstance(spec, Path) or (isinstance(spec, str) and _looks_like_path(spec)):
        path = Path(spec)
        if not path.exists():
            raise AoiError(f"AOI file not found: {path}")
        text = path.read_text()
        return _from_text(text, crs, origin=str(path))
    if isinstance(spec, str):
        return _from_text(spec, crs, origin="AOI string")
    raise AoiError(f"cannot read an AOI from {type(spec).__name__}")


def _looks_like_path(text: str) -> bool:
    stripped = text.strip()
    return stripped.endswith((".geojson", ".json", ".wkt")) and "{" not in stripped


def _from_text(text: str, crs: str | None, origin: str) -> BaseGeometry:
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            return _from_geojson(json.loads(stripped))
        except json.JSONDecodeError as exc:
            raise AoiError(f"{origin} is not valid GeoJSON: {exc}") from exc
    parts = [p for p in stripped.replace(" ", ",").split(",") if p]
    if len(parts) == 4:
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            numbers = []
        if numbers:
            return _from_bbox(numbers, crs)
    try:
        geom = shapely.from_wkt(stripped)
    except shapely.errors.GEOSException as exc:
        raise AoiError(
            f"{origin} is neither GeoJSON, WKT nor a 'minx,miny,maxx,maxy' bbox: {exc}"
        ) from exc
    return _reproject(geom, crs)


def _from_geojson(obj: dict[str, Any]) -> BaseGeometry:
    if not isinstance(obj, dict):
        raise AoiError(f"GeoJSON must be an object, got {type(obj).__name__}")
    kind = obj.get("type")
    named = ((obj.get("crs") or {}).get("properties") or {}).get("name", "")
    if named and not str(named).upper().endswith(("CRS84", "4326")):
        raise AoiError(
            f"GeoJSON declares CRS {named!r}: GeoJSON is lon/lat (RFC 7946); reproject it, "
            "or pass the coordinates as WKT or a bbox with crs="
        )
    try:
        if kind == "FeatureCollection":
            feats = obj.get("features") or []
            if not feats:
                raise AoiError("GeoJSON FeatureCollection has no features")
            return unary_union([_from_geojson(f) for f in feats])
        if kind == "Feature":
            if not obj.get("geometry"):
                raise AoiError("GeoJSON Feature has no geometry")
            return _from_geojson(obj["geometry"])
        if kind is None:
            raise AoiError("GeoJSON object has no 'type'")
        geom = sg.shape(obj)
    except AoiError:
        raise
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise AoiError(f"invalid GeoJSON {kind} geometry: {exc}") from exc
    if geom.geom_type in {"Polygon", "MultiPolygon"}:
        west, _, east, _ = geom.bounds
        if east - west > 180.0:
            raise AoiError(
                "GeoJSON polygon spans more than 180° of longitude: it probably crosses the "
                "antimeridian; split it at ±180° (RFC 7946 §3.1.9) and submit both parts"
            )
    return geom


def _from_bbox(values: list[float], crs: str | None) -> BaseGeometry:
    if len(values) != 4:
        raise AoiError(f"a bbox needs 4 numbers (minx, miny, maxx, maxy), got {len(values)}")
    minx, miny, maxx, maxy = values
    if miny >= maxy:
        raise AoiError(f"bbox miny {miny} must be below maxy {maxy}")
    if _is_lonlat(crs) and minx > 0 > maxx:
        # Crosses the antimeridian (minx > 0 > maxx): two boxes, each inside [-180, 180].
        return sg.MultiPolygon([sg.box(minx, miny, 180.0, maxy), sg.box(-180.0, miny, maxx, maxy)])
    if minx >= maxx:
        raise AoiError(
            f"bbox minx {minx} must be below maxx {maxx} (a lon/lat box across the "
            "antimeridian is written with minx > 0 > maxx)"
        )
    return _reproject(sg.box(minx, miny, maxx, maxy).segmentize(_seg_len(crs)), crs)


def _is_lonlat(crs: str | None) -> bool:
    return crs is None or _crs(crs).to_epsg() == 4326


def _crs(crs: str) -> CRS:
    try:
        return CRS.from_user_input(crs)
    except CRSError as exc:
        raise AoiError(f"unknown CRS {crs!r}: {exc}") from exc


def _seg_len(crs: str | None) -> float:
    return 0.05 if _is_lonlat(crs) else 5_000.0


def _reproject(geom: BaseGeometry, crs: str | None) -> BaseGeometry:
    if _is_lonlat(crs):
        return geom
    fwd = Transformer.from_crs(_crs(crs), 4326, always_xy=True)  # type: ignore[arg-type]
    return shapely.transform(geom, fwd.transform, interleaved=False)


def _check_lonlat(geom: BaseGeometry) -> None:
    west, south, east, north = geom.bounds
    if not (-180.0 <= west <= 180.0 and -180.0 <= east <= 180.0):
        raise AoiError(
            f"AOI longitudes {west}..{east} are outside -180..180: is the CRS right "
            "(pass crs= for projected coordinates)?"
        )
    if not (-90.0 <= south <= 90.0 and -90.0 <= north <= 90.0):
        raise AoiError(f"AOI latitudes {south}..{north} are outside -90..90")
    if south < UTM_MIN_LAT or north > UTM_MAX_LAT:
        raise AoiError(
            f"AOI latitudes {south:.3f}..{north:.3f} leave UTM coverage "
            f"({UTM_MIN_LAT}..{UTM_MAX_LAT}°); polar areas are not supported"
        )


# --------------------------------------------------------------------------- land fraction

LAND_MASK = "data/land_110m.geojson"
"""Natural Earth 1:110m land (public domain), dissolved and simplified to ~80 kB: coarse (its
coastline is off by kilometres), so it only *warns* about open-ocean AOIs, never refuses."""


@functools.cache
def _land() -> BaseGeometry:
    text = resources.files("tessera_assets").joinpath(LAND_MASK).read_text()
    land = sg.shape(json.loads(text)["geometry"])
    shapely.prepare(land)
    return land


def land_fraction(geom: BaseGeometry) -> float:
    """Share of ``geom`` (EPSG:4326) that is land in the bundled mask, by geodesic area."""
    area = aoi_area_km2(geom)
    if area <= 0:
        return 0.0
    return min(1.0, aoi_area_km2(geom.intersection(_land())) / area)


def tiles_without_land(tiles: Sequence[Tile]) -> list[Tile]:
    """The tiles whose footprint touches no land in the bundled mask (open ocean: nothing to
    embed; materialize writes NaN scales and says so)."""
    land = _land()
    return [t for t in tiles if not land.intersects(t.footprint_lonlat())]


def land_warning(geom: BaseGeometry, tiles: Sequence[Tile], *, below: float = 0.01
                 ) -> str | None:
    """One line for ``aoi add`` when the AOI is (almost) all sea, else None."""
    fraction = land_fraction(geom)
    if fraction >= below:
        return None
    sea = tiles_without_land(tiles)
    return (f"the AOI is {fraction:.1%} land (Natural Earth 1:110m): {len(sea)} of {len(tiles)} "
            "tile(s) touch no land. Over open ocean, materialize embeds nothing (NaN scales, "
            "with a note in the embeddings metadata)")

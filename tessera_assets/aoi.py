"""Areas of interest: parse GeoJSON, WKT or a bbox in any CRS into one EPSG:4326 geometry.

Every problem is reported here, before any work starts, as an :class:`AoiError` that says what
was wrong with the input (DESIGN §3, hard rule 5).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely import geometry as sg
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from tessera_assets.grid import UTM_MAX_LAT, UTM_MIN_LAT


class AoiError(ValueError):
    """The AOI cannot be used; the message says why."""


def load_aoi(spec: str | Path | dict[str, Any] | Sequence[float], crs: str | None = None) -> BaseGeometry:
    """Turn an AOI given as a GeoJSON file/string/dict, WKT, ``minx,miny,maxx,maxy`` string or a
    4-sequence into a valid EPSG:4326 geometry.

    ``crs`` names the CRS of a bbox or WKT (default EPSG:4326). GeoJSON is always lon/lat
    (RFC 7946). A lon/lat bbox whose west edge is east of its east edge crosses the
    antimeridian and is split into two boxes.
    """
    geom = _parse(spec, crs)
    if geom.is_empty:
        raise AoiError("AOI geometry is empty")
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        raise AoiError(f"AOI geometry is invalid: {reason}")
    allowed = {"Polygon", "MultiPolygon", "Point", "MultiPoint", "LineString", "GeometryCollection"}
    if geom.geom_type not in allowed:
        raise AoiError(f"unsupported AOI geometry type {geom.geom_type}")
    _check_lonlat(geom)
    return geom


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
    kind = obj.get("type")
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

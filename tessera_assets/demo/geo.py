"""Geography for the demo: lon/lat footprints, sun position and MGRS / WRS-2 names.

Sun angles drive cloud-shadow offsets and the ``view:sun_*`` properties, so they follow the
real date, time and place rather than being drawn at random.
"""

from __future__ import annotations

import math
from datetime import datetime

from pyproj import Transformer

_MGRS_BANDS = "CDEFGHJKLMNPQRSTUVWX"
_MGRS_COLUMNS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
_MGRS_ROWS = "ABCDEFGHJKLMNPQRSTUV"


def to_lonlat(epsg: int, xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    transformer = Transformer.from_crs(epsg, 4326, always_xy=True)
    lon, lat = transformer.transform(xs, ys)
    return list(lon), list(lat)


def polygon_lonlat(epsg: int, ring_xy: list[tuple[float, float]]) -> dict:
    """A GeoJSON polygon in lon/lat from a closed ring in map coordinates."""
    lon, lat = to_lonlat(epsg, [p[0] for p in ring_xy], [p[1] for p in ring_xy])
    return {"type": "Polygon", "coordinates": [[[x, y] for x, y in zip(lon, lat, strict=True)]]}


def geometry_bbox(geometry: dict) -> list[float]:
    ring = geometry["coordinates"][0]
    lons = [p[0] for p in ring]
    lats = [p[1] for p in ring]
    return [min(lons), min(lats), max(lons), max(lats)]


def solar_position(when: datetime, lon: float, lat: float) -> tuple[float, float]:
    """Sun (elevation, azimuth) in degrees at a UTC time and place (NOAA approximation).

    Accurate to a fraction of a degree, which is all shadow geometry needs.
    """
    doy = when.timetuple().tm_yday
    hour = when.hour + when.minute / 60 + when.second / 3600
    gamma = 2 * math.pi / 365 * (doy - 1 + (hour - 12) / 24)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * math.cos(gamma)
        - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma)
        - 0.040849 * math.sin(2 * gamma)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(gamma)
        + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma)
        + 0.000907 * math.sin(2 * gamma)
        - 0.002697 * math.cos(3 * gamma)
        + 0.00148 * math.sin(3 * gamma)
    )
    true_solar_min = hour * 60 + eqtime + 4 * lon
    hour_angle = math.radians(true_solar_min / 4 - 180)
    phi = math.radians(lat)
    cos_zen = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(
        hour_angle
    )
    zen = math.acos(max(-1.0, min(1.0, cos_zen)))
    az = math.atan2(
        math.sin(hour_angle),
        math.cos(hour_angle) * math.sin(phi) - math.tan(decl) * math.cos(phi),
    )
    return 90.0 - math.degrees(zen), (math.degrees(az) + 180.0) % 360.0


def earth_sun_factor(when: datetime) -> float:
    """Sentinel-2's ``reflectance_conversion_factor``: 1 / d^2 for the Earth-Sun distance."""
    doy = when.timetuple().tm_yday
    return 1.0 / (1 - 0.01672 * math.cos(math.radians(0.9856 * (doy - 4)))) ** 2


def mgrs_square(zone: int, easting: float, northing: float, lat: float) -> tuple[str, str]:
    """MGRS latitude band and 100 km square letters of a UTM position (northing >= 0)."""
    band = _MGRS_BANDS[max(0, min(len(_MGRS_BANDS) - 1, int((lat + 80) // 8)))]
    columns = _MGRS_COLUMNS[(zone - 1) % 3]
    col = columns[max(0, min(7, int(easting // 100_000) - 1))]
    row_offset = 5 if zone % 2 == 0 else 0
    row = _MGRS_ROWS[(int(northing // 100_000) + row_offset) % 20]
    return band, col + row


def neighbour_square(zone: int, square: str) -> str:
    """The 100 km square east of ``square`` (west of it at the zone's edge)."""
    columns = _MGRS_COLUMNS[(zone - 1) % 3]
    i = columns.index(square[0])
    return columns[i + 1 if i < 7 else i - 1] + square[1]


def wrs2_path_row(lon: float, lat: float) -> tuple[int, int]:
    """Approximate descending WRS-2 path/row of a place (plausible names, not an exact grid)."""
    equator_lon = lon - 0.27 * lat  # the descending track drifts west as it heads south
    path = round((-64.6 - equator_lon) / (360 / 233)) % 233 + 1
    row = max(1, min(248, round(60 - lat / 1.44)))
    return path, row

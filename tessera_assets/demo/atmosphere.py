"""Weather of one day: clouds, cirrus, cloud shadows, rain-wet soil, wind and snow.

The weather is a function of the date alone, so every sensor passing on the same day sees the
same cloud systems, displaced by the wind between their overpass times; shadows fall away
from the sun by the cloud height over the tangent of its elevation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from tessera_assets.demo.grids import Grid
from tessera_assets.demo.landcover import LandCover, Landscape
from tessera_assets.demo.noise import sample_bilinear, smooth_noise
from tessera_assets.demo.spec import DemoSpec, rng_for
from tessera_assets.demo.surface import CIRRUS, CLOUD, SNOW

FIELD_RES = 40.0
"""Resolution (m) at which cloud fields are drawn before interpolation."""
MAX_SHADOW_M = 3000.0
MAX_DRIFT_M = 1500.0
REFERENCE_HOUR = 11.0
"""UTC hour at which the cloud field sits at its drawn position; it drifts with the wind."""


@dataclass(frozen=True)
class Weather:
    """Scalar weather of one day; fields are drawn on demand by :func:`sky`."""

    day: date
    cloud_cover: float  # target cloud fraction over the area, 0..1
    cloud_height: float  # m
    cloud_scale: float  # m, typical cloud size
    wind: tuple[float, float]  # m/s (east, north)
    cirrus: float  # 0 (none) .. 1 (thick veil)
    wetness: float  # 0 (dry soil) .. 1 (waterlogged)
    water_wind: float  # 0 (calm, dark water) .. 1 (rough, bright water for radar)
    snow: float  # 0 .. 1 snow on open land


def _season_weight(day: date) -> float:
    """1 in mid-winter, 0 in mid-summer."""
    return 0.5 + 0.5 * math.cos(2 * math.pi * (day.timetuple().tm_yday - 15) / 365.25)


def weather(spec: DemoSpec, day: date) -> Weather:
    rng = rng_for(spec.seed, "weather", day.isoformat())
    winter = _season_weight(day)
    p_clear = 0.28 - 0.14 * winter
    p_overcast = 0.15 + 0.27 * winter
    u = rng.random()
    if u < p_clear:
        cover = rng.uniform(0.0, 0.03)
    elif u < p_clear + p_overcast:
        cover = rng.uniform(0.97, 1.0)
    else:
        cover = rng.uniform(0.05, 0.9)
    speed = rng.uniform(2.0, 12.0)
    heading = rng.uniform(0, 2 * math.pi)
    cirrus = rng.uniform(0.4, 1.0) if rng.random() < 0.2 else 0.0
    wet_mean = 0.25 + 0.4 * winter
    wetness = float(rng.beta(4 * wet_mean, 4 * (1 - wet_mean)))
    snow_rng = rng_for(spec.seed, "snow", day.year)
    snow_day = date(day.year, 1, 1) + timedelta(days=int(snow_rng.integers(14, 50)))
    gap = abs((day - snow_day).days)
    snow = max(0.0, 1.0 - gap / 4.0) if gap <= 3 else 0.0
    return Weather(
        day=day,
        cloud_cover=float(cover),
        cloud_height=float(rng.uniform(500.0, 2000.0)),
        cloud_scale=float(rng.uniform(500.0, 2500.0)),
        wind=(speed * math.sin(heading), speed * math.cos(heading)),
        cirrus=float(cirrus),
        wetness=wetness,
        water_wind=float(rng.random()),
        snow=float(snow),
    )


@dataclass(frozen=True)
class Sky:
    """Per-pixel atmosphere on a grid at one overpass time (all 0..1 floats)."""

    cloud: np.ndarray  # cloud opacity
    cirrus: np.ndarray  # cirrus veil thickness
    shadow: np.ndarray  # shadow darkness (opacity of the shading cloud)
    snow: np.ndarray  # snow cover of open land


def sky(
    spec: DemoSpec,
    w: Weather,
    grid: Grid,
    area: Grid,
    when: datetime,
    sun_elevation: float,
    sun_azimuth: float,
) -> Sky:
    """Cloud, cirrus, shadow and snow fields on ``grid`` for an overpass at ``when``.

    ``area`` is the region over which the cloud fraction should match ``w.cloud_cover``.
    """
    pad = MAX_SHADOW_M + MAX_DRIFT_M
    gx0, gy0, gx1, gy1 = grid.bounds
    field_grid = Grid(
        gx0 - pad,
        gy1 + pad,
        FIELD_RES,
        math.ceil((gx1 - gx0 + 2 * pad) / FIELD_RES),
        math.ceil((gy1 - gy0 + 2 * pad) / FIELD_RES),
    )
    def field(name: str, scale_m: float, beta: float) -> np.ndarray:
        rng = rng_for(spec.seed, "clouds", w.day.isoformat(), name)
        return smooth_noise(rng, field_grid.shape, scale_m / FIELD_RES, beta=beta)

    hours = (when - when.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds() / 3600
    drift_x, drift_y = (
        float(np.clip(v * (hours - REFERENCE_HOUR) * 3600, -MAX_DRIFT_M, MAX_DRIFT_M)) for v in w.wind
    )
    reach = min(MAX_SHADOW_M, w.cloud_height / math.tan(math.radians(max(sun_elevation, 5.0))))
    # A shadow falls on p when a cloud sits at p shifted toward the sun.
    to_sun_x = reach * math.sin(math.radians(sun_azimuth))
    to_sun_y = reach * math.cos(math.radians(sun_azimuth))

    def at(field: np.ndarray, g: Grid, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
        xs, ys = g.centres()
        return sample_bilinear(
            field, field_grid.x0, field_grid.y0, FIELD_RES, xs - drift_x + dx, ys - drift_y + dy
        )

    zeros = np.zeros(grid.shape, dtype=np.float32)
    if w.cloud_cover > 0:
        big = field("cumulus", w.cloud_scale, 3.2)
        threshold = _threshold(at(big, area), w.cloud_cover)
    else:
        big, threshold = None, 0.0
    softness = 0.6

    def opacity(values: np.ndarray) -> np.ndarray:
        return np.clip((values - threshold) / softness, 0.0, 1.0) ** 0.8

    cloud, shadow, cirrus, snow = zeros, zeros, zeros, zeros
    if big is not None:
        cloud = opacity(at(big, grid))
        shadow = opacity(at(big, grid, to_sun_x, to_sun_y)) * (1 - cloud)
    if w.cirrus:
        veil = field("cirrus", 4000.0, 4.0)
        cirrus = w.cirrus * np.clip(0.5 + 0.6 * at(veil, grid), 0.0, 1.0)
    if w.snow:
        drifts = field("snow", 300.0, 3.0)
        snow = np.clip((at(drifts, grid) + 1.2 * w.snow - 0.4) * 2.0, 0.0, 1.0)
    return Sky(
        cloud.astype(np.float32),
        cirrus.astype(np.float32),
        shadow.astype(np.float32),
        snow.astype(np.float32),
    )


def _threshold(values: np.ndarray, cover: float) -> float:
    """Field level above which ``cover`` of the area is (at least partly) cloudy."""
    if cover <= 0.0:
        return float(values.max()) + 10.0
    if cover >= 1.0:
        return float(values.min()) - 10.0
    return float(np.quantile(values, 1.0 - cover))


_SNOW_HOLD = {  # how much of a pixel's snow cover each class keeps visible
    LandCover.DECIDUOUS_FOREST: 0.4,
    LandCover.EVERGREEN_FOREST: 0.25,
    LandCover.URBAN: 0.6,
    LandCover.WATER: 0.0,
}


def snow_cover(land: Landscape, s: Sky) -> np.ndarray:
    """Visible snow fraction per pixel: full on open land, partial under trees and in town."""
    hold = np.ones(max(LandCover) + 1, dtype=np.float32)
    for cls, value in _SNOW_HOLD.items():
        hold[cls] = value
    return s.snow * hold[land.classes]


def apply_sky(surface: np.ndarray, land: Landscape, s: Sky) -> np.ndarray:
    """Top-of-canopy reflectance as an L2A product sees it: snow, shade, cirrus, cloud.

    ``surface`` is (bands, H, W) in :data:`~tessera_assets.demo.surface.BANDS` order.
    """
    out = surface.copy()
    if s.snow.any():
        snow = snow_cover(land, s)
        out = out * (1 - snow) + SNOW[:, None, None] * snow
    if s.shadow.any():
        out *= 1 - np.float32(0.75) * s.shadow
    if s.cirrus.any():
        out += CIRRUS[:, None, None] * s.cirrus
    if s.cloud.any():
        out = out * (1 - s.cloud) + CLOUD[:, None, None] * s.cloud
    return out

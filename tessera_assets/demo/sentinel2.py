"""Sentinel-2 L2A granules shaped like Earth Search's ``sentinel-2-c1-l2a``.

Two tracks see the area, as two relative orbits see many places in the real archive: the
"centre" track covers it completely every 5 days (S2A and S2B alternating); the "edge" track,
two days later and every 10 days (one satellite, to keep the demo small), has its swath edge
running through the middle, so its granules are partly nodata.
Every pass is cut into two overlapping MGRS-like granules ("W" and "E"), which gives same-day
duplicates to mosaic. DNs carry the Collection-1 BOA offset: DN = reflectance x 10000 + 1000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
from shapely.geometry import Polygon, box

from tessera_assets.demo import items
from tessera_assets.demo.atmosphere import Sky, apply_sky, sky, snow_cover, weather
from tessera_assets.demo.cog import write_cog
from tessera_assets.demo.context import DemoContext
from tessera_assets.demo.geo import mgrs_square, neighbour_square, solar_position
from tessera_assets.demo.grids import Grid, crop, s2_granule_grids, to_grid
from tessera_assets.demo.landcover import LandCover
from tessera_assets.demo.spec import DemoSpec, rng_for
from tessera_assets.demo.surface import BANDS, reflectance

COLLECTION = "sentinel-2-c1-l2a"
BOA_OFFSET = 1000
BANDS_10M = ("blue", "green", "red", "nir")
BANDS_20M = ("rededge1", "rededge2", "rededge3", "nir08", "swir16", "swir22")

# Reference orbits: (UTC time, absolute orbit, offset with (abs + offset) % 143 = relative).
_ORBITS = {
    "sentinel-2a": (datetime(2024, 4, 22, 17, 53, 2, tzinfo=UTC), 46141, 3),
    "sentinel-2b": (datetime(2024, 4, 20, 18, 2, 56, tzinfo=UTC), 37204, 117),
    "sentinel-2c": (datetime(2025, 3, 30, 10, 0, 51, tzinfo=UTC), 2952, 30),
}
_ORBIT_SECONDS = 10 * 86400 / 143
_TRACKS = {  # name: (days after the first pass, repeat in days, UTC time of day, phase)
    "centre": (0, 5, (11, 6, 31), 0),
    "edge": (2, 10, (10, 56, 29), 1),
}
_EDGE_TILT_DEG = 12.5  # swath edges run NNE-SSW on a descending pass at mid-latitudes


@dataclass(frozen=True)
class S2Pass:
    platform: str
    when: datetime
    track: str
    absolute_orbit: int
    relative_orbit: int

    @property
    def key(self) -> str:
        return f"{self.when:%Y%m%dT%H%M%S}-{self.track}"


def processing_baseline(year: int) -> str:
    """Collection-1 baseline: the 05.00 reprocessing up to 2023, then the operational ones."""
    return "05.00" if year <= 2023 else "05.10" if year == 2024 else "05.11"


def schedule(spec: DemoSpec) -> list[S2Pass]:
    """All passes in ``spec.period``, in time order."""
    pair = ("sentinel-2a", "sentinel-2b") if spec.year <= 2024 else ("sentinel-2a", "sentinel-2c")
    first, last = spec.period
    start = date(spec.year, 1, 3)
    passes = []
    for track, (offset, repeat, hms, phase) in _TRACKS.items():
        for k in range(80):
            day = start + timedelta(days=offset + repeat * k)
            if day > last:
                break
            if day < first:
                continue
            jitter = rng_for(0, "s2-time", day.isoformat(), track).integers(-1500, 1500)
            when = datetime(day.year, day.month, day.day, *hms, tzinfo=UTC) + timedelta(
                milliseconds=int(jitter) + 24
            )
            platform = pair[(k * repeat // 5 + phase) % 2]
            ref_time, ref_orbit, rel_offset = _ORBITS[platform]
            absolute = ref_orbit + round((when - ref_time).total_seconds() / _ORBIT_SECONDS)
            relative = (absolute + rel_offset) % 143 or 143
            passes.append(S2Pass(platform, when, track, absolute, relative))
    return sorted(passes, key=lambda p: (p.when, p.track))


def _to_dn(refl: np.ndarray) -> np.ndarray:
    return np.clip(np.round(refl * 10000.0) + BOA_OFFSET, 1, 65535).astype(np.uint16)


def _edge_valid(grid: Grid, spec: DemoSpec) -> np.ndarray:
    """Pixels on the covered (east) side of the edge track's swath edge."""
    x0, y0, x1, y1 = spec.bounds
    px, py = x0 + 0.5 * (x1 - x0), (y0 + y1) / 2
    t = math.radians(_EDGE_TILT_DEG)
    xs, ys = grid.centres()
    return (xs[None, :] - px) * math.cos(t) - (ys[:, None] - py) * math.sin(t) >= 0


def _edge_polygon(spec: DemoSpec) -> Polygon:
    x0, y0, x1, y1 = spec.bounds
    px, py = x0 + 0.5 * (x1 - x0), (y0 + y1) / 2
    t = math.radians(_EDGE_TILT_DEG)
    far = 10 * max(x1 - x0, y1 - y0)
    dx, dy = math.sin(t) * far, math.cos(t) * far  # along the edge
    nx, ny = math.cos(t) * far, -math.sin(t) * far  # into the covered side
    return Polygon(
        [(px - dx, py - dy), (px + dx, py + dy), (px + dx + nx, py + dy + ny), (px - dx + nx, py - dy + ny)]
    )


def _classify(ctx: DemoContext, s: Sky, green: np.ndarray, p: S2Pass, sun_elevation: float,
              rng: np.random.Generator) -> np.ndarray:
    """Scene classification (SCL) on the area's 20 m grid, in Sen2Cor's class codes."""
    land, base, g20 = ctx.land, ctx.base, ctx.area20

    def agg(field: np.ndarray) -> np.ndarray:
        return to_grid(field, base, g20)

    cloud, cirrus, shadow = agg(s.cloud), agg(s.cirrus), agg(s.shadow)
    snow = agg(snow_cover(land, s))
    water = agg(land.fraction(LandCover.WATER))
    conifer = agg(land.fraction(LandCover.EVERGREEN_FOREST))
    veg = agg(green)
    scl = np.where(water >= 0.5, 6, np.where(veg >= 0.3, 4, 5)).astype(np.uint8)
    scl[snow >= 0.5] = 11
    if sun_elevation < 18:  # Sen2Cor often calls dark conifer stands "dark area" in winter
        scl[(conifer >= 0.5) & (rng.random(scl.shape) < 0.35)] = 2
    scl[(shadow >= 0.2) & (shadow < 0.45)] = 2
    scl[shadow >= 0.45] = 3
    fringe = (cloud >= 0.12) & (cloud < 0.3) & (rng.random(scl.shape) < 0.5)
    scl[fringe | (rng.random(scl.shape) < 0.001)] = 7
    scl[cirrus >= 0.35] = 10
    scl[cloud >= 0.3] = 8
    scl[cloud >= 0.7] = 9
    return scl


def render(ctx: DemoContext, p: S2Pass) -> list[dict]:
    """Simulate one pass, write its granules' COGs and return their STAC items."""
    spec = ctx.spec
    rng = rng_for(spec.seed, "s2", p.key)
    lon, lat = ctx.centre_lonlat
    sun_el, sun_az = solar_position(p.when, lon, lat)
    wx = weather(spec, p.when.date())
    doy = p.when.timetuple().tm_yday + p.when.hour / 24
    surface, green = reflectance(ctx.land, doy, wx.wetness)
    s = sky(spec, wx, ctx.base, ctx.area10, p.when, sun_el, sun_az)
    toc = apply_sky(surface, ctx.land, s)

    scene: dict[str, np.ndarray] = {}
    for name in BANDS_10M + BANDS_20M:
        grid = ctx.area10 if name in BANDS_10M else ctx.area20
        refl = to_grid(toc[BANDS.index(name)], ctx.base, grid) * rng.normal(1.0, 0.015)
        refl += rng.standard_normal(refl.shape, dtype=np.float32) * (0.002 + 0.01 * np.abs(refl))
        scene[name] = _to_dn(refl)
    scene["scl"] = _classify(ctx, s, green, p, sun_el, rng)

    band, square = mgrs_square(spec.zone, *_centre_xy(spec), lat)
    tiles = {"W": square, "E": neighbour_square(spec.zone, square)}
    baseline = processing_baseline(spec.year)
    out = []
    for name, (g10, g20) in s2_granule_grids(spec).items():
        valid20 = _edge_valid(g20, spec) if p.track == "edge" else np.ones(g20.shape, bool)
        if not valid20.any():
            continue
        valid10 = np.repeat(np.repeat(valid20, 2, axis=0), 2, axis=1)
        tile = f"{spec.zone:02d}{band}{tiles[name]}"
        item_id = items.sentinel2_id(p, tile)
        folder = f"{COLLECTION}/{spec.zone}/{band}/{tiles[name]}/{p.when.year}/{p.when.month}/{item_id}"
        assets = {}
        for key, values in scene.items():
            fine = key in BANDS_10M
            grid = g10 if fine else g20
            window = crop(values, ctx.area10 if fine else ctx.area20, grid)
            data = np.where(valid10 if fine else valid20, window, 0)
            path, href = ctx.file(f"{folder}/{items.S2_FILES[key]}.tif")
            info = write_cog(path, data, grid, spec.epsg, nodata=0, categorical=key == "scl")
            assets[key] = items.AssetFile(href, info, grid)
        footprint = box(*g10.bounds)
        if p.track == "edge":
            footprint = footprint.intersection(_edge_polygon(spec))
        stats = _scl_stats(np.where(valid20, crop(scene["scl"], ctx.area20, g20), 0))
        out.append(
            items.sentinel2_item(ctx, p, tile, item_id, assets, footprint, stats,
                                 sun_el, sun_az, baseline)
        )
    return out


def _scl_stats(scl: np.ndarray) -> dict[str, float]:
    """The ``s2:*_percentage`` properties, as Sen2Cor reports them, from a granule's SCL."""
    total = scl.size
    valid = max(int((scl > 0).sum()), 1)

    def pct(*codes: int) -> float:
        return round(100.0 * float(np.isin(scl, codes).sum()) / valid, 6)

    return {
        "nodata": round(100.0 * float((scl == 0).sum()) / total, 6),
        "saturated_defective": pct(1),
        "dark_features": pct(2),
        "cloud_shadow": pct(3),
        "vegetation": pct(4),
        "not_vegetated": pct(5),
        "water": pct(6),
        "unclassified": pct(7),
        "medium_proba_clouds": pct(8),
        "high_proba_clouds": pct(9),
        "thin_cirrus": pct(10),
        "snow_ice": pct(11),
    }


def _centre_xy(spec: DemoSpec) -> tuple[float, float]:
    x0, y0, x1, y1 = spec.bounds
    return (x0 + x1) / 2, (y0 + y1) / 2

"""Sentinel-1 RTC scenes shaped like Planetary Computer's ``sentinel-1-rtc``.

One descending (morning) and one ascending (evening) relative orbit, each repeating every
12 days (Sentinel-1A alone, as in 2022-2024). Values are linear gamma0 (float32, nodata
-32768): class-dependent backscatter, crop growth raising VH, rain-wet soil raising VV, wind
roughening open water, orbit-dependent returns from buildings, and multiplicative speckle with
the products' equivalent number of looks.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
from shapely.geometry import Polygon, box

from tessera_assets.demo import items
from tessera_assets.demo.atmosphere import weather
from tessera_assets.demo.cog import write_cog
from tessera_assets.demo.context import DemoContext
from tessera_assets.demo.grids import Grid, crop
from tessera_assets.demo.landcover import LandCover
from tessera_assets.demo.noise import smooth_noise
from tessera_assets.demo.phenology import pixel_canopy
from tessera_assets.demo.spec import DemoSpec, rng_for

COLLECTION = "sentinel-1-rtc"
NODATA = -32768.0
LOOKS = 4.4
_REF_TIME = datetime(2024, 4, 19, 4, 59, 10, 436706, tzinfo=UTC)
_REF_ORBIT, _REF_DATATAKE = 53498, 425458
_ORBIT_SECONDS = 12 * 86400 / 175
# name: (first day of the year, UTC time, slice number, total slices, incidence offset dB)
_TRACKS = {
    "descending": (2, (6, 17, 43, 512211), 17, 30, -0.3),
    "ascending": (5, (17, 52, 8, 904113), 4, 22, 0.3),
}
_EDGE_TILT_DEG = 12.0


@dataclass(frozen=True)
class S1Pass:
    when: datetime
    orbit_state: str
    absolute_orbit: int
    relative_orbit: int
    datatake_id: int
    slice_number: int
    total_slices: int
    platform: str = "sentinel-1a"
    designator: str = "2014-016A"

    @property
    def start(self) -> datetime:
        return self.when - timedelta(seconds=6, microseconds=216700)

    @property
    def end(self) -> datetime:
        return self.when + timedelta(seconds=6, microseconds=216699)

    @property
    def product_id(self) -> str:
        return (
            f"S1A_IW_GRDH_1SDV_{self.start:%Y%m%dT%H%M%S}_{self.end:%Y%m%dT%H%M%S}_"
            f"{self.absolute_orbit:06d}_{self.datatake_id:06X}"
        )


def schedule(spec: DemoSpec) -> list[S1Pass]:
    first, last = spec.period
    passes = []
    for state, (day0, hms, slice_no, total, _) in _TRACKS.items():
        for k in range(40):
            day = date(spec.year, 1, day0) + timedelta(days=12 * k)
            if day > last:
                break
            if day < first:
                continue
            when = datetime(day.year, day.month, day.day, *hms, tzinfo=UTC)
            absolute = _REF_ORBIT + math.floor((when - _REF_TIME).total_seconds() / _ORBIT_SECONDS)
            relative = (absolute - 73) % 175 + 1
            datatake = _REF_DATATAKE + round((absolute - _REF_ORBIT) * 9.75)
            passes.append(S1Pass(when, state, absolute, relative, datatake, slice_no, total))
    return sorted(passes, key=lambda p: p.when)


def _db(x: np.ndarray | float) -> np.ndarray:
    return np.power(10.0, np.asarray(x, dtype=np.float32) / 10.0)


def _valid(spec: DemoSpec, grid: Grid, state: str) -> tuple[np.ndarray, Polygon]:
    """The ascending track's near-range edge clips the area's south-east corner."""
    full = box(*grid.bounds)
    if state != "ascending":
        return np.ones(grid.shape, bool), full
    x0, y0, x1, y1 = spec.bounds
    px, py = x1, (y0 + y1) / 2
    t = math.radians(_EDGE_TILT_DEG)
    xs, ys = grid.centres()
    valid = (xs[None, :] - px) * math.cos(t) + (ys[:, None] - py) * math.sin(t) <= 0
    far = 10 * max(x1 - x0, y1 - y0)
    dx, dy = -math.sin(t) * far, math.cos(t) * far  # along the edge (heading NNW)
    nx, ny = -math.cos(t) * far, -math.sin(t) * far  # into the covered side
    half = Polygon([(px - dx, py - dy), (px + dx, py + dy),
                    (px + dx + nx, py + dy + ny), (px - dx + nx, py - dy + ny)])
    return valid, full.intersection(half)


def backscatter(ctx: DemoContext, p: S1Pass) -> tuple[np.ndarray, np.ndarray]:
    """Speckled linear gamma0 (VV, VH) on the area's 10 m grid."""
    spec, land = ctx.spec, ctx.land
    wx = weather(spec, p.when.date())
    doy = p.when.timetuple().tm_yday + p.when.hour / 24
    canopy = pixel_canopy(land, doy)
    g = crop(canopy.green, ctx.base, ctx.area10)
    sen = crop(canopy.senescent, ctx.base, ctx.area10)
    cls = crop(land.classes, ctx.base, ctx.area10)
    unit = crop(land.unit, ctx.base, ctx.area10)
    texture = crop(land.texture, ctx.base, ctx.area10)
    incidence = _TRACKS[p.orbit_state][4]

    soil_vv = -13.0 + 5.0 * wx.wetness + 1.2 * land.unit_roughness[unit]
    vv = (1 - g - sen) * _db(soil_vv) + g * _db(-10.5) + sen * _db(-12.0)
    vh = (1 - g - sen) * _db(soil_vv - 8.0) + g * _db(-16.0) + sen * _db(-19.0)
    tall = np.isin(cls, [LandCover.MAIZE, LandCover.OILSEED_RAPE])
    vv = np.where(tall, vv * 1.15, vv)
    vh = np.where(tall, vh * 1.3, vh)

    leaf = np.clip((g - 0.2) / 0.7, 0, 1)
    forest = cls == LandCover.DECIDUOUS_FOREST
    vv = np.where(forest, _db(-7.5 + 0.8 * leaf), vv)
    vh = np.where(forest, _db(-13.5 + 1.2 * leaf), vh)
    conifer = cls == LandCover.EVERGREEN_FOREST
    vv = np.where(conifer, _db(-7.0), vv)
    vh = np.where(conifer, _db(-12.5), vh)

    water = cls == LandCover.WATER
    vv = np.where(water, _db(-22.0 + 9.0 * wx.water_wind), vv)
    vh = np.where(water, _db(-28.0 + 4.0 * wx.water_wind), vh)

    urban = cls == LandCover.URBAN
    facing = smooth_noise(rng_for(spec.seed, "s1-buildings", p.orbit_state), ctx.base.shape, 2.0, 2.0)
    facing = crop(facing, ctx.base, ctx.area10)
    vv = np.where(urban, _db(-3.0 + 3.0 * facing), vv)
    vh = np.where(urban, _db(-11.0 + 1.5 * facing), vh)

    bare = cls == LandCover.BARE
    vv = np.where(bare, _db(-13.0 + 4.0 * wx.wetness), vv)
    vh = np.where(bare, _db(-21.0 + 2.0 * wx.wetness), vh)

    gain = _db(incidence + 0.4 * texture)
    rng = rng_for(spec.seed, "s1", p.product_id)
    speckle = rng.gamma(LOOKS, 1.0 / LOOKS, size=(2, *vv.shape)).astype(np.float32)
    return (vv * gain * speckle[0]).astype(np.float32), (vh * gain * speckle[1]).astype(np.float32)


def render(ctx: DemoContext, p: S1Pass) -> list[dict]:
    """Simulate one scene, write its VV/VH COGs and return its STAC item."""
    spec, grid = ctx.spec, ctx.area10
    valid, footprint = _valid(spec, grid, p.orbit_state)
    vv, vh = backscatter(ctx, p)
    suffix = hashlib.blake2b(p.product_id.encode(), digest_size=2).hexdigest().upper()
    folder = (
        f"{COLLECTION}/GRD/{p.when.year}/{p.when.month}/{p.when.day}/IW/DV/"
        f"{p.product_id}_{suffix}/measurement"
    )
    assets = {}
    for key, values in (("vh", vh), ("vv", vv)):
        path, href = ctx.file(f"{folder}/iw-{key}.rtc.tiff")
        info = write_cog(path, np.where(valid, values, np.float32(NODATA)), grid, spec.epsg,
                         nodata=NODATA)
        assets[key] = items.AssetFile(href, info, grid)
    return [items.sentinel1_item(ctx, p, assets, footprint)]

"""Landsat Collection 2 Level-2 scenes shaped like Planetary Computer's ``landsat-c2-l2``.

Landsat 8 and 9 each revisit every 16 days, 8 days apart. Surface reflectance is averaged from
the 10 m simulation onto the 30 m WRS-2 grid (origin offset by 15 m) and stored with the C2
scale/offset (DN = (reflectance + 0.2) / 2.75e-5). QA_PIXEL follows the C2 bit layout: bit 1
dilated cloud, 2 cirrus, 3 cloud, 4 shadow, 5 snow, 6 clear, 7 water, and 2-bit confidences
for cloud (8-9), shadow (10-11), snow (12-13) and cirrus (14-15).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
from shapely.geometry import box

from tessera_assets.demo import items, landsat_items
from tessera_assets.demo.atmosphere import apply_sky, sky, snow_cover, weather
from tessera_assets.demo.cog import write_cog
from tessera_assets.demo.context import DemoContext
from tessera_assets.demo.geo import solar_position, wrs2_path_row
from tessera_assets.demo.grids import landsat_grid, to_grid
from tessera_assets.demo.landcover import LandCover
from tessera_assets.demo.noise import dilate
from tessera_assets.demo.spec import DemoSpec, rng_for
from tessera_assets.demo.surface import BANDS, reflectance

COLLECTION = "landsat-c2-l2"
SCALE, OFFSET = 2.75e-05, -0.2
SR_BANDS = ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22")

# QA_PIXEL bits.
FILL, DILATED, CIRRUS, CLOUD, SHADOW, SNOW, CLEAR, WATER = (1 << b for b in range(8))
CLOUD_CONF, SHADOW_CONF, SNOW_CONF, CIRRUS_CONF = 8, 10, 12, 14  # 2-bit field offsets
LOW, MEDIUM, HIGH = 1, 2, 3
_FILL_VALUE = FILL  # fill pixels carry only bit 0 (the asset's nodata is 1)


@dataclass(frozen=True)
class LandsatPass:
    platform: str
    when: datetime
    path: int
    row: int

    @property
    def sensor_code(self) -> str:
        return "LC0" + self.platform[-1]

    @property
    def processed(self) -> datetime:
        return datetime.combine(self.when.date() + timedelta(days=1), datetime.min.time(), UTC)

    @property
    def scene_id(self) -> str:
        doy = self.when.timetuple().tm_yday
        return f"LC{self.platform[-1]}{self.path:03d}{self.row:03d}{self.when.year}{doy:03d}LGN00"


def schedule(spec: DemoSpec, centre_lonlat: tuple[float, float]) -> list[LandsatPass]:
    path, row = wrs2_path_row(*centre_lonlat)
    first, last = spec.period
    platforms = [("landsat-8", 6)] + ([("landsat-9", 14)] if spec.year >= 2022 else [])
    passes = []
    for platform, day0 in platforms:
        for k in range(25):
            day = date(spec.year, 1, day0) + timedelta(days=16 * k)
            if day > last:
                break
            if first <= day:
                when = datetime(day.year, day.month, day.day, 10, 58, 41, 517000, tzinfo=UTC)
                passes.append(LandsatPass(platform, when, path, row))
    return sorted(passes, key=lambda p: p.when)


def _set_confidence(qa: np.ndarray, mask: np.ndarray, offset: int, level: int) -> None:
    qa[mask] = (qa[mask] & ~np.uint16(3 << offset)) | np.uint16(level << offset)


def quality(cloud: np.ndarray, cirrus: np.ndarray, shadow: np.ndarray, snow: np.ndarray,
            water: np.ndarray) -> np.ndarray:
    """QA_PIXEL from 30 m cloud opacity, cirrus, shadow, snow and water fractions."""
    low = (LOW << CLOUD_CONF) | (LOW << SHADOW_CONF) | (LOW << SNOW_CONF) | (LOW << CIRRUS_CONF)
    qa = np.full(cloud.shape, low, dtype=np.uint16)
    is_cloud = cloud >= 0.5
    dilated = dilate(is_cloud, 3) & ~is_cloud
    is_cirrus = cirrus >= 0.35
    is_shadow = (shadow >= 0.45) & ~is_cloud
    is_snow = (snow >= 0.5) & ~is_cloud
    is_water = (water >= 0.5) & ~is_cloud & ~is_shadow
    _set_confidence(qa, (cloud >= 0.2) & ~is_cloud, CLOUD_CONF, MEDIUM)
    _set_confidence(qa, is_cloud, CLOUD_CONF, HIGH)
    _set_confidence(qa, is_cirrus, CIRRUS_CONF, HIGH)
    _set_confidence(qa, is_shadow, SHADOW_CONF, HIGH)
    _set_confidence(qa, is_snow, SNOW_CONF, HIGH)
    qa[is_cloud] |= CLOUD
    qa[dilated] |= DILATED
    qa[is_cirrus] |= CIRRUS
    qa[is_shadow] |= SHADOW
    qa[is_snow] |= SNOW
    qa[~is_cloud & ~dilated] |= CLEAR
    qa[is_water] |= WATER
    return qa


def render(ctx: DemoContext, p: LandsatPass) -> list[dict]:
    """Simulate one scene, write its SR and QA_PIXEL COGs and return its STAC item."""
    spec, land, base = ctx.spec, ctx.land, ctx.base
    grid = landsat_grid(spec)
    rng = rng_for(spec.seed, "landsat", p.scene_id)
    lon, lat = ctx.centre_lonlat
    sun_el, sun_az = solar_position(p.when, lon, lat)
    wx = weather(spec, p.when.date())
    surface, _ = reflectance(land, p.when.timetuple().tm_yday + p.when.hour / 24, wx.wetness)
    s = sky(spec, wx, base, ctx.area10, p.when, sun_el, sun_az)
    toc = apply_sky(surface, land, s)

    qa = quality(
        to_grid(s.cloud, base, grid),
        to_grid(s.cirrus, base, grid),
        to_grid(s.shadow, base, grid),
        to_grid(snow_cover(land, s), base, grid),
        to_grid(land.fraction(LandCover.WATER), base, grid),
    )
    product = landsat_items.landsat_product(p, processed=True)
    folder = (
        f"{COLLECTION}/level-2/standard/oli-tirs/{p.when.year}/{p.path:03d}/{p.row:03d}/{product}"
    )
    assets = {}
    for key in SR_BANDS:
        source = "blue" if key == "coastal" else key
        refl = to_grid(toc[BANDS.index(source)], base, grid)
        if key == "coastal":
            refl = 0.92 * refl + 0.004  # aerosol-sensitive band: a little darker over land
        refl = refl * rng.normal(1.0, 0.02)
        refl += 0.003 * rng.standard_normal(refl.shape, dtype=np.float32)
        dn = np.clip(np.round((refl - OFFSET) / SCALE), 1, 65535).astype(np.uint16)
        path, href = ctx.file(f"{folder}/{product}_{landsat_items.LANDSAT_FILES[key]}.TIF")
        assets[key] = items.AssetFile(href, write_cog(path, dn, grid, spec.epsg, nodata=0), grid)
    path, href = ctx.file(f"{folder}/{product}_QA_PIXEL.TIF")
    info = write_cog(path, qa, grid, spec.epsg, nodata=_FILL_VALUE, categorical=True)
    assets["qa_pixel"] = items.AssetFile(href, info, grid)

    cloudy = (qa & CLOUD) > 0
    land_px = (qa & WATER) == 0
    cover = round(100.0 * float(cloudy.mean()), 2)
    cover_land = round(100.0 * float(cloudy[land_px].mean()) if land_px.any() else 0.0, 2)
    return [
        landsat_items.landsat_item(ctx, p, assets, box(*grid.bounds), cover, cover_land, sun_el, sun_az)
    ]

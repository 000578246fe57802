"""Surface reflectance: linear mixtures of a few endmember spectra per pixel.

Reflectance = green canopy x leaf spectrum + senescent cover x straw spectrum + the rest x the
class background (soil darkened by rain, leaf litter, roofs and roads, water). Values are
typical of L2A products, so vegetation indices and SWIR behave plausibly per class.
"""

from __future__ import annotations

import numpy as np

from tessera_assets.demo.landcover import LandCover, Landscape
from tessera_assets.demo.phenology import pixel_canopy

BANDS = ("blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "swir16", "swir22")
"""Surface bands (Sentinel-2 common names, in wavelength order); Landsat's are derived."""

#                      blue   green  red    re1    re2    re3    nir    nir08  swir16 swir22
LEAF = np.array([0.030, 0.075, 0.035, 0.110, 0.300, 0.400, 0.440, 0.450, 0.220, 0.110], dtype=np.float32)
CONIFER = np.array([0.020, 0.045, 0.025, 0.070, 0.190, 0.250, 0.280, 0.290, 0.130, 0.060], dtype=np.float32)
FLOWER = np.array([0.040, 0.150, 0.130, 0.170, 0.290, 0.370, 0.410, 0.420, 0.230, 0.120], dtype=np.float32)
STRAW = np.array([0.080, 0.120, 0.160, 0.200, 0.240, 0.260, 0.280, 0.290, 0.360, 0.280], dtype=np.float32)
SOIL = np.array([0.090, 0.130, 0.180, 0.210, 0.240, 0.255, 0.270, 0.280, 0.350, 0.300], dtype=np.float32)
LITTER = np.array([0.040, 0.060, 0.080, 0.100, 0.130, 0.150, 0.170, 0.180, 0.230, 0.170], dtype=np.float32)
BUILT = np.array([0.100, 0.110, 0.120, 0.135, 0.150, 0.160, 0.180, 0.190, 0.230, 0.210], dtype=np.float32)
WATER = np.array([0.050, 0.055, 0.032, 0.025, 0.018, 0.015, 0.012, 0.011, 0.006, 0.004], dtype=np.float32)
SNOW = np.array([0.850, 0.830, 0.800, 0.780, 0.760, 0.740, 0.720, 0.700, 0.090, 0.060], dtype=np.float32)
CLOUD = np.array([0.520, 0.520, 0.530, 0.530, 0.530, 0.535, 0.540, 0.540, 0.400, 0.280], dtype=np.float32)
CIRRUS = np.array([0.060, 0.050, 0.045, 0.040, 0.040, 0.038, 0.036, 0.036, 0.025, 0.018], dtype=np.float32)


def _background_table(wetness: float) -> np.ndarray:
    """(classes, bands) reflectance of what lies under the canopy; rain darkens soil."""
    soil = SOIL * np.float32(1 - 0.3 * wetness)
    table = np.stack([soil] * (max(LandCover) + 1))
    table[LandCover.DECIDUOUS_FOREST] = LITTER
    table[LandCover.EVERGREEN_FOREST] = LITTER
    table[LandCover.URBAN] = BUILT
    table[LandCover.WATER] = WATER
    table[LandCover.BARE] = np.minimum(soil * 1.25, 0.6)
    return table


def reflectance(land: Landscape, doy: float, wetness: float) -> tuple[np.ndarray, np.ndarray]:
    """Surface reflectance (bands, H, W) on ``land.grid`` and the green-canopy fraction."""
    canopy = pixel_canopy(land, doy)
    g, s, f = canopy.green, canopy.senescent, canopy.flower
    conifer = (land.classes == LandCover.EVERGREEN_FOREST).astype(np.float32)
    table = _background_table(wetness)
    bare = 1 - g - s
    brightness = 1 + np.float32(0.04) * land.texture
    gb = g * brightness
    out = np.empty((len(BANDS), *g.shape), dtype=np.float32)
    for b in range(len(BANDS)):
        leaf = LEAF[b] + conifer * (CONIFER[b] - LEAF[b]) + f * (FLOWER[b] - LEAF[b])
        below = np.take(table[:, b], land.classes)
        out[b] = gb * leaf + (s * STRAW[b] + bare * below) * brightness
    return out, g

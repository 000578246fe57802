"""Seasonal canopy state of every landscape unit on a given day of year.

Each unit gets three cover fractions: green canopy, senescent material (ripe crop, stubble,
cut hay, dead leaves) and, for oilseed rape, yellow flowers. Crop calendars are typical of
lowland England: winter wheat greens up in March and is cut in late July, spring barley is
sown in March, maize in May, rape flowers in April-May; broadleaf woods leaf out in late April.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tessera_assets.demo.landcover import LandCover, Landscape


@dataclass(frozen=True)
class CropCalendar:
    """Days of year (before the per-field shift) and canopy levels of one crop."""

    winter_green: float  # canopy carried over winter from autumn sowing
    greenup: float
    greenup_width: float
    peak: float
    senescence: float
    senescence_width: float
    harvest: float
    plough: float
    sowing: float | None = None  # autumn sowing of next year's crop
    autumn_green: float = 0.0


CALENDARS = {
    LandCover.WINTER_CEREAL: CropCalendar(0.25, 88, 9, 0.9, 182, 6, 213, 245, 275, 0.25),
    LandCover.SPRING_CEREAL: CropCalendar(0.0, 135, 8, 0.85, 198, 6, 228, 255),
    LandCover.MAIZE: CropCalendar(0.0, 180, 10, 0.9, 255, 8, 283, 305),
    LandCover.OILSEED_RAPE: CropCalendar(0.45, 70, 8, 0.85, 172, 6, 200, 228, 238, 0.5),
}
_RAPE_FLOWERING = (115.0, 11.0)  # centre, half-width (days)


@dataclass(frozen=True)
class Canopy:
    """Per-unit cover fractions (green + senescent <= 1; flower is a share of green)."""

    green: np.ndarray
    senescent: np.ndarray
    flower: np.ndarray


def _logistic(x: np.ndarray, mid: np.ndarray | float, width: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x - mid) / width))


def unit_canopy(land: Landscape, doy: float) -> Canopy:
    """Cover fractions of every unit of ``land`` on day ``doy``."""
    n = land.unit_class.size
    green = np.zeros(n, dtype=np.float64)
    senescent = np.zeros(n, dtype=np.float64)
    flower = np.zeros(n, dtype=np.float64)
    cls = land.unit_class
    shift = land.unit_shift.astype(np.float64)
    d = np.full(n, float(doy))

    for crop, cal in CALENDARS.items():
        m = cls == crop
        if not m.any():
            continue
        s = shift[m]
        dd = d[m] - s
        canopy = cal.winter_green + (cal.peak - cal.winter_green) * _logistic(
            dd, cal.greenup, cal.greenup_width
        )
        ripe = _logistic(dd, cal.senescence, cal.senescence_width)
        g = canopy * (1 - ripe)
        sen = canopy * ripe
        after = dd >= cal.harvest
        stubble = 0.35 * np.clip(1 - (dd - cal.harvest) / (cal.plough - cal.harvest), 0, 1)
        g = np.where(after, 0.0, g)
        sen = np.where(after, stubble, sen)
        if cal.sowing is not None:
            g = g + np.where(dd >= cal.sowing, cal.autumn_green * _logistic(dd, cal.sowing + 25, 8), 0)
        if crop == LandCover.OILSEED_RAPE:
            centre, half = _RAPE_FLOWERING
            flower[m] = np.clip(1 - ((dd - centre) / half) ** 2, 0, 1) * 0.7
        green[m], senescent[m] = g, sen

    m = cls == LandCover.GRASSLAND
    if m.any():
        base = 0.55 + 0.3 * np.exp(-(((d[m] - 145) / 70) ** 2))
        cut_factor = np.ones(m.sum())
        hay = np.zeros(m.sum())
        for k in range(2):
            c = land.unit_cuts[m, k].astype(np.float64)
            since = np.where(np.isnan(c), -1.0, d[m] - np.nan_to_num(c))
            cut = since >= 0
            cut_factor = np.where(cut, cut_factor * (1 - 0.6 * np.exp(-since / 18)), cut_factor)
            hay = np.where(cut, hay + 0.3 * np.exp(-since / 5), hay)
        green[m] = base * cut_factor
        senescent[m] = np.minimum(hay, 1 - green[m])

    m = cls == LandCover.DECIDUOUS_FOREST
    if m.any():
        leaf = _logistic(d[m], 118 + shift[m] / 3, 7) - _logistic(d[m], 296 + shift[m] / 3, 9)
        green[m] = 0.2 + 0.7 * leaf
        senescent[m] = 0.25 * _logistic(d[m], 285, 8) * (1 - _logistic(d[m], 320, 8))

    m = cls == LandCover.EVERGREEN_FOREST
    green[m] = 0.75 + 0.05 * np.sin(2 * np.pi * (d[m] - 100) / 365)
    m = cls == LandCover.URBAN
    green[m] = 0.12 + 0.06 * np.sin(2 * np.pi * (d[m] - 100) / 365)
    green[cls == LandCover.BARE] = 0.03

    return Canopy(
        green.astype(np.float32), senescent.astype(np.float32), flower.astype(np.float32)
    )


def pixel_canopy(land: Landscape, doy: float) -> Canopy:
    """Per-pixel cover fractions: the unit's state with a little within-field variation."""
    unit = unit_canopy(land, doy)
    vary = 1 + 0.07 * land.texture
    green = np.clip(unit.green[land.unit] * vary, 0, 1)
    senescent = np.clip(unit.senescent[land.unit], 0, 1 - green)
    return Canopy(green, senescent, unit.flower[land.unit])

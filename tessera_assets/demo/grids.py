"""Pixel grids of the demo: the 10 m simulation grid and each sensor's own file grid.

The scene is simulated once per acquisition on a 10 m *base* grid that extends past the area
by :data:`MARGIN_M`, then cut or block-averaged onto each sensor's grid. Landsat's 30 m grid is
offset by 15 m, as real WRS-2 products are, so the pipeline's reprojection is exercised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine

from tessera_assets.demo.spec import DemoSpec

BASE_RES = 10.0
MARGIN_M = 60.0
"""Base-grid margin around the area: room for Landsat's offset 30 m pixels."""
LANDSAT_RES = 30.0
LANDSAT_OFFSET_M = 15.0
"""Landsat C2 grid origins sit at 15 m modulo 30 m (e.g. x = 355785)."""


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: top-left corner, pixel size and shape."""

    x0: float
    y0: float
    res: float
    width: int
    height: int

    @property
    def transform(self) -> Affine:
        return Affine(self.res, 0.0, self.x0, 0.0, -self.res, self.y0)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0 - self.height * self.res, self.x0 + self.width * self.res, self.y0)

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates as (x of each column, y of each row)."""
        xs = self.x0 + (np.arange(self.width) + 0.5) * self.res
        ys = self.y0 - (np.arange(self.height) + 0.5) * self.res
        return xs, ys

    def offset_in(self, base: Grid) -> tuple[int, int]:
        """(row, col) of this grid's top-left corner in ``base`` pixels (must be whole)."""
        col = (self.x0 - base.x0) / base.res
        row = (base.y0 - self.y0) / base.res
        if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
            raise ValueError(f"{self} is not aligned with {base}")
        return round(row), round(col)

    def proj_transform(self) -> list[float]:
        """The 6-element ``proj:transform`` (GDAL order a, b, c, d, e, f)."""
        t = self.transform
        return [t.a, t.b, t.c, t.d, t.e, t.f]


def base_grid(spec: DemoSpec) -> Grid:
    """The 10 m simulation grid: the area plus :data:`MARGIN_M` on every side."""
    x0, y0, x1, y1 = spec.bounds
    return Grid(
        x0 - MARGIN_M,
        y1 + MARGIN_M,
        BASE_RES,
        round((x1 - x0 + 2 * MARGIN_M) / BASE_RES),
        round((y1 - y0 + 2 * MARGIN_M) / BASE_RES),
    )


def area_grid(spec: DemoSpec, res: float = BASE_RES) -> Grid:
    """The area itself at ``res`` (land-cover map, Sentinel-1 files)."""
    x0, y0, x1, y1 = spec.bounds
    return Grid(x0, y1, res, round((x1 - x0) / res), round((y1 - y0) / res))


def s2_granule_grids(spec: DemoSpec) -> dict[str, tuple[Grid, Grid]]:
    """10 m and 20 m grids of the two overlapping Sentinel-2 granules ("W" and "E").

    Each covers about 62 % of the area's width, so the middle quarter is seen by both granules
    on every pass: the same-day mosaicking case of real MGRS tile overlaps.
    """
    x0, y0, x1, y1 = spec.bounds
    width = x1 - x0
    split_w = x0 + _snap(0.62 * width, 20.0)
    split_e = x0 + _snap(0.38 * width, 20.0)
    grids = {}
    for name, (gx0, gx1) in {"W": (x0, split_w), "E": (split_e, x1)}.items():
        g10 = Grid(gx0, y1, 10.0, round((gx1 - gx0) / 10.0), round((y1 - y0) / 10.0))
        g20 = Grid(gx0, y1, 20.0, round((gx1 - gx0) / 20.0), round((y1 - y0) / 20.0))
        grids[name] = (g10, g20)
    return grids


def landsat_grid(spec: DemoSpec) -> Grid:
    """The 30 m Landsat grid (origin at 15 m modulo 30 m) covering the area."""
    x0, y0, x1, y1 = spec.bounds
    off = LANDSAT_OFFSET_M
    gx0 = math.floor((x0 - off) / LANDSAT_RES) * LANDSAT_RES + off
    gx1 = math.ceil((x1 - off) / LANDSAT_RES) * LANDSAT_RES + off
    gy0 = math.floor((y0 - off) / LANDSAT_RES) * LANDSAT_RES + off
    gy1 = math.ceil((y1 - off) / LANDSAT_RES) * LANDSAT_RES + off
    return Grid(
        gx0, gy1, LANDSAT_RES, round((gx1 - gx0) / LANDSAT_RES), round((gy1 - gy0) / LANDSAT_RES)
    )


def _snap(value: float, step: float) -> float:
    return round(value / step) * step


def crop(arr: np.ndarray, base: Grid, target: Grid) -> np.ndarray:
    """Cut ``target``'s window (same resolution) out of a base-grid array (..., H, W)."""
    row, col = target.offset_in(base)
    return arr[..., row : row + target.height, col : col + target.width]


def block_mean(arr: np.ndarray, factor: int) -> np.ndarray:
    """Average non-overlapping ``factor`` x ``factor`` blocks of the last two axes."""
    *lead, h, w = arr.shape
    blocks = arr.reshape(*lead, h // factor, factor, w // factor, factor)
    return blocks.mean(axis=(-3, -1), dtype=np.float32)


def to_grid(arr: np.ndarray, base: Grid, target: Grid) -> np.ndarray:
    """Resample a base-grid field onto ``target`` by exact area averaging.

    Works for any target whose pixel size is a multiple of 5 m and whose origin sits on the 5 m
    lattice of the base grid (the 10 m S1/S2 grids, S2's 20 m grid, Landsat's offset 30 m grid).
    """
    if target.res == base.res:
        return crop(arr, base, target)
    factor = target.res / base.res
    if factor == round(factor):
        try:
            window = Grid(target.x0, target.y0, base.res, target.width * round(factor),
                          target.height * round(factor))
            return block_mean(crop(arr, base, window), round(factor))
        except ValueError:
            pass  # origin not on the base lattice: go through the 5 m lattice
    sub = 5.0
    fine = np.repeat(np.repeat(arr, 2, axis=-2), 2, axis=-1) if base.res == 10.0 else arr
    fine_grid = Grid(base.x0, base.y0, sub, base.width * 2, base.height * 2)
    factor = round(target.res / sub)
    window = Grid(target.x0, target.y0, sub, target.width * factor, target.height * factor)
    return block_mean(crop(fine, fine_grid, window), factor)

"""GDAL's bilinear warp onto a grid exactly twice as fine and on its pixel lattice, in numpy
(Sentinel-2's 20 m bands onto the 10 m tile grid; issue 14).

There every tile pixel centre lies a quarter of a source pixel from the nearest source centre,
so GDAL's weights are 3/4 and 1/4 per axis: the value is ``(9a + 3b + 3c + d) / 16`` of the
four nearest source pixels, rounded half up, computed here exactly in integers. Pixels that GDAL
treats specially go through its own formula in float64 (:func:`_gdal_pixels`): GDAL leaves a
pixel empty when the source pixel under its centre is nodata, drops nodata and off-raster
neighbours and renormalises the remaining weights, and at the first row or column uses that
source pixel alone.

The equality with GDAL holds because every coordinate involved is a multiple of a quarter
pixel, which GDAL's transformer computes without rounding; :mod:`granule_read` still compares
the two once per file grid and keeps GDAL's warp for a grid where they differ.
"""

from __future__ import annotations

import numpy as np


def source_window(
    src_shape: tuple[int, int], shape: tuple[int, int], row: int, col: int
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The source rows and columns (``((r0, r1), (c0, c1))``) :func:`bilinear_x2` needs for the
    tile pixels of ``shape`` that a source of ``src_shape`` covers, its top-left corner at tile
    pixel (``row``, ``col``); None when it does not reach the tile."""
    (r0, r1), (c0, c1) = _region(src_shape, shape, row, col)
    if r0 >= r1 or c0 >= c1:
        return None
    h, w = src_shape
    return (
        (max(0, (r0 - row) // 2 - 1), min(h, (r1 - 1 - row) // 2 + 2)),
        (max(0, (c0 - col) // 2 - 1), min(w, (c1 - 1 - col) // 2 + 2)),
    )


def _region(
    src_shape: tuple[int, int], shape: tuple[int, int], row: int, col: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    h, w = src_shape
    return ((max(0, row), min(shape[0], row + 2 * h)), (max(0, col), min(shape[1], col + 2 * w)))


def bilinear_x2(
    win: np.ndarray,
    window: tuple[tuple[int, int], tuple[int, int]],
    src_shape: tuple[int, int],
    nodata: float,
    shape: tuple[int, int],
    row: int,
    col: int,
) -> tuple[tuple[slice, slice], np.ndarray]:
    """GDAL's bilinear warp onto the tile pixels of ``shape`` that a source raster of
    ``src_shape`` (integer type, ``nodata``) covers, its top-left corner at tile pixel
    (``row``, ``col``); ``win`` holds the source pixels of :func:`source_window`'s ``window``.
    Returns the tile region and its pixels (``nodata`` where GDAL writes none)."""
    (r0, r1), (c0, c1) = _region(src_shape, shape, row, col)
    (sr0, _), (sc0, _) = window
    # Padded by one pixel: off the raster (or outside the window, whose extra row and column
    # on each side only feed pixels cropped away below) counts as nodata.
    data = win != nodata
    valid = _pad(data, fill=False)
    vals = _pad(win, fill=0, dtype=np.int32)
    # Separable: 4x the vertical weights, then 4x the horizontal ones, as integers.
    n = _twice(_twice(vals, 0, np.add), 1, np.add)
    # The window's pixels start at tile pixel (row + 2 sr0, col + 2 sc0); keep the region.
    ys = slice(r0 - row - 2 * sr0, r1 - row - 2 * sr0)
    xs = slice(c0 - col - 2 * sc0, c1 - col - 2 * sc0)
    n = n[ys, xs]
    np.add(n, 8, out=n)
    out = np.empty(n.shape, win.dtype)
    np.right_shift(n, 4, out=out, casting="unsafe")
    if data.all():  # no nodata: only the raster's own edges are special
        centre = np.ones(out.shape, bool)
        edge = np.ones(win.shape[0] + 2, bool), np.ones(win.shape[1] + 2, bool)
        for e in edge:
            e[[0, -1]] = False
        full = (
            _twice(edge[0], 0, np.logical_and)[ys, None]
            & _twice(edge[1], 0, np.logical_and)[None, xs]
        )
    else:
        full = _twice(_twice(valid, 0, np.logical_and), 1, np.logical_and)[ys, xs]
        centre = np.repeat(np.repeat(data, 2, axis=0), 2, axis=1)[ys, xs]
    out[~centre] = nodata
    odd = np.nonzero(centre & ~full)
    if len(odd[0]):
        ry, cx = odd[0] + (r0 - row), odd[1] + (c0 - col)
        out[odd] = _gdal_pixels(win, (sr0, sc0), src_shape, nodata, ry, cx)
    return (slice(r0, r1), slice(c0, c1)), out


def _twice(p: np.ndarray, axis: int, op: np.ufunc) -> np.ndarray:
    """Along ``axis`` of a padded array: for each inner pixel, its upper/left half (with the
    previous pixel) then its lower/right half (with the next one). With ``np.add`` the
    weights are 1:3 and 3:1; with ``np.logical_and``, whether both neighbours are valid."""
    size = p.shape[axis] - 2
    lead = (slice(None),) * axis
    lo, mid, hi = (p[(*lead, slice(i, size + i))] for i in range(3))
    shape = list(mid.shape)
    shape[axis] *= 2
    out = np.empty(shape, p.dtype)
    first, second = out[(*lead, slice(0, None, 2))], out[(*lead, slice(1, None, 2))]
    if op is np.add:
        for half, other in ((first, lo), (second, hi)):
            np.multiply(mid, 3, out=half)
            half += other
    else:
        op(lo, mid, out=first)
        op(mid, hi, out=second)
    return out


def _pad(a: np.ndarray, *, fill: object, dtype: object = None) -> np.ndarray:
    """``a`` with one row/column of ``fill`` added on each side."""
    out = np.full(tuple(n + 2 for n in a.shape), fill, dtype or a.dtype)
    out[1:-1, 1:-1] = a
    return out


def _gdal_pixels(
    win: np.ndarray,
    origin: tuple[int, int],
    src_shape: tuple[int, int],
    nodata: float,
    ry: np.ndarray,
    cx: np.ndarray,
) -> np.ndarray:
    """GDAL's bilinear sample (``GWKBilinearResample4Sample``) at the centres of the tile
    pixels (``ry``, ``cx``) (relative to the source's corner, in tile pixels) whose source
    pixel under the centre holds data: off-raster and nodata neighbours are dropped and the
    weights renormalised; at the first row or column the weight is 1. ``win`` holds the
    source from row/column ``origin`` (every neighbour on the raster is in it)."""
    h, w = src_shape
    out = np.zeros(len(ry), np.float64)
    sy, sx = (ry + 0.5) / 2.0, (cx + 0.5) / 2.0
    iy, ix = np.floor(sy - 0.5).astype(np.int64), np.floor(sx - 0.5).astype(np.int64)
    fy, fx = 1.5 - (sy - iy), 1.5 - (sx - ix)
    fy, iy = np.where(iy == -1, 1.0, fy), np.where(iy == -1, 0, iy)
    fx, ix = np.where(ix == -1, 1.0, fx), np.where(ix == -1, 0, ix)
    acc, div = out, np.zeros_like(out)
    for dy, dx, weight in (
        (0, 0, fx * fy),
        (0, 1, (1.0 - fx) * fy),
        (1, 0, fx * (1.0 - fy)),
        (1, 1, (1.0 - fx) * (1.0 - fy)),
    ):
        y, x = iy + dy, ix + dx
        inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
        wy = np.clip(y - origin[0], 0, win.shape[0] - 1)
        v = win[wy, np.clip(x - origin[1], 0, win.shape[1] - 1)].astype(np.float64)
        ok = inside & (v != nodata)
        div += np.where(ok, weight, 0.0)
        acc += np.where(ok, v * weight, 0.0)
    value = np.where(div == 1.0, acc, acc / np.where(div > 0, div, 1.0))
    info = np.iinfo(win.dtype)
    return np.clip(value + 0.5, info.min, info.max).astype(win.dtype)

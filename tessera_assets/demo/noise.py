"""Smooth random fields and bilinear sampling: the raw material of clouds and landscapes."""

from __future__ import annotations

import numpy as np


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], scale_px: float, beta: float = 3.0
) -> np.ndarray:
    """A zero-mean, unit-variance field with a power-law spectrum rolled off below 1/scale_px.

    ``beta`` = 3 gives cloud-like fractal edges; larger values give smoother blobs.
    """
    white = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    k0 = 1.0 / max(scale_px, 1.0)
    amplitude = (fx**2 + fy**2 + k0**2) ** (-beta / 4.0)
    field = np.fft.irfft2(np.fft.rfft2(white) * amplitude, s=shape)
    field -= field.mean()
    std = field.std()
    return (field / std if std > 0 else field).astype(np.float32)


def _axis_weights(coords: np.ndarray, origin: float, step: float, n: int):
    """Left neighbour index and weight of each coordinate along one regular axis."""
    pos = np.clip((coords - origin) / step - 0.5, 0.0, n - 1.000001)
    i0 = np.floor(pos).astype(np.intp)
    return i0, (pos - i0).astype(np.float32)


def sample_bilinear(
    field: np.ndarray,
    x0: float,
    y0: float,
    res: float,
    xs: np.ndarray,
    ys: np.ndarray,
) -> np.ndarray:
    """Sample a north-up field (top-left corner ``x0, y0``, pixel ``res``) at the grid
    ``ys x xs`` of map coordinates; points outside are clamped to the edge."""
    h, w = field.shape
    ix, wx = _axis_weights(xs, x0, res, w)
    iy, wy = _axis_weights(-ys, -y0, res, h)
    top = field[iy][:, ix] * (1 - wx) + field[iy][:, ix + 1] * wx
    bottom = field[iy + 1][:, ix] * (1 - wx) + field[iy + 1][:, ix + 1] * wx
    return top * (1 - wy)[:, None] + bottom * wy[:, None]


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation with a square structuring element (no SciPy needed)."""
    out = mask.copy()
    h, w = mask.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            src = mask[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
            out[max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)] |= src
    return out

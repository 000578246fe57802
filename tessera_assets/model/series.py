"""PixelSeries: the raw per-pixel observations a TESSERA model embeds.

Layout and names follow the official stacked-tile contract (reference §2.4) with pixels flattened,
time first: ``s2_bands (T2, N, 10) uint16`` in band order B04, B02, B03, B08, B8A, B05, B06,
B07, B11, B12 (0 = nodata), ``s2_mask (T2, N)`` (1 = clear), ``s2_doy (T2,)``, and Sentinel-1
``[VV, VH]`` int16 codes per orbit (0 = missing) with their own day-of-year vectors.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

FIELDS = ("s2_bands", "s2_mask", "s2_doy", "s1_asc", "s1_asc_doy", "s1_desc", "s1_desc_doy")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(f"PixelSeries: {msg}")


@dataclass(frozen=True, eq=False)
class PixelSeries:
    """Raw observations for N pixels; validated on construction (shapes, dtypes, DOY range)."""

    s2_bands: np.ndarray
    s2_mask: np.ndarray
    s2_doy: np.ndarray
    s1_asc: np.ndarray
    s1_asc_doy: np.ndarray
    s1_desc: np.ndarray
    s1_desc_doy: np.ndarray

    def __post_init__(self) -> None:
        for f in fields(self):
            _check(isinstance(getattr(self, f.name), np.ndarray), f"{f.name} must be a numpy array")
        b, m = self.s2_bands, self.s2_mask
        _check(b.ndim == 3 and b.shape[2] == 10, f"s2_bands must be (T2, N, 10), got {b.shape}")
        _check(b.dtype == np.uint16, f"s2_bands must be uint16 DN, got {b.dtype}")
        t2, n = b.shape[:2]
        _check(m.shape == (t2, n), f"s2_mask must be (T2, N) = {(t2, n)}, got {m.shape}")
        _check(
            m.dtype in (np.uint8, np.bool_), f"s2_mask must be uint8 or bool, got {m.dtype}"
        )
        if m.dtype == np.uint8 and m.size:
            _check(int(m.max()) <= 1, "s2_mask must hold only 0 (not clear) and 1 (clear)")
        self._check_doy("s2_doy", self.s2_doy, t2)
        for orbit in ("s1_asc", "s1_desc"):
            arr = getattr(self, orbit)
            _check(
                arr.ndim == 3 and arr.shape[1:] == (n, 2),
                f"{orbit} must be (T, N={n}, 2) [VV, VH], got {arr.shape}",
            )
            _check(arr.dtype == np.int16, f"{orbit} must be int16 dB codes, got {arr.dtype}")
            self._check_doy(f"{orbit}_doy", getattr(self, f"{orbit}_doy"), arr.shape[0])

    @staticmethod
    def _check_doy(name: str, doy: np.ndarray, length: int) -> None:
        _check(doy.shape == (length,), f"{name} must be ({length},), got {doy.shape}")
        _check(np.issubdtype(doy.dtype, np.integer), f"{name} must be integers, got {doy.dtype}")
        if doy.size:
            lo, hi = int(doy.min()), int(doy.max())
            _check(lo >= 0 and hi <= 366, f"{name} must lie in [0, 366], got [{lo}, {hi}]")

    @property
    def n_pixels(self) -> int:
        return self.s2_bands.shape[1]

    def __len__(self) -> int:
        return self.n_pixels

    @classmethod
    def from_npz(cls, path: str | Path) -> PixelSeries:
        """Read the seven arrays from an ``.npz`` (the golden ``inputs.npz`` layout)."""
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in FIELDS if k not in data]
            _check(not missing, f"{path} lacks arrays {missing}")
            return cls(**{k: data[k] for k in FIELDS})

    @classmethod
    def empty(cls, n_pixels: int = 0, t2: int = 0, ta: int = 0, td: int = 0) -> PixelSeries:
        """All-zero (no data) observations; handy for tests and padding."""
        return cls(
            np.zeros((t2, n_pixels, 10), np.uint16),
            np.zeros((t2, n_pixels), np.uint8),
            np.ones(t2, np.uint16),
            np.zeros((ta, n_pixels, 2), np.int16),
            np.ones(ta, np.uint16),
            np.zeros((td, n_pixels, 2), np.int16),
            np.ones(td, np.uint16),
        )

    def subset(self, pixel_indices: np.ndarray | slice) -> PixelSeries:
        """The same time steps for a subset of pixels (e.g. one batch of a large tile)."""
        idx = pixel_indices
        return PixelSeries(
            self.s2_bands[:, idx],
            self.s2_mask[:, idx],
            self.s2_doy,
            self.s1_asc[:, idx],
            self.s1_asc_doy,
            self.s1_desc[:, idx],
            self.s1_desc_doy,
        )

    def s2_clear(self) -> np.ndarray:
        """(T2, N) bool: the step is clear (mask == 1)."""
        return self.s2_mask.astype(bool, copy=False)

    def s2_has_data(self) -> np.ndarray:
        """(N,) bool: some S2 band is non-zero at some step (the v1.0 keep rule)."""
        return np.any(self.s2_bands != 0, axis=(0, 2))

    def s1_valid(self) -> tuple[np.ndarray, np.ndarray]:
        """(T_a, N), (T_d, N) bool: a step is valid when VV or VH is non-zero."""
        return np.any(self.s1_asc != 0, axis=2), np.any(self.s1_desc != 0, axis=2)

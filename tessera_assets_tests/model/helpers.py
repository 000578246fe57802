"""Small synthetic inputs for unit tests."""

from __future__ import annotations

import numpy as np

from tessera_assets.model import PixelSeries


def random_series(
    n: int,
    *,
    seed: int = 0,
    t2: int = 30,
    ta: int = 12,
    td: int = 10,
    clear_p: float = 0.6,
    s1_p: float = 0.7,
) -> PixelSeries:
    """Random plausible observations; pixel 0 is all nodata, pixel 1 has no S1 and no clear S2."""
    rng = np.random.default_rng(seed)
    bands = rng.integers(1, 9000, (t2, n, 10), dtype=np.uint16)
    mask = (rng.random((t2, n)) < clear_p).astype(np.uint8)
    asc = (rng.integers(3000, 9000, (ta, n, 2)) * (rng.random((ta, n, 1)) < s1_p)).astype(np.int16)
    desc = (rng.integers(3000, 9000, (td, n, 2)) * (rng.random((td, n, 1)) < s1_p)).astype(np.int16)
    if n > 0:
        bands[:, 0] = 0
        mask[:, 0] = 0
        asc[:, 0] = 0
        desc[:, 0] = 0
    if n > 1:
        mask[:, 1] = 0
        asc[:, 1] = 0
        desc[:, 1] = 0
    return PixelSeries(
        bands,
        mask,
        np.sort(rng.choice(np.arange(1, 367), t2, replace=False)).astype(np.uint16),
        asc,
        np.sort(rng.choice(np.arange(1, 367), ta, replace=False)).astype(np.uint16),
        desc,
        np.sort(rng.choice(np.arange(1, 367), td, replace=False)).astype(np.uint16),
    )

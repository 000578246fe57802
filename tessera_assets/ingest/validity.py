"""Validity masks: which pixels of a scene are clear observations (DESIGN §1).

Pure numpy on one slice at a time, so the same rules serve the per-day mosaics (the first
granule valid at a pixel wins) and the masked cubes the model families read.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tessera_assets.sources.bands import LANDSAT_QA_BITS

SCL_INVALID = (0, 1, 2, 3, 8, 9)
"""SCL classes that are not clear: no data, saturated, dark area, cloud shadow, cloud
medium/high probability. Thin cirrus (10), snow (11), water (6) and unclassified (7) count as
valid (tessera-model.md §2.2)."""


def s2_clear(scl: np.ndarray) -> np.ndarray:
    """True where the Scene Classification marks the pixel clear."""
    return ~np.isin(scl, SCL_INVALID)


def s2_valid(scl: np.ndarray) -> np.ndarray:
    """1 where the Scene Classification marks the pixel clear, else 0 (uint8)."""
    return s2_clear(scl).astype(np.uint8)


def s1_present(backscatter: np.ndarray) -> np.ndarray:
    """True where linear backscatter is an observation: finite and positive (NaN and the
    negative nodata values the catalogs use are not)."""
    x = np.asarray(backscatter)
    return np.isfinite(x) & (x > 0)


def landsat_qa_mask(qa_bits: Mapping[str, int] = LANDSAT_QA_BITS) -> int:
    """The QA_PIXEL bit mask of the named bits (offsets), any of which makes a pixel unclear."""
    mask = 0
    for bit in qa_bits.values():
        mask |= 1 << int(bit)
    return mask


def landsat_clear(qa_pixel: np.ndarray, qa_bits: Mapping[str, int] = LANDSAT_QA_BITS
                  ) -> np.ndarray:
    """True where QA_PIXEL has none of ``qa_bits`` (fill, cloud, dilated cloud, cirrus,
    shadow) set."""
    return (qa_pixel.astype(np.uint16) & landsat_qa_mask(qa_bits)) == 0


def landsat_has_data(qa_pixel: np.ndarray, qa_bits: Mapping[str, int] = LANDSAT_QA_BITS
                     ) -> np.ndarray:
    """True where QA_PIXEL's fill bit is not set."""
    return (qa_pixel.astype(np.uint16) & (1 << int(qa_bits["fill"]))) == 0


def landsat_valid(qa_pixel: np.ndarray, qa_bits: Mapping[str, int] = LANDSAT_QA_BITS
                  ) -> np.ndarray:
    """1 where QA_PIXEL has no fill, cloud, dilated cloud, cirrus or shadow bit, else 0."""
    return landsat_clear(qa_pixel, qa_bits).astype(np.uint8)

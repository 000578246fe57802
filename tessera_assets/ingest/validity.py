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


def has_data(bands: np.ndarray) -> np.ndarray:
    """True where some band is non-zero. Bands are the third axis from the end (``(band, y,
    x)`` or ``(granule|day, band, y, x)``). 0 is nodata in Sentinel-2 L2A and Landsat C2 DN,
    and what a day mosaic writes where no granule has data, so a pixel whose every band is 0
    is absent, whatever its quality band says."""
    return np.any(np.asarray(bands) != 0, axis=-3)


def s2_clear(scl: np.ndarray, bands: np.ndarray | None = None) -> np.ndarray:
    """True where the Scene Classification marks the pixel clear (SCL 0, no data, never is)
    and, given the ``bands``, where they hold data."""
    clear = ~np.isin(scl, SCL_INVALID)
    return clear if bands is None else clear & has_data(bands)


def s2_valid(scl: np.ndarray, bands: np.ndarray | None = None) -> np.ndarray:
    """1 where :func:`s2_clear`, else 0 (uint8)."""
    return s2_clear(scl, bands).astype(np.uint8)


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
    shadow) set and is not 0: a real QA_PIXEL always has a bit set (clear, water, fill...),
    so 0 is what a mosaic writes where no granule has data, not a clear pixel."""
    qa = qa_pixel.astype(np.uint16)
    return ((qa & landsat_qa_mask(qa_bits)) == 0) & (qa != 0)


def landsat_has_data(qa_pixel: np.ndarray, qa_bits: Mapping[str, int] = LANDSAT_QA_BITS
                     ) -> np.ndarray:
    """True where QA_PIXEL's fill bit is not set (and QA_PIXEL is not 0: no data at all)."""
    qa = qa_pixel.astype(np.uint16)
    return ((qa & (1 << int(qa_bits["fill"]))) == 0) & (qa != 0)


def landsat_valid(qa_pixel: np.ndarray, qa_bits: Mapping[str, int] = LANDSAT_QA_BITS,
                  bands: np.ndarray | None = None) -> np.ndarray:
    """1 where :func:`landsat_clear` and, given the SR ``bands``, they hold data; else 0."""
    clear = landsat_clear(qa_pixel, qa_bits)
    return (clear if bands is None else clear & has_data(bands)).astype(np.uint8)

"""Value harmonisation: raw DN and backscatter to the values the TESSERA families expect.

The Sentinel-2 BOA offset rule, the Sentinel-1 int16 dB code and Landsat's scale/offset to the
Sentinel-2 reflectance scale (DESIGN §1, tessera-model.md §2). Pure numpy on one slice at a
time; the per-scene inputs (BOA offset, scale/offset) come from the recorded load plans.
"""

from __future__ import annotations

import numpy as np

from tessera_assets.ingest.validity import s1_present

S1_CODE_MAX = 32767


def s2_harmonise(dn: np.ndarray, boa_offset: int) -> np.ndarray:
    """Remove the processing-baseline-04.00 BOA offset: subtract it only where DN ≥ offset,
    leaving smaller values (and nodata 0) unchanged, as the official MPC preprocessing does."""
    if boa_offset == 0:
        return dn.astype(np.uint16, copy=False)
    dn = dn.astype(np.uint16, copy=False)
    return np.where(dn >= boa_offset, dn - np.uint16(boa_offset), dn).astype(np.uint16)


def s1_code(backscatter: np.ndarray) -> np.ndarray:
    """Linear RTC backscatter → the int16 dB code of the models: clip((20·log10(x)+50)·200,
    0, 32767), computed in float32 and truncated to int16 like the official stacker.
    Non-positive or non-finite values become 0, which means missing."""
    x = np.asarray(backscatter, dtype=np.float32)
    ok = s1_present(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        code = (20.0 * np.log10(np.where(ok, x, 1.0)) + 50.0) * 200.0
    code = np.clip(code, 0, S1_CODE_MAX)
    return np.where(ok, code, 0).astype(np.int16)


def s1_backscatter_from_code(code: np.ndarray) -> np.ndarray:
    """Inverse of :func:`s1_code` (NaN where the code is 0 = missing)."""
    c = np.asarray(code, dtype=np.float32)
    return np.where(c > 0, 10.0 ** ((c / 200.0 - 50.0) / 20.0), np.nan).astype(np.float32)


def landsat_reflectance(dn: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """Collection 2 DN → surface reflectance × 10000 as uint16 (0 = nodata), the same scale
    as Sentinel-2 DN, so the two optical sensors can be compared directly."""
    dn = np.asarray(dn)
    refl = dn.astype(np.float32) * np.float32(scale) + np.float32(offset)
    out = np.clip(np.rint(refl * 10000.0), 1, 65535)
    return np.where(dn == 0, 0, out).astype(np.uint16)

"""Masked / calibrated cubes from raw cubes: lazy, one dask task per day slice.

Thin xarray wrappers around :mod:`tessera_assets.ingest.masks`, with the per-day decisions (the
Sentinel-2 BOA offset, Landsat scale/offset) taken from the scene manifest.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from tessera_assets.ingest.masks import (
    landsat_reflectance,
    landsat_valid,
    s1_code,
    s2_harmonise,
    s2_valid,
)
from tessera_assets.sources.manifest import SceneManifest
from tessera_assets.sources.profiles import LANDSAT_BANDS, S2_BANDS, profile_for


def _per_day(values: dict[int, float], doys: np.ndarray, default: float = 0.0) -> np.ndarray:
    return np.array([values.get(int(d), default) for d in doys])


def s2_boa_offsets(manifest: SceneManifest) -> dict[int, int]:
    """BOA offset per day; granules of one day normally share a baseline, else the largest
    offset is used (subtracting only where DN ≥ offset keeps that safe)."""
    return {
        doy: max(int(i.properties.get("tessera:boa_offset", 0)) for i in items)
        for doy, items in manifest.days("s2").items()
    }


def s2_masked(cube: xr.Dataset, manifest: SceneManifest) -> xr.Dataset:
    """Harmonised DN (uint16, 10 model bands) and the SCL validity mask (uint8, 1 = clear)."""
    raw = cube["bands"].data  # (doy, band, y, x), band 10 = SCL
    offsets = _per_day(s2_boa_offsets(manifest), cube["doy"].values).astype(np.int64)
    bands = da.map_blocks(
        _harmonise_block, raw[:, : len(S2_BANDS)],
        da.from_array(offsets, chunks=(raw.chunks[0],))[:, None, None, None],
        dtype=np.uint16,
    )
    valid = da.map_blocks(s2_valid, raw[:, len(S2_BANDS)], dtype=np.uint8)
    coords = {k: v for k, v in cube.coords.items() if k != "band"}
    return xr.Dataset(
        {"bands": (("doy", "band", "y", "x"), bands), "valid": (("doy", "y", "x"), valid)},
        coords={**coords, "band": list(S2_BANDS)},
        attrs={"boa_offsets": {str(k): v for k, v in s2_boa_offsets(manifest).items()}},
    )


def _harmonise_block(dn: np.ndarray, offset: np.ndarray) -> np.ndarray:
    out = np.empty(dn.shape, np.uint16)
    for i in range(dn.shape[0]):
        out[i] = s2_harmonise(dn[i], int(offset.reshape(-1)[i]))
    return out


def s1_calibrated(cube: xr.Dataset) -> xr.Dataset:
    """Backscatter → the models' int16 dB code (0 = missing), per orbit and polarisation."""
    codes = da.map_blocks(s1_code, cube["backscatter"].data, dtype=np.int16)
    return xr.Dataset(
        {"codes": (cube["backscatter"].dims, codes)}, coords=dict(cube.coords)
    )


def landsat_scale_offset(manifest: SceneManifest) -> dict[str, tuple[float, float]]:
    """Scale and offset of each SR band from the items' ``raster:bands`` (C2 defaults when
    an item omits them, as USGS items do)."""
    out: dict[str, tuple[float, float]] = {b: (2.75e-5, -0.2) for b in LANDSAT_BANDS}
    items = manifest.sensor_items("landsat")
    if items:
        prof = profile_for(items[0])
        for band in LANDSAT_BANDS:
            rb = items[0].assets[prof.band_assets[band]].extra_fields.get("raster:bands") or [{}]
            if "scale" in rb[0]:
                out[band] = (float(rb[0]["scale"]), float(rb[0].get("offset", 0.0)))
    return out


def landsat_masked(cube: xr.Dataset, manifest: SceneManifest) -> xr.Dataset:
    """Surface reflectance × 10000 (uint16, 0 = nodata) and the QA_PIXEL validity mask."""
    raw = cube["bands"].data
    so = landsat_scale_offset(manifest)
    bands = [
        da.map_blocks(landsat_reflectance, raw[:, i], so[b][0], so[b][1], dtype=np.uint16)
        for i, b in enumerate(LANDSAT_BANDS)
    ]
    valid = da.map_blocks(landsat_valid, raw[:, len(LANDSAT_BANDS)], dtype=np.uint8)
    coords = {k: v for k, v in cube.coords.items() if k != "band"}
    return xr.Dataset(
        {
            "reflectance": (("doy", "band", "y", "x"), da.stack(bands, axis=1)),
            "valid": (("doy", "y", "x"), valid),
        },
        coords={**coords, "band": list(LANDSAT_BANDS)},
    )

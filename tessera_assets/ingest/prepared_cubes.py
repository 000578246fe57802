"""Masked / calibrated cubes from raw cubes: lazy, one dask task per day slice.

Thin xarray wrappers around :mod:`tessera_assets.ingest.validity` and
:mod:`tessera_assets.ingest.harmonise`, with the per-scene decisions (the Sentinel-2 BOA offset,
Landsat scale/offset and QA bits) read from the load plans the scene manifest records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import dask.array as da
import numpy as np
import pystac
import xarray as xr

from tessera_assets.ingest.harmonise import landsat_reflectance, s1_code, s2_harmonise
from tessera_assets.ingest.validity import landsat_valid, s2_valid
from tessera_assets.sources.bands import (
    LANDSAT_BANDS,
    LANDSAT_C2_OFFSET,
    LANDSAT_C2_SCALE,
    LANDSAT_QA_BITS,
    S2_BANDS,
)
from tessera_assets.sources.manifest import SceneManifest
from tessera_assets.sources.plan_record import recorded_decision, recorded_plan

T = TypeVar("T")


def _per_day(values: dict[int, float], doys: np.ndarray, default: float = 0.0) -> np.ndarray:
    return np.array([values.get(int(d), default) for d in doys])


def s2_boa_offsets(manifest: SceneManifest) -> dict[int, int]:
    """BOA offset per day; granules of one day normally share a baseline, else the largest
    offset is used (subtracting only where DN ≥ offset keeps that safe)."""
    return {
        doy: max(int(recorded_decision(i, "boa_offset")) for i in items)
        for doy, items in manifest.days("s2").items()
    }


def s2_masked(cube: xr.Dataset, manifest: SceneManifest) -> xr.Dataset:
    """Harmonised DN (uint16, 10 model bands) and the validity mask (uint8, 1 = clear): SCL
    clear and band data present, so no-data and mosaic fill never count as observations."""
    raw = cube["bands"].data  # (doy, band, y, x), band 10 = SCL
    offsets = _per_day(s2_boa_offsets(manifest), cube["doy"].values).astype(np.int64)
    bands = da.map_blocks(
        _harmonise_block, raw[:, : len(S2_BANDS)],
        da.from_array(offsets, chunks=(raw.chunks[0],))[:, None, None, None],
        dtype=np.uint16,
    )
    valid = da.map_blocks(_s2_valid_block, raw.rechunk({1: -1}), drop_axis=1, dtype=np.uint8)
    coords = {k: v for k, v in cube.coords.items() if k != "band"}
    return xr.Dataset(
        {"bands": (("doy", "band", "y", "x"), bands), "valid": (("doy", "y", "x"), valid)},
        coords={**coords, "band": list(S2_BANDS)},
        attrs={"boa_offsets": {str(k): v for k, v in s2_boa_offsets(manifest).items()}},
    )


def _s2_valid_block(raw: np.ndarray) -> np.ndarray:
    """(doy, 11, y, x) DN + SCL → (doy, y, x) validity: SCL clear and band data present."""
    return s2_valid(raw[:, len(S2_BANDS)], raw[:, : len(S2_BANDS)])


def _landsat_valid_block(raw: np.ndarray, qa_bits: dict[str, int]) -> np.ndarray:
    """(doy, 7, y, x) DN + QA_PIXEL → (doy, y, x) validity: no QA bit set, QA_PIXEL not 0
    (the mosaic's "no granule"), SR data present."""
    return landsat_valid(raw[:, len(LANDSAT_BANDS)], qa_bits, raw[:, : len(LANDSAT_BANDS)])


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
    """Scale and offset of each SR band, as the Landsat scenes' recorded load plans state them
    (C2 defaults for a manifest without Landsat scenes)."""
    return _landsat_agreed(manifest, "scale/offset", _scale_offset,
                           {b: (LANDSAT_C2_SCALE, LANDSAT_C2_OFFSET) for b in LANDSAT_BANDS})


def _scale_offset(item: pystac.Item) -> dict[str, tuple[float, float]]:
    plan = recorded_plan(item)
    return {b: (plan.band(b).scale, plan.band(b).offset) for b in LANDSAT_BANDS}


def landsat_qa_bits(manifest: SceneManifest) -> dict[str, int]:
    """The QA_PIXEL bits the Landsat scenes' recorded load plans test."""
    return _landsat_agreed(manifest, "QA bits",
                           lambda item: dict(recorded_decision(item, "qa_bits")),
                           dict(LANDSAT_QA_BITS))


def _landsat_agreed(manifest: SceneManifest, what: str, read: Callable[[pystac.Item], T],
                    default: T) -> T:
    """One value every Landsat scene's recorded plan agrees on: the masked cube applies it to
    day mosaics, which mix granules, so scenes that disagree cannot be told apart there."""
    values = {item.id: read(item) for item in manifest.sensor_items("landsat")}
    if not values:
        return default
    first_id, first = next(iter(values.items()))
    differ = [i for i, v in values.items() if v != first]
    if differ:
        raise ValueError(
            f"{manifest.tile_id} {manifest.year}: Landsat scenes record different {what}: "
            f"{differ[0]} {values[differ[0]]} vs {first_id} {first}"
        )
    return first


def landsat_masked(cube: xr.Dataset, manifest: SceneManifest) -> xr.Dataset:
    """Surface reflectance × 10000 (uint16, 0 = nodata) and the validity mask: QA_PIXEL clear
    and not 0, SR data present (fill and absent data are invalid)."""
    raw = cube["bands"].data
    so = landsat_scale_offset(manifest)
    bands = [
        da.map_blocks(landsat_reflectance, raw[:, i], so[b][0], so[b][1], dtype=np.uint16)
        for i, b in enumerate(LANDSAT_BANDS)
    ]
    valid = da.map_blocks(_landsat_valid_block, raw.rechunk({1: -1}), landsat_qa_bits(manifest),
                          drop_axis=1, dtype=np.uint8)
    coords = {k: v for k, v in cube.coords.items() if k != "band"}
    return xr.Dataset(
        {
            "reflectance": (("doy", "band", "y", "x"), da.stack(bands, axis=1)),
            "valid": (("doy", "y", "x"), valid),
        },
        coords={**coords, "band": list(LANDSAT_BANDS)},
    )

"""Raw cubes: load each acquisition day of a tile-year onto the tile's 10 m grid with odc-stac.

A cube is a lazy (dask) ``xr.Dataset`` with one slice per acquisition day: each slice is one
task that reads that day's granules and mosaics them (the first granule valid at a pixel wins),
so memory is bounded by one day of one tile and the store can write slice by slice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import dask
import dask.array as da
import numpy as np
import odc.stac
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from tessera_assets.grid import Tile
from tessera_assets.manifest import SceneManifest
from tessera_assets.masking import LANDSAT_QA_INVALID, SCL_INVALID
from tessera_assets.profiles import (
    LANDSAT_BANDS,
    S1_ORBITS,
    S1_POLARISATIONS,
    S2_BANDS,
    profile_for,
)

log = logging.getLogger(__name__)

S2_CUBE_BANDS: tuple[str, ...] = (*S2_BANDS, "SCL")
S1_CUBE_BANDS: tuple[str, ...] = tuple(f"{p}_{o}" for o in S1_ORBITS for p in S1_POLARISATIONS)
"""``vv_ascending, vh_ascending, vv_descending, vh_descending``: orbit-major, so orbit ``o``
is bands ``2o`` and ``2o + 1``."""
LANDSAT_CUBE_BANDS: tuple[str, ...] = (*LANDSAT_BANDS, "qa_pixel")
S1_NODATA = -32768.0


class IngestError(RuntimeError):
    """A scene could not be read; the message names the item and asset."""


def load_granules(
    items: Sequence[pystac.Item],
    assets: Sequence[str],
    geobox: GeoBox,
    resampling: dict[str, str],
    pool: int | None = None,
) -> xr.Dataset:
    """Read ``assets`` of each item onto ``geobox``: one time slice per item, in item order."""
    try:
        return odc.stac.load(
            list(items), bands=list(assets), geobox=geobox, groupby="id",
            resampling=resampling, preserve_original_order=True, fail_on_error=True, pool=pool,
        ).load()
    except Exception as exc:
        raise _name_culprit(items, assets, geobox, exc) from exc


def _name_culprit(
    items: Sequence[pystac.Item], assets: Sequence[str], geobox: GeoBox, exc: Exception
) -> IngestError:
    """Retry asset by asset to say exactly which scene/asset is unreadable."""
    for item in items:
        for asset in assets:
            if asset not in item.assets:
                return IngestError(f"item {item.id} has no asset {asset!r}")
            try:
                odc.stac.load([item], bands=[asset], geobox=geobox, fail_on_error=True).load()
            except Exception as inner:
                href = item.assets[asset].href
                return IngestError(f"cannot read item {item.id} asset {asset!r} ({href}): {inner}")
    return IngestError(f"reading {[i.id for i in items]} failed: {exc}")


def first_valid(stack: np.ndarray, valid: np.ndarray, has_data: np.ndarray) -> np.ndarray:
    """Per pixel, take the first granule that is valid there; where none is, the first that has
    data at all; where none has data, zeros.

    ``stack`` is (granule, band, y, x); ``valid``/``has_data`` are (granule, y, x) booleans.
    """
    pick_valid = valid.argmax(axis=0)
    pick_data = has_data.argmax(axis=0)
    pick = np.where(valid.any(axis=0), pick_valid, pick_data)
    out = np.take_along_axis(stack, pick[None, None], axis=0)[0]
    return np.where(has_data.any(axis=0)[None], out, 0).astype(stack.dtype)


# -- per-day loaders (each runs inside one dask task) -------------------------------------


def _s2_day(items: Sequence[pystac.Item], geobox: GeoBox) -> np.ndarray:
    prof = profile_for(items[0])
    keys = [prof.band_assets[b] for b in S2_BANDS] + [prof.qa_asset or "scl"]
    ds = load_granules(items, keys, geobox, prof.resampling())
    stack = np.stack([ds[k].values for k in keys], axis=1).astype(np.uint16)
    scl = stack[:, -1]
    has_data = (scl != 0) | (stack[:, :-1] != 0).any(axis=1)
    return first_valid(stack, ~np.isin(scl, SCL_INVALID), has_data)


def _landsat_day(items: Sequence[pystac.Item], geobox: GeoBox) -> np.ndarray:
    prof = profile_for(items[0])
    keys = [prof.band_assets[b] for b in LANDSAT_BANDS] + [prof.qa_asset or "qa_pixel"]
    ds = load_granules(items, keys, geobox, prof.resampling())
    stack = np.stack([ds[k].values for k in keys], axis=1).astype(np.uint16)
    qa = stack[:, -1]
    has_data = (qa & 1) == 0
    return first_valid(stack, (qa & LANDSAT_QA_INVALID) == 0, has_data)


def _s1_day(items: Sequence[pystac.Item], geobox: GeoBox) -> np.ndarray:
    npol = len(S1_POLARISATIONS)
    out = np.full((len(S1_ORBITS) * npol, *geobox.shape), np.nan, np.float32)
    for o, orbit in enumerate(S1_ORBITS):
        granules = [i for i in items if i.properties["tessera:orbit"] == orbit]
        if not granules:
            continue
        prof = profile_for(granules[0])
        keys = [prof.band_assets[p] for p in S1_POLARISATIONS]
        ds = load_granules(granules, keys, geobox, prof.resampling())
        stack = np.stack([ds[k].values for k in keys], axis=1).astype(np.float32)
        ok = np.isfinite(stack) & (stack != S1_NODATA) & (stack > 0)
        stack = np.where(ok, stack, np.nan)
        has = ok.any(axis=1)
        mosaic = first_valid(stack, has, has)
        out[o * npol:(o + 1) * npol] = np.where(has.any(axis=0)[None], mosaic, np.nan)
    return out


# -- cube assembly -------------------------------------------------------------------------


def _cube(
    days: dict[int, list[pystac.Item]],
    loader: Callable[[Sequence[pystac.Item], GeoBox], np.ndarray],
    slice_shape: tuple[int, ...],
    dtype: np.dtype,
    geobox: GeoBox,
    var: str,
    dims: tuple[str, ...],
    coords: dict[str, Sequence[str]],
) -> xr.Dataset:
    doys = np.array(sorted(days), dtype=np.int16)
    slices = [
        da.from_delayed(dask.delayed(loader, pure=True)(days[int(d)], geobox),
                        shape=slice_shape, dtype=dtype)
        for d in doys
    ]
    data = (da.stack(slices) if slices
            else da.zeros((0, *slice_shape), dtype=dtype, chunks=(1, *slice_shape)))
    xy = xr_coords(geobox)
    return xr.Dataset(
        {var: (("doy", *dims, "y", "x"), data)},
        coords={"doy": doys, **{k: list(v) for k, v in coords.items()}, **xy},
    )


def s2_cube(manifest: SceneManifest, tile: Tile) -> xr.Dataset:
    """Sentinel-2 L2A DN (uint16, official band order) plus SCL, one slice per day."""
    gb = tile.geobox
    return _cube(manifest.days("s2"), _s2_day, (len(S2_CUBE_BANDS), *gb.shape),
                 np.dtype(np.uint16), gb, "bands", ("band",), {"band": S2_CUBE_BANDS})


def s1_cube(manifest: SceneManifest, tile: Tile) -> xr.Dataset:
    """Sentinel-1 RTC gamma0 (linear float32, NaN = missing), bands :data:`S1_CUBE_BANDS`."""
    gb = tile.geobox
    return _cube(manifest.days("s1"), _s1_day, (len(S1_CUBE_BANDS), *gb.shape),
                 np.dtype(np.float32), gb, "backscatter", ("band",), {"band": S1_CUBE_BANDS})


def landsat_cube(manifest: SceneManifest, tile: Tile) -> xr.Dataset:
    """Landsat C2 L2 SR DN (uint16) plus QA_PIXEL, resampled to the 10 m tile grid."""
    gb = tile.geobox
    return _cube(manifest.days("landsat"), _landsat_day,
                 (len(LANDSAT_CUBE_BANDS), *gb.shape), np.dtype(np.uint16), gb, "bands",
                 ("band",), {"band": LANDSAT_CUBE_BANDS})

"""Turn a tile's masked cubes into per-pixel observation series, strip by strip.

This is the inference input contract of the official code (tessera-model.md §2.4): S2 DN in the
official band order with a clear mask and days-of-year, and S1 int16 codes split into ascending
and descending series, each with the days on which that orbit direction was acquired.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from tessera_assets.inference.tasks import StripRef, StripTask
from tessera_assets.sources.bands import S1_ORBITS
from tessera_assets.sources.manifest import SceneManifest


def orbit_days(manifest: SceneManifest) -> dict[str, list[int]]:
    """Days-of-year on which each orbit direction has at least one acquisition."""
    out: dict[str, set[int]] = {o: set() for o in S1_ORBITS}
    for doy, items in manifest.days("s1").items():
        for it in items:
            out[it.properties["tessera:orbit"]].add(doy)
    return {o: sorted(v) for o, v in out.items()}


def _pixels_last(block: np.ndarray) -> np.ndarray:
    """(T, C, r, W) → (T, r*W, C). Shapes are spelt out (no ``-1``): a tile-year without
    scenes of a sensor has T = 0, and numpy cannot infer a dimension of a size-0 array."""
    t, c, r, w = block.shape
    return np.ascontiguousarray(block.transpose(0, 2, 3, 1).reshape(t, r * w, c))


def _flat_pixels(block: np.ndarray) -> np.ndarray:
    """(T, r, W) → (T, r*W), also for T = 0."""
    t, r, w = block.shape
    return block.reshape(t, r * w)


@dataclass
class StripInputs:
    """What a strip's rows give the model, and how many observations each pixel had: the
    counts travel with the strip's result, so no process reads the whole tile for them."""

    series: Any  # tessera_assets.model.PixelSeries
    n_s2: np.ndarray  # uint16 (r*W,): clear S2 observations
    n_s1: np.ndarray  # uint16 (r*W,): valid S1 observations, both orbit directions


def strip_inputs(
    s2: xr.Dataset, s1: xr.Dataset, days: dict[str, list[int]], row0: int, row1: int
) -> StripInputs:
    """The :class:`~tessera_assets.model.PixelSeries` of tile rows ``row0:row1`` and their
    observation counts; reads only those rows of the (lazy) masked cubes, each array once."""
    from tessera_assets.model import PixelSeries

    s2_doy = s2["doy"].values.astype(np.uint16)
    s1_doys = [int(d) for d in s1["doy"].values]
    index = {o: [s1_doys.index(d) for d in days[o] if d in s1_doys] for o in S1_ORBITS}
    rows = slice(row0, row1)
    bands = s2["bands"].isel(y=rows).values  # (T2, 10, r, W)
    valid = s2["valid"].isel(y=rows).values  # (T2, r, W)
    codes = s1["codes"].isel(y=rows).values  # (T1, 4, r, W): orbit-major vv/vh
    orbit_series = {}
    for o, name in enumerate(S1_ORBITS):
        pols = slice(2 * o, 2 * o + 2)
        sel = codes[index[name], pols] if index[name] else codes[:0, pols]
        orbit_series[name] = (
            _pixels_last(sel).astype(np.int16, copy=False),
            np.array([s1_doys[i] for i in index[name]], dtype=np.uint16),
        )
    n_s2, n_s1 = _counts(valid, codes)
    series = PixelSeries(
        s2_bands=_pixels_last(bands).astype(np.uint16, copy=False),
        s2_mask=_flat_pixels(valid).astype(np.uint8),
        s2_doy=s2_doy,
        s1_asc=orbit_series["ascending"][0],
        s1_asc_doy=orbit_series["ascending"][1],
        s1_desc=orbit_series["descending"][0],
        s1_desc_doy=orbit_series["descending"][1],
    )
    return StripInputs(series, n_s2.reshape(-1), n_s1.reshape(-1))


def strip_series(
    s2: xr.Dataset, s1: xr.Dataset, days: dict[str, list[int]], row0: int, row1: int
) -> Any:
    """The :class:`~tessera_assets.model.PixelSeries` of tile rows ``row0:row1``."""
    return strip_inputs(s2, s1, days, row0, row1).series


def _counts(valid: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clear S2 observations of (T2, …) ``valid`` and valid S1 observations (any polarisation
    ≠ 0, both orbit directions) of (T1, 4, …) orbit-major ``codes``, per pixel, as uint16."""
    n_s2 = valid.sum(axis=0, dtype=np.uint16)
    t, _, *px = codes.shape
    obs = (codes.reshape(t, len(S1_ORBITS), 2, *px) != 0).any(axis=2)
    return n_s2, obs.sum(axis=(0, 1), dtype=np.uint16)


def strip_bounds(height: int, strip_rows: int) -> Iterator[tuple[int, int, int]]:
    """``(key, row0, row1)`` of each strip of a tile ``height`` rows tall."""
    for key, row0 in enumerate(range(0, height, strip_rows)):
        yield key, row0, min(height, row0 + strip_rows)


def strip_tasks(
    s2: xr.Dataset, s1: xr.Dataset, manifest: SceneManifest, strip_rows: int
) -> Iterator[StripTask]:
    """Yield one :class:`StripTask` (series inline) per ``strip_rows`` rows; each reads only
    its rows."""
    days = orbit_days(manifest)
    for key, row0, row1 in strip_bounds(s2.sizes["y"], strip_rows):
        inputs = strip_inputs(s2, s1, days, row0, row1)
        yield StripTask(key=key, row0=row0, row1=row1, series=inputs.series,
                        n_s2=inputs.n_s2, n_s1=inputs.n_s1)


def strip_refs(
    tile_id: str,
    year: int,
    height: int,
    manifest: SceneManifest,
    strip_rows: int,
    settings_json: str,
    regions: dict[str, str] | None = None,
) -> Iterator[StripRef]:
    """Yield one :class:`StripRef` per ``strip_rows`` rows: the workers read the rows from
    the masked-cube stores themselves (``regions``: the records the run verified, see
    :mod:`tessera_assets.inference.inputs`)."""
    days = orbit_days(manifest)
    for key, row0, row1 in strip_bounds(height, strip_rows):
        yield StripRef(
            key=key,
            row0=row0,
            row1=row1,
            tile_id=tile_id,
            year=int(year),
            settings_json=settings_json,
            orbit_days=days,
            regions=dict(regions or {}),
        )


def observation_counts(s2: xr.Dataset, s1: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Clear S2 and valid S1 observations per pixel of a whole tile, as uint16 (H, W). Reads
    both cubes whole: inference gets the same counts strip by strip (:func:`strip_inputs`)."""
    return _counts(s2["valid"].values, s1["codes"].values)


def embedding_note(n_s2: np.ndarray, n_s1: np.ndarray, pixels_embedded: int, family: str) -> str:
    """One line saying what a tile-year could be embedded from, so that a partition with few or
    no embeddings (open ocean, an S1-only or Landsat-only catalog) reads as explained, not as a
    silent success. The family rules are the model's (tessera-model.md §2.5)."""
    s2_px, s1_px = int((n_s2 > 0).sum()), int((n_s1 > 0).sum())
    if s2_px == 0 and s1_px == 0:
        return (
            "nothing embedded: the tile-year has no Sentinel-2 or Sentinel-1 observation "
            "(no scene, every scene skipped, open ocean or only Landsat); every scale is NaN"
        )
    if s2_px == 0 and pixels_embedded == 0:
        return (
            f"nothing embedded: {family} needs Sentinel-2 observations and the tile-year has "
            f"Sentinel-1 only ({s1_px} px); every scale is NaN"
        )
    if s2_px == 0:
        return (
            f"no Sentinel-2 observation: {pixels_embedded} px embedded from Sentinel-1 only "
            f"({family} rule); the rest are NaN"
        )
    return f"{pixels_embedded} of {n_s2.size} px embedded"

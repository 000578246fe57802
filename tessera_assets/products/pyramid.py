"""The multiscale pyramid of ``embeddings_coarse``: levels of factor 2 up to the coarsest.

Level *k* (k = 1..N) is the TESSERA layout at 10·2^k m (a last odd step when the coarsest
resolution is not a power-of-two multiple), one store per level so that xarray, zarr and
geotessera open any level unchanged: ``embeddings_coarse_{res}m.zarr`` for the finer levels
and ``embeddings_coarse.zarr`` for the coarsest (its historical name and resolution). Every
level's root lists all of them (``tessera:pyramid``).

Each pixel is the mean of its valid children in the level below, renormalised and
re-quantised (:func:`~tessera_assets.products.coarse.coarsen_step`, AlphaEarth's overview rule)
rather than a direct block mean of the fine pixels: a level is then a pure function of the one
below, so each level can be checked against its parent (:func:`audit_pyramid`). A partition
writes its own tile window in every level, finest first, the coarsest (the asset's own output,
committed by its IO manager) last.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from tessera_assets.grid import Tile
from tessera_assets.products import attributes as attr
from tessera_assets.products.coarse import (
    Clamp,
    CoarseResult,
    coarsen_embeddings,
    coarsen_levels,
    coarsen_step,
    committed_source,
    partition_dataset,
)
from tessera_assets.products.embeddings import EmbeddingsStore, dequantise
from tessera_assets.store import Lineage, LineageRecord

TOLERANCE_STEPS = 1.0 + 1e-3
"""A stored level may differ from its recomputation by at most one quantisation step."""


class LevelAudit(NamedTuple):
    product: str
    resolution_m: float
    passed: bool
    detail: str


def _steps(stores: Sequence[EmbeddingsStore], fine: EmbeddingsStore) -> list[int]:
    resolutions = [fine.schema.resolution, *(s.schema.resolution for s in stores)]
    return [round(b / a) for a, b in pairwise(resolutions)]


def pyramid_datasets(
    fine: EmbeddingsStore,
    levels: Sequence[EmbeddingsStore],
    tile: Tile,
    year: int,
    *,
    clamp: Clamp,
    lineage: Lineage | Mapping[str, Any] | None = None,
) -> list[xr.Dataset]:
    """Every level of one committed fine partition, finest first, each with its provenance
    (the fine record's manifest and model; ``source`` = the level below)."""
    source = committed_source(fine, tile, year)
    steps = _steps(levels, fine)
    results = coarsen_levels(
        fine.tile_array(tile, year, "embeddings"),
        fine.tile_array(tile, year, "scales"),
        steps,
        clamp=clamp,
    )
    parents = [fine, *levels[:-1]]
    return [
        partition_dataset(
            fine, source, r, parent=(p.product, p.schema.resolution), factor=f, lineage=lineage
        )
        for r, p, f in zip(results, parents, steps, strict=True)
    ]


def write_level(store: EmbeddingsStore, tile: Tile, year: int, ds: xr.Dataset) -> LineageRecord:
    """Write one level's partition (its own region of the level's store, committed)."""
    data = {name: ds[name].data for name in ds.data_vars}
    return store.write_tile(tile, year, data, attr.lineage_from_attrs(ds.attrs))


def _stored(store: EmbeddingsStore, tile: Tile, year: int) -> CoarseResult:
    return CoarseResult(
        np.asarray(store.tile_array(tile, year, "embeddings")[:, :, :]),
        np.asarray(store.tile_array(tile, year, "scales")[:, :]),
        np.asarray(store.tile_array(tile, year, "pixel_count")[:, :]),
    )


def _compare(have: CoarseResult, want: CoarseResult) -> str | None:
    have_valid, want_valid = np.isfinite(have.scales), np.isfinite(want.scales)
    if not np.array_equal(have_valid, want_valid):
        return f"{int((have_valid != want_valid).sum())} pixels differ in validity"
    if not np.array_equal(have.counts, want.counts):
        return f"{int((have.counts != want.counts).sum())} pixels differ in pixel_count"
    ok = want_valid
    step = want.scales[ok][None]
    err = np.abs(
        dequantise(have.embeddings, have.scales)[:, ok]
        - dequantise(want.embeddings, want.scales)[:, ok]
    ) / np.where(step > 0, step, 1)
    if err.size and float(err.max()) > TOLERANCE_STEPS:
        bad = int((err > TOLERANCE_STEPS).any(axis=0).sum())
        return f"{bad} pixels differ by up to {float(err.max()):.2f} quantisation steps"
    return None


def audit_pyramid(
    fine: EmbeddingsStore,
    levels: Sequence[EmbeddingsStore],
    tile: Tile,
    year: int,
    *,
    clamp: Clamp,
) -> list[LevelAudit]:
    """Coarse vs fine consistency at every level: each stored level equals the coarsening of
    the *stored* level below it (the fine region for level 1) within one quantisation step,
    with the same validity and pixel counts. Reads only this partition's windows."""
    out: list[LevelAudit] = []
    parent: CoarseResult | None = None
    for store, factor in zip(levels, _steps(levels, fine), strict=True):
        name, res = store.product, store.schema.resolution
        if store.read_lineage(tile, year) is None:
            out.append(LevelAudit(name, res, False, "not committed"))
            parent = None
            continue
        if parent is None and not out:
            if fine.read_lineage(tile, year) is None:
                out.append(LevelAudit(name, res, False, "fine region not committed"))
                continue
            want = coarsen_embeddings(
                fine.tile_array(tile, year, "embeddings"),
                fine.tile_array(tile, year, "scales"),
                factor,
                clamp=clamp,
            )
        elif parent is None:
            out.append(LevelAudit(name, res, False, "the level below is not committed"))
            continue
        else:
            want = coarsen_step(parent, factor, clamp=clamp)
        parent = _stored(store, tile, year)
        problem = _compare(parent, want)
        out.append(LevelAudit(name, res, problem is None, problem or "consistent"))
    return out


def summarise(audits: Sequence[LevelAudit]) -> tuple[bool, str, dict[str, Any]]:
    """(passed, one-line description, metadata per level) of an :func:`audit_pyramid`."""
    failed = [a for a in audits if not a.passed]
    meta = {f"{a.resolution_m:g}m": a.detail for a in audits}
    if failed:
        text = "; ".join(f"{a.resolution_m:g} m level: {a.detail}" for a in failed)
        return False, f"pyramid inconsistent: {text}", meta
    return True, f"all {len(audits)} pyramid levels consistent with the level below", meta

"""Coarsened embeddings (DESIGN §1 ``embeddings_coarse``): block means, renormalised, re-quantised.

The coarse product is a pyramid (:mod:`.pyramid`): levels of factor 2 up to the coarsest
resolution, each pixel the mean of the dequantised embeddings of the valid (finite-scale)
pixels in its ``factor × factor`` block of the level below (the AlphaEarth overview rule). Averaging vectors that point in different directions shrinks
the result (‖mean‖ ≤ mean‖x‖, equal only when all are parallel), so a plain mean of a mixed
block would have a much smaller norm than any real embedding, and anything trained on
fine-pixel embeddings (linear probes, distance thresholds, v2's LayerNormed scale) would see
it as out of distribution. We therefore keep the mean's *direction* and rescale it to the mean
*norm* of its contributing vectors. The result is then quantised like the model output
(per-pixel scale = max|x| / 127, rounded half-to-even, clamped to the family's int8 range:
v2 ±127, v1 −128..127). The range is the caller's to give: the family → clamp mapping lives
with the model (``tessera_assets.model.families.clamp_for_family``), which products must not
import.

Coarse stores use the same TESSERA layout at the coarse resolution, one shard per tile.
:func:`coarse_dataset` is a whole partition (read the committed fine region, coarsen, attach
the provenance); :func:`coarsen_partition` also writes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from tessera_assets.grid import PIXEL_SIZE, Tile
from tessera_assets.grid import coarsen_factor as coarsen_factor  # the grid's rule, re-exported
from tessera_assets.products import attributes as attr
from tessera_assets.products.embeddings import EmbeddingsStore, embeddings_schema
from tessera_assets.store import (
    Lineage,
    LineageRecord,
    PartitionNotCommittedError,
    ProductSchema,
    VariableSpec,
)

Clamp = int | tuple[int, int]
"""An int8 range ``(lo, hi)``, or the magnitude of its lower end: 127 → ±127, 128 → −128..127."""
MIN_ABS = 1e-12
"""Floor on max|x| before dividing by 127 (v2's rule), so an all-zero vector quantises to 0."""
STRIP_BUDGET_BYTES = 64 * 2**20
"""Float64 working memory per strip of coarse rows; bounds memory for 2048 px tiles."""


class CoarseResult(NamedTuple):
    embeddings: np.ndarray
    """int8 (B, H/f, W/f)"""
    scales: np.ndarray
    """float32 (H/f, W/f); NaN = no valid fine pixel, +inf = all fine pixels unwritten"""
    counts: np.ndarray
    """uint32 (H/f, W/f): valid fine pixels that contributed"""


def int8_range(clamp: Clamp) -> tuple[int, int]:
    """The validated ``(lo, hi)`` of a :data:`Clamp`."""
    if isinstance(clamp, tuple):
        lo, hi = clamp
    elif clamp in (127, 128):
        lo, hi = -int(clamp), 127
    else:
        raise ValueError(f"clamp must be 127 (v2), 128 (v1) or a (lo, hi) tuple, got {clamp!r}")
    if not (-128 <= lo < 0 < hi <= 127):
        raise ValueError(f"clamp range {(lo, hi)} does not fit int8")
    return lo, hi


def valid_factors(size_px: int) -> list[int]:
    """Block factors that divide a tile of ``size_px`` pixels (excluding 1)."""
    return [f for f in range(2, size_px + 1) if size_px % f == 0]


def coarsen_embeddings(
    emb_int8: Any,
    scales: Any,
    factor: int,
    *,
    clamp: Clamp = 127,
) -> CoarseResult:
    """Block-mean, renormalise and re-quantise quantised embeddings (see the module docstring).

    ``emb_int8`` is (B, H, W) int8 and ``scales`` (H, W) float32: numpy, dask, or any sliceable
    array such as :meth:`ZoneStore.tile_array` views. The work runs in strips of block rows, so
    a 2048 px tile never needs its full float64 cube in memory; dask inputs are fetched one row
    of dask chunks at a time. ``clamp``: 127 → v2's ±127, 128 → v1's −128..127, or an explicit
    ``(lo, hi)``.
    """
    lo, hi = int8_range(clamp)
    if emb_int8.ndim != 3 or scales.ndim != 2 or tuple(emb_int8.shape[1:]) != tuple(scales.shape):
        raise ValueError(
            f"expected embeddings (B, H, W) and scales (H, W), got {emb_int8.shape} and {scales.shape}"
        )
    if np.dtype(emb_int8.dtype) != np.int8:
        raise ValueError(f"embeddings must be int8, got {emb_int8.dtype}")
    bands, height, width = (int(n) for n in emb_int8.shape)
    if not isinstance(factor, int | np.integer) or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}")
    if height % factor or width % factor:
        common = [f for f in valid_factors(height) if width % f == 0]
        raise ValueError(
            f"factor {factor} does not divide the {height}x{width} px tile; valid factors: {common}"
        )
    h, w = height // factor, width // factor
    out_q = np.zeros((bands, h, w), np.int8)
    out_s = np.full((h, w), np.nan, np.float32)
    out_n = np.zeros((h, w), np.uint32)
    rows = max(1, STRIP_BUDGET_BYTES // max(1, bands * factor * width * 8))
    block = _block_rows(emb_int8, factor, rows)
    for b0 in range(0, h, block):
        b1 = min(h, b0 + block)
        q_block = np.asarray(emb_int8[:, b0 * factor : b1 * factor, :])
        s_block = np.asarray(scales[b0 * factor : b1 * factor, :], dtype=np.float32)
        for r0 in range(b0, b1, rows):
            r1 = min(b1, r0 + rows)
            lo_px, hi_px = (r0 - b0) * factor, (r1 - b0) * factor
            out_q[:, r0:r1], out_s[r0:r1], out_n[r0:r1] = _coarsen_strip(
                q_block[:, lo_px:hi_px], s_block[lo_px:hi_px], factor, lo, hi
            )
    return CoarseResult(out_q, out_s, out_n)


def _block_rows(emb: Any, factor: int, strip_rows: int) -> int:
    """Coarse rows fetched per read. Dask inputs are read a whole row of chunks at a time
    (slicing a dask array re-reads every chunk it touches, so thin strips would re-read each
    chunk many times); numpy and zarr-window inputs are read strip by strip."""
    chunks = getattr(emb, "chunks", None)
    if isinstance(chunks, tuple) and chunks and isinstance(chunks[0], tuple):
        return max(strip_rows, -(-max(chunks[1]) // factor))
    return strip_rows


def _coarsen_strip(
    q: np.ndarray, s: np.ndarray, f: int, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    bands, height, width = q.shape
    h, w = height // f, width // f
    valid = np.isfinite(s)
    x = q.astype(np.float64) * np.where(valid, s, 0.0).astype(np.float64)[None]
    norms = np.sqrt((x * x).sum(axis=0))
    count = valid.reshape(h, f, w, f).sum(axis=(1, 3))
    total = x.reshape(bands, h, f, w, f).sum(axis=(2, 4))
    norm_total = norms.reshape(h, f, w, f).sum(axis=(1, 3))
    has = count > 0
    safe = np.where(has, count, 1)
    mean = total / safe
    target = norm_total / safe
    mean_norm = np.sqrt((mean * mean).sum(axis=0))
    gain = np.where(mean_norm > 0, target / np.where(mean_norm > 0, mean_norm, 1.0), 1.0)
    vec = (mean * gain).astype(np.float32)
    scale = (np.maximum(np.abs(vec).max(axis=0), np.float32(MIN_ABS)) / np.float32(127)).astype(
        np.float32
    )
    quant = np.clip(np.rint(vec / scale[None]), lo, hi).astype(np.int8)
    quant[:, ~has] = 0
    all_unwritten = np.isposinf(s).reshape(h, f, w, f).all(axis=(1, 3))
    scale = np.where(has, scale, np.where(all_unwritten, np.inf, np.nan)).astype(np.float32)
    return quant, scale, count.astype(np.uint32)


COARSE = "embeddings_coarse"
"""The coarsest pyramid level's product; finer levels are ``embeddings_coarse_{res}m``."""


def pyramid_resolutions(tile_size: int, coarsest: float) -> list[float]:
    """Resolutions (m) of every pyramid level up to ``coarsest`` (validated), finest first."""
    res, out = PIXEL_SIZE, []
    for step in pyramid_factors(coarsen_factor(tile_size, coarsest)):
        res *= step
        out.append(res)
    return out


def level_product(resolution: float, coarsest: float) -> str:
    """Product name of the level at ``resolution``: the coarsest keeps ``embeddings_coarse``."""
    return COARSE if resolution == coarsest else f"{COARSE}_{resolution:g}m"


def pyramid_attrs(tile_size: int, resolution: float, coarsest: float) -> dict[str, Any]:
    """Root attributes that let a reader of any level find every other one (relative paths)."""
    levels = pyramid_resolutions(tile_size, coarsest)
    if resolution not in levels:
        raise ValueError(f"{resolution:g} m is not a level of the pyramid {levels}")
    return {
        attr.key("pyramid_level"): levels.index(resolution) + 1,
        attr.key("pyramid"): [
            {"level": i + 1, "resolution_m": r, "store": f"{level_product(r, coarsest)}.zarr"}
            for i, r in enumerate(levels)
        ],
    }


def coarse_embeddings_schema(
    years: Sequence[int],
    tile_size: int,
    resolution: float,
    *,
    model_name: str,
    build_version: str,
    model_sha256: str | None = None,
    model_family: str | None = None,
    demo_weights: bool = False,
    coarsest: float | None = None,
    source_product: str | None = None,
    extra_attrs: Mapping[str, Any] | None = None,
) -> ProductSchema:
    """TESSERA layout at a coarse ``resolution`` (validated), with a per-pixel count array: one
    level of the pyramid that ends at ``coarsest`` (default: this level). ``source_product``
    defaults to the level below (``embeddings`` for the first level).

    Inner chunks are ``gcd(tile_px, 32)`` so they still divide the one-tile shards.
    """
    factor = coarsen_factor(tile_size, resolution)
    coarsest = resolution if coarsest is None else coarsest
    levels = pyramid_resolutions(tile_size, coarsest)
    if source_product is None and resolution in levels:
        i = levels.index(resolution)
        source_product = level_product(levels[i - 1], coarsest) if i else "embeddings"
    count = VariableSpec(
        name="pixel_count",
        dims=("time", "y", "x"),
        dtype="uint32",
        fill_value=0,
        attrs={"grid_mapping": "spatial_ref", "long_name": "valid fine pixels averaged"},
    )
    attrs = {
        attr.COARSENED_FROM: source_product or "embeddings",
        attr.COARSEN_FACTOR: factor,
        attr.COARSEN_METHOD: (
            "pyramid of factor-2 steps: each pixel the mean of its valid dequantised children, "
            "rescaled to their mean L2 norm, re-quantised per pixel (scale = max|x|/127)"
        ),
        **(pyramid_attrs(tile_size, resolution, coarsest) if resolution in levels else {}),
        **(extra_attrs or {}),
    }
    return embeddings_schema(
        years,
        tile_size,
        model_name=model_name,
        build_version=build_version,
        model_sha256=model_sha256,
        model_family=model_family,
        demo_weights=demo_weights,
        resolution=resolution,
        obs_counts=False,
        extra_variables=(count,),
        extra_attrs=attrs,
    )


def pyramid_factors(factor: int) -> list[int]:
    """The steps from the fine grid to a coarse one ``factor`` times coarser: factor 2 while 2
    divides what is left, then one step for an odd remainder (16 → 2,2,2,2; 10 → 2,5)."""
    steps, rest = [], int(factor)
    while rest % 2 == 0:
        steps.append(2)
        rest //= 2
    return steps + ([rest] if rest > 1 else [])


def coarsen_step(parent: CoarseResult, factor: int, *, clamp: Clamp) -> CoarseResult:
    """One pyramid step: each pixel the mean of its valid children, renormalised and
    re-quantised (the AlphaEarth overview rule); ``counts`` sums the children's fine pixels."""
    out = coarsen_embeddings(parent.embeddings, parent.scales, factor, clamp=clamp)
    h, w = out.scales.shape
    counts = np.asarray(parent.counts, np.uint64).reshape(h, factor, w, factor).sum(axis=(1, 3))
    return CoarseResult(out.embeddings, out.scales, counts.astype(np.uint32))


def coarsen_levels(
    emb_int8: Any, scales: Any, factors: Sequence[int], *, clamp: Clamp
) -> list[CoarseResult]:
    """Every level of a pyramid over one fine region, finest first: the first step streams the
    fine arrays (see :func:`coarsen_embeddings`), later steps start from the level below."""
    levels = [coarsen_embeddings(emb_int8, scales, factors[0], clamp=clamp)]
    for f in factors[1:]:
        levels.append(coarsen_step(levels[-1], f, clamp=clamp))
    return levels


def coarsen_tile(
    fine: EmbeddingsStore, tile: Tile, year: int, resolution: float, *, clamp: Clamp
) -> CoarseResult:
    """Coarsen one fine region to ``resolution`` through the pyramid's steps
    (:func:`pyramid_factors`), streamed from the store's tile windows."""
    factor = coarsen_factor(fine.schema.tile_size, resolution, fine.schema.resolution)
    return coarsen_levels(
        fine.tile_array(tile, year, "embeddings"),
        fine.tile_array(tile, year, "scales"),
        pyramid_factors(factor),
        clamp=clamp,
    )[-1]


def coarse_dataset(
    fine: EmbeddingsStore,
    tile: Tile,
    year: int,
    *,
    resolution: float,
    clamp: Clamp,
    lineage: Lineage | Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """One coarse partition: the committed fine region coarsened to ``resolution``.

    The dataset's ``tessera:*`` attributes are its provenance (:mod:`.attributes`): the fine
    record's manifest digest and provisional flag, the fine store's model, the source partition
    (``source`` and ``source_written_at``, so a stale coarse partition can be detected), and
    last the caller's ``lineage`` (code version, config digest...), which wins.
    """
    source = committed_source(fine, tile, year)
    result = coarsen_tile(fine, tile, year, resolution, clamp=clamp)
    factor = coarsen_factor(fine.schema.tile_size, resolution, fine.schema.resolution)
    return partition_dataset(
        fine,
        source,
        result,
        parent=(fine.product, fine.schema.resolution),
        factor=factor,
        lineage=lineage,
    )


def committed_source(fine: EmbeddingsStore, tile: Tile, year: int) -> LineageRecord:
    """The fine partition's commit record; a coarse level is only built from committed data."""
    source = fine.read_lineage(tile, year)
    if source is None:
        raise PartitionNotCommittedError(f"{fine.product} {tile.id} {year} is not committed")
    return source


def partition_dataset(
    fine: EmbeddingsStore,
    source: LineageRecord,
    result: CoarseResult,
    *,
    parent: tuple[str, float],
    factor: int,
    lineage: Lineage | Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """A coarse result as an output dataset whose ``tessera:*`` attributes are its provenance
    (see :func:`coarse_dataset`); ``parent`` is the (product, resolution) it was built from."""
    model = fine.schema.attrs
    inherited = {
        "manifest_digest": source.manifest_digest,
        "model_sha256": model.get(attr.MODEL_SHA256) or source.model_sha256,
        "model_family": model.get(attr.MODEL_FAMILY),
        "demo_weights": bool(model.get(attr.DEMO_WEIGHTS)),
        **{k: v for k, v in (source.model_extra or {}).items() if k == "provisional"},
        "source": {
            "product": parent[0],
            "written_at": source.written_at,
            "resolution_m": parent[1],
            "factor": int(factor),
        },
        "source_written_at": source.written_at,
    }
    given = lineage.model_dump(exclude_unset=True) if isinstance(lineage, Lineage) else lineage
    ds = xr.Dataset(
        {
            "embeddings": (("band", "y", "x"), result.embeddings),
            "scales": (("y", "x"), result.scales),
            "pixel_count": (("y", "x"), result.counts),
        }
    )
    ds.attrs.update(attr.provenance_attrs(**{**inherited, **dict(given or {})}))
    return ds


def coarsen_partition(
    fine: EmbeddingsStore,
    coarse: EmbeddingsStore,
    tile: Tile,
    year: int,
    lineage: Lineage | Mapping[str, Any],
    *,
    clamp: Clamp,
) -> LineageRecord:
    """Coarsen one committed fine partition into the coarse store (one coarse shard per tile)."""
    ds = coarse_dataset(
        fine, tile, year, resolution=coarse.schema.resolution, clamp=clamp, lineage=lineage
    )
    data = {name: ds[name].data for name in ds.data_vars}
    return coarse.write_tile(tile, year, data, attr.lineage_from_attrs(ds.attrs))

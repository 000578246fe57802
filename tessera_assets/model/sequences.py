"""Per-family construction of the model input sequences from raw observations.

Each family feeds its model differently and the differences change the embeddings silently:

* v1.0 draws 40 S2 and 40 S1 steps at random per pixel (replaying numpy's legacy RandomState
  protocol, so a seed reproduces the official draws exactly) and sorts them.
* v1.1 uses every valid step, bucketed up to a multiple of 8 (0 -> 8, capped at 256) and
  resampled with duplicates *appended*; a modality with no valid step is an all-zero (8, C) block.
* v2 buckets the same way but 0 stays 0 (a single zero token), fills with ``_pad_pattern`` and
  skips pixels with neither clear S2 nor valid S1.

S1 is always the valid ascending steps followed by the valid descending steps (not chronological).
Everything is vectorised per batch of pixels; Python loops run over buckets and distinct counts only
(v1.0's per-pixel draws are the exception, since the RNG protocol is per pixel).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from tessera_assets.model.families import (
    OBS_CHECKPOINTS,
    V10_SAMPLE_SIZE,
    V10_SAMPLING_BATCH,
    Kind,
)
from tessera_assets.model.normalisation import NormStats, zscore
from tessera_assets.model.series import PixelSeries

#: v1.0 substitutes one zero step with this DOY for an orbit that has no acquisitions at all.
V10_DUMMY_S1_DOY = 180
_PIXEL_CHUNK = 65536  # bounds temporaries when reducing over (T, N, C) arrays

SeedLike = int | np.random.RandomState | None
IndexRule = Callable[[int, int], np.ndarray]  # (valid count, target length) -> indices


@dataclass
class SequenceGroup:
    """One batch of pixels sharing sequence lengths, as fed to ``TesseraModel.forward``."""

    pixel_index: np.ndarray  # (G,) int64 flat pixel index
    s2: np.ndarray  # (G, T2, 11) float32: z-scored bands + raw DOY
    s1: np.ndarray  # (G, T1, 3) float32
    s2_time_index: np.ndarray  # (G, T2) int64 source S2 step, -1 = zero-filled token
    s1_time_index: np.ndarray  # (G, T1) int64 step in concat(asc, desc), -1 = zero-filled

    @property
    def bins(self) -> tuple[int, int]:
        return self.s2.shape[1], self.s1.shape[1]

    def __len__(self) -> int:
        return len(self.pixel_index)


# --------------------------------------------------------------------------- counts and rules


def _reduce_pixels(arr: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``fn`` to pixel chunks of a (T, N, ...) array and concatenate over N."""
    n = arr.shape[1]
    if n <= _PIXEL_CHUNK:
        return fn(arr)
    return np.concatenate([fn(arr[:, i : i + _PIXEL_CHUNK]) for i in range(0, n, _PIXEL_CHUNK)])


def s2_has_data(series: PixelSeries) -> np.ndarray:
    """(N,) bool: any S2 band non-zero at any step. Pixels without it carry no information."""
    if series.s2_bands.shape[0] == 0:
        return np.zeros(series.n_pixels, bool)
    return _reduce_pixels(series.s2_bands, lambda a: np.any(a != 0, axis=(0, 2)))


def s2_clear_counts(series: PixelSeries) -> np.ndarray:
    return series.s2_mask.sum(axis=0, dtype=np.int64)


def s1_validity(series: PixelSeries) -> tuple[np.ndarray, np.ndarray]:
    """(T_a, N), (T_d, N) bool: the step has VV or VH non-zero (computed in pixel chunks)."""

    def valid(a: np.ndarray) -> np.ndarray:
        return np.any(a != 0, axis=2)

    def orbit(a: np.ndarray) -> np.ndarray:
        if a.shape[0] == 0:
            return np.zeros((0, a.shape[1]), bool)
        if a.shape[1] <= _PIXEL_CHUNK:
            return valid(a)
        return np.concatenate(
            [valid(a[:, i : i + _PIXEL_CHUNK]) for i in range(0, a.shape[1], _PIXEL_CHUNK)],
            axis=1,
        )

    return orbit(series.s1_asc), orbit(series.s1_desc)


def s1_valid_counts(series: PixelSeries) -> np.ndarray:
    """(N,) number of S1 steps (both orbits) with VV or VH non-zero."""
    va, vd = s1_validity(series)
    return va.sum(axis=0, dtype=np.int64) + vd.sum(axis=0, dtype=np.int64)


def bin_v11(counts: np.ndarray) -> np.ndarray:
    """Smallest checkpoint >= n; 0 -> 8, n > 256 -> 256."""
    return np.clip((np.maximum(counts, 1) + 7) // 8 * 8, OBS_CHECKPOINTS[0], OBS_CHECKPOINTS[-1])


def bin_v2(counts: np.ndarray) -> np.ndarray:
    """Like v1.1 but a count of 0 stays 0 (the modality becomes one zero token)."""
    return np.where(counts == 0, 0, bin_v11(counts))


@lru_cache(maxsize=4096)
def resample_indices_v11(n: int, target: int) -> np.ndarray:
    """v1.1 ``build_resample_indices``: which of n valid steps fill ``target`` slots.

    Equal: identity. Fewer slots: the middle element of each of ``target`` near-equal chunks.
    More slots: all n in order, then ``round(linspace(0, n-1, extra + 2)[1:-1])`` appended.
    """
    if n == target:
        idx = np.arange(n)
    elif target < n:
        idx = np.array([c[len(c) // 2] for c in np.array_split(np.arange(n), target)])
    else:
        extra = np.rint(np.linspace(0, n - 1, target - n + 2)[1:-1])
        idx = np.concatenate([np.arange(n), extra.astype(np.int64)])
    idx = idx.astype(np.int64)
    idx.flags.writeable = False
    return idx


@lru_cache(maxsize=4096)
def pad_pattern_v2(n: int, target: int) -> np.ndarray:
    """v2 ``_pad_pattern``: n >= target takes ``linspace(0, n-1, target)`` truncated to int;
    otherwise all n followed by a fill of ``remain = target - n`` indices: the chunk middles of
    ``array_split(range(n), remain)`` when remain <= n, else ``range(remain) % n``."""
    if n >= target:
        idx = np.linspace(0, n - 1, target).astype(np.int64)
    else:
        remain = target - n
        if remain <= n:
            fill = np.array([c[len(c) // 2] for c in np.array_split(np.arange(n), remain)])
        else:
            fill = np.arange(remain) % n
        idx = np.concatenate([np.arange(n), fill]).astype(np.int64)
    idx.flags.writeable = False
    return idx


# --------------------------------------------------------------------------- gathering


def _local_indices(counts: np.ndarray, target: int, rule: IndexRule) -> np.ndarray:
    """(G, target) positions into each pixel's valid-step list; rows with count 0 stay 0."""
    out = np.zeros((len(counts), target), np.int64)
    for c in np.unique(counts):
        if c > 0:
            out[counts == c] = rule(int(c), target)
    return out


def _valid_first(valid: np.ndarray) -> np.ndarray:
    """(G, T) step indices with each pixel's valid steps first, in time order."""
    return np.argsort(~valid, axis=1, kind="stable")


def _gather(arr: np.ndarray, t_idx: np.ndarray, pix: np.ndarray) -> np.ndarray:
    """``arr[t_idx, pix]`` for a (T, N, C) array: rows of a flat (T*N, C) view via ``np.take``,
    about twice as fast as two-array fancy indexing on the time-major layout."""
    t, n, c = arr.shape
    flat = t_idx * n + pix
    return np.take(arr.reshape(t * n, c), flat.ravel(), axis=0).reshape(*flat.shape, c)


def _s2_tokens(
    series: PixelSeries, pix: np.ndarray, t_idx: np.ndarray, norm: NormStats
) -> np.ndarray:
    """(G, L, 11): z-scored S2 bands of steps ``t_idx`` (G, L) plus raw DOY."""
    g, length = t_idx.shape
    out = np.empty((g, length, 11), np.float32)
    out[..., :10] = zscore(_gather(series.s2_bands, t_idx, pix[:, None]), norm.s2_mean, norm.s2_std)
    out[..., 10] = series.s2_doy[t_idx]
    return out


def _s1_tokens(
    asc: np.ndarray,
    asc_doy: np.ndarray,
    desc: np.ndarray,
    desc_doy: np.ndarray,
    pix: np.ndarray,
    m_idx: np.ndarray,
    norm: NormStats,
) -> np.ndarray:
    """(G, L, 3) S1 tokens for merged indices ``m_idx`` into concat(asc, desc).

    Each orbit is z-scored with its own statistics (v1.0's are equal) before merging; every
    token is gathered from exactly one orbit.
    """
    ta = asc.shape[0]
    g, length = m_idx.shape
    out = np.empty((g, length, 3), np.float32)
    rows = np.broadcast_to(pix[:, None], m_idx.shape)
    is_asc = m_idx < ta
    for sel, arr, doy, offset, mean, std in (
        (is_asc, asc, asc_doy, 0, norm.s1a_mean, norm.s1a_std),
        (~is_asc, desc, desc_doy, ta, norm.s1d_mean, norm.s1d_std),
    ):
        if not sel.any():
            continue
        t = m_idx[sel] - offset
        out[sel, :2] = zscore(_gather(arr, t, rows[sel]), mean, std)
        out[sel, 2] = doy[t]
    return out


def _s1_valid_merged(va: np.ndarray, vd: np.ndarray, pix: np.ndarray) -> np.ndarray:
    """(G, T_a + T_d) bool validity of concat(asc, desc) for pixels ``pix``."""
    return np.concatenate([va[:, pix], vd[:, pix]], axis=0).T


def _bucketed_group(
    series: PixelSeries,
    s1_valid: tuple[np.ndarray, np.ndarray],
    pix: np.ndarray,
    n_s2: np.ndarray,
    n_s1: np.ndarray,
    len_s2: int,
    len_s1: int,
    rule: IndexRule,
    norm: NormStats,
) -> SequenceGroup:
    """Build one v1.1/v2 batch: all pixels share (len_s2, len_s1); rows with no valid step of a
    modality get zero tokens (with time index -1)."""
    # S2
    order = _valid_first(series.s2_mask[:, pix].T != 0)
    local = _local_indices(n_s2, len_s2, rule)
    has = n_s2 > 0
    s2 = np.zeros((len(pix), len_s2, 11), np.float32)
    s2_t = np.full((len(pix), len_s2), -1, np.int64)
    if has.any():
        t_idx = np.take_along_axis(order[has], local[has], axis=1)
        s2[has] = _s2_tokens(series, pix[has], t_idx, norm)
        s2_t[has] = t_idx
    # S1
    local = _local_indices(n_s1, len_s1, rule)
    has = n_s1 > 0
    s1 = np.zeros((len(pix), len_s1, 3), np.float32)
    s1_t = np.full((len(pix), len_s1), -1, np.int64)
    if has.any():
        order = _valid_first(_s1_valid_merged(*s1_valid, pix[has]))
        m_idx = np.take_along_axis(order, local[has], axis=1)
        s1[has] = _s1_tokens(
            series.s1_asc, series.s1_asc_doy, series.s1_desc, series.s1_desc_doy,
            pix[has], m_idx, norm,
        )
        s1_t[has] = m_idx
    return SequenceGroup(pix, s2, s1, s2_t, s1_t)


# --------------------------------------------------------------------------- families


def embedded_pixels(kind: Kind, series: PixelSeries, *, official: bool = False) -> np.ndarray:
    """(N,) bool: pixels the family embeds.

    v1.0 drops pixels whose S2 bands are all zero; v2 skips pixels with no clear S2 and no valid
    S1. Official v1.1 runs every pixel; unless ``official`` we also drop v1.1 pixels whose S2 is
    all zero, so no embedding of pure nodata reaches a store.
    """
    if kind == "v2":
        return (s2_clear_counts(series) > 0) | (s1_valid_counts(series) > 0)
    if kind == "v1.1" and official:
        return np.ones(series.n_pixels, bool)
    return s2_has_data(series)


def _iter_bucketed(
    kind: Kind,
    series: PixelSeries,
    norm: NormStats,
    batch_size: int | None,
    official: bool,
) -> Iterator[SequenceGroup]:
    va, vd = s1_validity(series)
    n_s2_all = s2_clear_counts(series)
    n_s1_all = va.sum(axis=0, dtype=np.int64) + vd.sum(axis=0, dtype=np.int64)
    if kind == "v2":
        keep_mask = (n_s2_all > 0) | (n_s1_all > 0)
    else:
        keep_mask = embedded_pixels(kind, series, official=official)
    keep = np.flatnonzero(keep_mask)
    if keep.size == 0:
        return
    n_s2, n_s1 = n_s2_all[keep], n_s1_all[keep]
    binner = bin_v2 if kind == "v2" else bin_v11
    rule = pad_pattern_v2 if kind == "v2" else resample_indices_v11
    b2, b1 = binner(n_s2), binner(n_s1)
    key = b2 * 1000 + b1
    order = np.argsort(key, kind="stable")  # buckets ascending, pixels ascending within
    keys_sorted = key[order]
    starts = np.flatnonzero(np.r_[True, keys_sorted[1:] != keys_sorted[:-1]])
    ends = np.r_[starts[1:], len(order)]
    for s, e in zip(starts, ends, strict=True):
        sel = order[s:e]
        len_s2, len_s1 = max(int(b2[sel[0]]), 1), max(int(b1[sel[0]]), 1)
        step = batch_size or len(sel)
        for i in range(0, len(sel), step):
            part = sel[i : i + step]
            yield _bucketed_group(
                series, (va, vd), keep[part], n_s2[part], n_s1[part], len_s2, len_s1, rule, norm
            )


def _v10_s1_orbits(series: PixelSeries) -> list[np.ndarray]:
    """[asc, asc_doy, desc, desc_doy], with one zero step at DOY 180 for an orbit without steps."""
    out = []
    for arr, doy in ((series.s1_asc, series.s1_asc_doy), (series.s1_desc, series.s1_desc_doy)):
        if arr.shape[0] == 0:
            arr = np.zeros((1, series.n_pixels, 2), np.int16)
            doy = np.array([V10_DUMMY_S1_DOY], np.uint16)
        out.extend((arr, doy))
    return out


def _draw(rs: np.random.RandomState, valid: np.ndarray, size: int) -> np.ndarray:
    """One pixel's official draw, sorted: ``rs.choice(candidates, size, replace=n < size)``
    with candidates the valid steps (else all steps).

    Written with the two calls legacy ``RandomState.choice`` makes (``randint(0, n, size)`` with
    replacement, ``permutation(n)[:size]`` without), which consume the generator identically
    and skip its argument handling (~35 % faster; the golden tests pin the equivalence).
    """
    candidates = np.flatnonzero(valid)
    if candidates.size == 0:
        candidates = np.arange(valid.size)
    n = candidates.size
    idx = rs.randint(0, n, size=size) if n < size else rs.permutation(n)[:size]
    return np.sort(candidates[idx])


def _iter_v10(
    series: PixelSeries, norm: NormStats, seed: SeedLike
) -> Iterator[SequenceGroup]:
    """v1.0 random sampling, one group per official DataLoader batch of 1024 kept pixels.

    The RNG protocol (golden meta ``rng_protocol``): per batch, one ``choice`` per pixel for S2,
    then one per pixel for S1, each sorted.
    """
    rs = seed if isinstance(seed, np.random.RandomState) else np.random.RandomState(seed)
    keep = np.flatnonzero(s2_has_data(series))
    size = V10_SAMPLE_SIZE
    asc, asc_doy, desc, desc_doy = _v10_s1_orbits(series)
    for start in range(0, len(keep), V10_SAMPLING_BATCH):
        pix = keep[start : start + V10_SAMPLING_BATCH]
        clear = series.s2_mask[:, pix].T != 0
        s2_t = np.stack([_draw(rs, row, size) for row in clear])
        valid = np.concatenate(
            [np.any(asc[:, pix] != 0, axis=2), np.any(desc[:, pix] != 0, axis=2)], axis=0
        ).T
        s1_t = np.stack([_draw(rs, row, size) for row in valid])
        s2 = _s2_tokens(series, pix, s2_t, norm)
        s1 = _s1_tokens(asc, asc_doy, desc, desc_doy, pix, s1_t, norm)
        yield SequenceGroup(pix, s2, s1, s2_t, s1_t)


def _rechunk(groups: Iterator[SequenceGroup], batch_size: int | None) -> Iterator[SequenceGroup]:
    """Re-slice a stream of equal-length groups into batches of ``batch_size`` (None: one)."""
    buf: list[SequenceGroup] = []
    held = 0

    def merged(parts: list[SequenceGroup]) -> SequenceGroup:
        if len(parts) == 1:
            return parts[0]
        cat = [np.concatenate(arrs) for arrs in zip(*(_fields(p) for p in parts), strict=True)]
        return SequenceGroup(*cat)

    for g in groups:
        buf.append(g)
        held += len(g)
        while batch_size and held >= batch_size:
            whole = merged(buf)
            yield SequenceGroup(*(a[:batch_size] for a in _fields(whole)))
            rest = SequenceGroup(*(a[batch_size:] for a in _fields(whole)))
            buf, held = ([rest], len(rest)) if len(rest) else ([], 0)
    if held:
        yield merged(buf)


def _fields(g: SequenceGroup) -> tuple[np.ndarray, ...]:
    return g.pixel_index, g.s2, g.s1, g.s2_time_index, g.s1_time_index


def build_groups(
    kind: Kind,
    series: PixelSeries,
    norm: NormStats,
    *,
    batch_size: int | None = None,
    seed: SeedLike = None,
    official: bool = False,
) -> Iterator[SequenceGroup]:
    """Yield the model input groups for ``series`` in the family's official order.

    ``batch_size`` splits (v1.0: re-slices) groups so memory is bounded by the batch, not by N;
    None keeps the official groups whole (v1.1/v2: one per bucket; v1.0: one for all kept pixels
    when N <= 1024). ``seed`` only matters for v1.0 (None draws fresh entropy, like the official
    code). ``official=True`` keeps v1.1's all-zero S2 pixels, as the official code does.
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if kind == "v1.0":
        yield from _rechunk(_iter_v10(series, norm, seed), batch_size)
    elif kind in ("v1.1", "v2"):
        yield from _iter_bucketed(kind, series, norm, batch_size, official)
    else:
        raise ValueError(f"unknown family kind {kind!r}")

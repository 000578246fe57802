"""Publication-grade QA of embeddings partitions: evidence that a zone-year is sound before it
is published, each audit a plain (stores, tile, year) → :class:`Verdict` function.

- **seams**: the median embedding difference (L2 of dequantised vectors) between pixel pairs
  across the tile's edges with committed neighbours, over the median between adjacent pixels
  inside the tile, must lie in :attr:`QaLimits.seam_ratio` (0.8–1.25). A tile written with
  another model, normalisation or misaligned window shows up as a jump at its edges.
- **dead dimensions**: a dimension constant over every embedded pixel carries no information
  (a broken checkpoint, a quantiser bug).
- **coverage**: the zone-year reconciles: written (committed) + skipped (manifest without any
  scene: nothing to embed) == expected (the registered AOIs' tiles), nothing written twice or
  outside the plan.
- **drift**: per-pixel cosine similarity of the same pixels in another year (or another
  model's store); its distribution is metadata, and a median below
  :attr:`QaLimits.min_median_cosine` fails.

Every verdict is written to ``{root}/_qa/{check}/{tile}/{year}.json`` (:func:`save_verdict`)
*before* a check reports it, so a failed check leaves its evidence beside the data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tessera_assets.grid import Tile
from tessera_assets.products.embeddings import EmbeddingsStore, dequantise
from tessera_assets.store.lineage import utc_now
from tessera_assets.store.objects import ObjectIO

N_DIMS = 128
BLOCK_ROWS = 128
"""Rows the whole-tile audits read at a time: 128 × 2048 px × 128 dims of float32 = 128 MiB,
so a 2048 px tile's audit stays well inside a run pod's memory."""
QA_DIR = "_qa"


@dataclass(frozen=True)
class QaLimits:
    seam_ratio: tuple[float, float] = (0.8, 1.25)
    dead_relative_std: float = 0.01
    """A dimension whose standard deviation over embedded pixels is at most this fraction of
    the median dimension's is dead (relative: per-pixel scales make a constant value wobble
    by a quantisation step after dequantisation)."""
    min_median_cosine: float = 0.5
    """Drift: the median per-pixel cosine similarity to the other year/model must reach this."""
    min_pairs: int = 16
    """Fewer valid pixel pairs than this across the edges: the seam check has no evidence."""


@dataclass
class Verdict:
    check: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "recorded_at": utc_now()}


def verdict_key(check: str, tile: Tile, year: int) -> str:
    return f"{QA_DIR}/{check}/{tile.id}/{int(year)}.json"


def save_verdict(
    root: str,
    verdict: Verdict,
    tile: Tile,
    year: int,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Record ``verdict`` beside the data (before the check reports it); returns its URL."""
    io = ObjectIO(str(root), storage_options)
    key = verdict_key(verdict.check, tile, year)
    io.put_json(key, verdict.to_json())
    return io.path(key)


def _vectors(
    store: EmbeddingsStore,
    tile: Tile,
    year: int,
    rows: slice = slice(None),
    cols: slice = slice(None),
) -> np.ndarray:
    """Dequantised float32 (band, y, x) of a window of a committed region (NaN: not embedded)."""
    q = store.tile_array(tile, year, "embeddings")[:, rows, cols]
    s = store.tile_array(tile, year, "scales")[rows, cols]
    return dequantise(q, s)


def _row_blocks(store: EmbeddingsStore) -> list[slice]:
    """Row windows of :data:`BLOCK_ROWS` over a tile of ``store`` (whole stored chunks)."""
    px = store.schema.tile_px
    return [slice(r, min(r + BLOCK_ROWS, px)) for r in range(0, px, BLOCK_ROWS)]


def _pair_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """L2 distances of the valid pairs of two (band, ...) arrays of the same shape."""
    d = np.sqrt(np.sum((a - b) ** 2, axis=0)).ravel()
    return d[np.isfinite(d)]


NEIGHBOURS = {"east": (1, 0), "west": (-1, 0), "north": (0, -1), "south": (0, 1)}
"""Neighbour offsets (col, row); rows grow southwards (northings decrease)."""


def _inside_distances(store: EmbeddingsStore, tile: Tile, year: int) -> np.ndarray:
    """Distances of every pair of adjacent embedded pixels inside the tile, read in row blocks
    (each block's first row is paired with the row above it, kept from the last block)."""
    parts, above = [], None
    for rows in _row_blocks(store):
        emb = _vectors(store, tile, year, rows)
        parts.append(_pair_distances(emb[:, :, 1:], emb[:, :, :-1]))
        parts.append(_pair_distances(emb[:, 1:, :], emb[:, :-1, :]))
        if above is not None:
            parts.append(_pair_distances(emb[:, 0, :], above))
        above = emb[:, -1, :].copy()
    return np.concatenate(parts)


OPPOSITE = {"east": "west", "west": "east", "north": "south", "south": "north"}


def _edge(store: EmbeddingsStore, tile: Tile, year: int, side: str) -> np.ndarray:
    """The tile's one-pixel edge on ``side`` as (band, n) vectors."""
    i = store.schema.tile_px - 1 if side in ("east", "south") else 0
    if side in ("east", "west"):
        return _vectors(store, tile, year, cols=slice(i, i + 1))[:, :, 0]
    return _vectors(store, tile, year, rows=slice(i, i + 1))[:, 0, :]


def _edge_pairs(store: EmbeddingsStore, tile: Tile, year: int, side: str) -> np.ndarray | None:
    dc, dr = NEIGHBOURS[side]
    other = Tile(zone=tile.zone, col=tile.col + dc, row=tile.row + dr, size=tile.size)
    if store.read_lineage(other, year) is None:
        return None
    return _pair_distances(_edge(store, tile, year, side),
                           _edge(store, other, year, OPPOSITE[side]))


def audit_seams(
    store: EmbeddingsStore, tile: Tile, year: int, limits: QaLimits = QaLimits()
) -> Verdict:
    """Median difference across the tile's edges (committed neighbours of the same year) over
    the median difference between adjacent pixels inside the tile."""
    if store.read_lineage(tile, year) is None:
        return Verdict("seams", False, f"{tile.id} {year} is not committed")
    inside = _inside_distances(store, tile, year)
    across: dict[str, np.ndarray] = {}
    for side in NEIGHBOURS:
        pairs = _edge_pairs(store, tile, year, side)
        if pairs is not None and pairs.size:
            across[side] = pairs
    lo, hi = limits.seam_ratio
    meta: dict[str, Any] = {
        "neighbours": sorted(across),
        "limits": [lo, hi],
        "inside_pairs": int(inside.size),
    }
    edge = np.concatenate(list(across.values())) if across else np.empty(0)
    meta["edge_pairs"] = int(edge.size)
    if edge.size < limits.min_pairs or inside.size < limits.min_pairs:
        return Verdict(
            "seams",
            True,
            "no committed neighbour with embedded edge pixels: nothing to compare yet",
            meta,
        )
    inside_median = float(np.median(inside))
    ratio = float(np.median(edge)) / inside_median if inside_median > 0 else float("inf")
    meta.update(
        inside_median=round(inside_median, 6),
        edge_median=round(float(np.median(edge)), 6),
        ratio=round(ratio, 4),
        per_side={s: round(float(np.median(p)) / inside_median, 4) for s, p in across.items()}
        if inside_median > 0
        else {},
    )
    if not lo <= ratio <= hi:
        return Verdict(
            "seams",
            False,
            f"seam ratio {ratio:.3f} outside [{lo}, {hi}]: the "
            f"embeddings jump across the tile edges "
            f"({', '.join(sorted(across))})",
            meta,
        )
    return Verdict(
        "seams",
        True,
        f"seam ratio {ratio:.3f} within [{lo}, {hi}] ({', '.join(sorted(across))})",
        meta,
    )


def audit_dead_dimensions(
    store: EmbeddingsStore, tile: Tile, year: int, limits: QaLimits = QaLimits()
) -> Verdict:
    """Dimensions constant over every embedded pixel of the region."""
    if store.read_lineage(tile, year) is None:
        return Verdict("dead_dimensions", False, f"{tile.id} {year} is not committed")
    n, total, squares = 0, np.zeros(N_DIMS), np.zeros(N_DIMS)
    for rows in _row_blocks(store):  # streamed: a whole 2048 px tile in float is 2 GiB
        block = _vectors(store, tile, year, rows)
        x = block[:, np.isfinite(block[0])].astype(np.float64)
        n += x.shape[1]
        total += x.sum(axis=1)
        squares += (x * x).sum(axis=1)
    meta: dict[str, Any] = {"embedded_pixels": n}
    if n < 2:
        return Verdict("dead_dimensions", True, f"{n} embedded pixel(s): nothing to judge", meta)
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean * mean, 0.0))
    dead = [int(i) for i in np.flatnonzero(std <= limits.dead_relative_std * np.median(std))]
    meta.update(dead=dead, std_min=float(std.min()), std_median=float(np.median(std)))
    if dead:
        return Verdict(
            "dead_dimensions",
            False,
            f"{len(dead)} of {N_DIMS} dimensions are "
            f"constant over {n} pixels (e.g. {dead[:5]})",
            meta,
        )
    return Verdict("dead_dimensions", True, f"all {N_DIMS} dimensions vary", meta)


def reconcile_coverage(
    expected: Iterable[str], written: Iterable[str], skipped: Iterable[str], *, zone: int, year: int
) -> Verdict:
    """written + skipped == expected for one zone-year (tile ids)."""
    exp, wr, sk = set(expected), set(written), set(skipped)
    both = sorted(wr & sk)
    missing = sorted(exp - wr - sk)
    unexpected = sorted(wr - exp)
    meta: dict[str, Any] = {
        "zone": zone,
        "year": year,
        "expected": len(exp),
        "written": len(wr),
        "skipped": len(sk),
        "missing_sample": missing[:10],
        "unexpected_sample": unexpected[:10],
        "both_sample": both[:10],
    }
    problems = []
    if missing:
        problems.append(f"{len(missing)} expected tile(s) neither written nor skipped")
    if unexpected:
        problems.append(f"{len(unexpected)} written tile(s) outside the registered AOIs")
    if both:
        problems.append(f"{len(both)} tile(s) both written and skipped")
    if problems:
        return Verdict(
            "coverage_reconciliation", False, f"utm{zone:02d} {year}: " + "; ".join(problems), meta
        )
    return Verdict(
        "coverage_reconciliation",
        True,
        f"utm{zone:02d} {year}: {len(wr)} written + {len(sk)} skipped == {len(exp)} expected",
        meta,
    )


def audit_drift(
    store: EmbeddingsStore,
    tile: Tile,
    year: int,
    other: EmbeddingsStore,
    other_year: int,
    limits: QaLimits = QaLimits(),
) -> Verdict:
    """Cosine similarity of the same pixels in ``other`` (another year, or another model's
    store) to this region: quantiles as metadata, the median against the threshold."""
    if store.read_lineage(tile, year) is None:
        return Verdict("drift", False, f"{tile.id} {year} is not committed")
    what = f"{other.product}@{other.root} {other_year}" if other is not store else str(other_year)
    if other.read_lineage(tile, other_year) is None:
        return Verdict(
            "drift", True, f"nothing to compare with: {what} is not committed", {"against": what}
        )
    parts, pixels = [], 0
    for rows in _row_blocks(store):  # streamed: two whole tiles in float would be 4 GiB
        a = _vectors(store, tile, year, rows).reshape(N_DIMS, -1)
        b = _vectors(other, tile, other_year, rows).reshape(N_DIMS, -1)
        ok = np.isfinite(a[0]) & np.isfinite(b[0])
        a, b = a[:, ok], b[:, ok]
        norms = np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0)
        parts.append((a * b).sum(0) / np.maximum(norms, 1e-12))
        pixels += int(ok.sum())
    meta: dict[str, Any] = {
        "against": what,
        "pixels": pixels,
        "threshold_median": limits.min_median_cosine,
    }
    if not pixels:
        return Verdict("drift", True, "no pixel embedded in both", meta)
    cos = np.concatenate(parts)
    q = np.quantile(cos, [0.05, 0.25, 0.5, 0.75, 0.95])
    meta.update(
        cosine={f"p{p}": round(float(v), 4) for p, v in zip((5, 25, 50, 75, 95), q, strict=True)},
        cosine_mean=round(float(cos.mean()), 4),
        histogram=_histogram(cos),
    )
    if q[2] < limits.min_median_cosine:
        return Verdict(
            "drift",
            False,
            f"median cosine {q[2]:.3f} to {what} < "
            f"{limits.min_median_cosine}: the same pixels drifted",
            meta,
        )
    return Verdict("drift", True, f"median cosine {q[2]:.3f} to {what}", meta)


def _histogram(cos: np.ndarray) -> Mapping[str, int]:
    counts, edges = np.histogram(np.clip(cos, -1, 1), bins=10, range=(-1, 1))
    return {f"{edges[i]:.1f}..{edges[i + 1]:.1f}": int(c) for i, c in enumerate(counts)}


def skipped_tiles(
    root: str, tile_ids: Iterable[str], year: int, storage_options: dict[str, Any] | None = None
) -> list[str]:
    """Tiles whose committed scene manifest holds no scene (nothing to embed: open ocean, no
    acquisitions), so no embeddings region is expected of them."""
    from tessera_assets.products.registry import manifest_url
    from tessera_assets.sources.manifest import SceneManifest

    out = []
    for tile_id in tile_ids:
        try:
            manifest = SceneManifest.load(manifest_url(root, tile_id, year), storage_options)
        except (FileNotFoundError, ValueError):
            continue
        if not manifest.items:
            out.append(tile_id)
    return sorted(out)

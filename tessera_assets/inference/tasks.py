"""What travels between a partition run and the shared inference actors, and how strip results
become one tile.

A task names a block of tile rows. It either carries the pixel series inline
(:class:`StripTask`, built by the caller) or only says where the rows are stored
(:class:`StripRef`): the worker then reads them from the masked-cube stores itself, so the
Dagster step never holds or ships a tile's observations (docs/adr/005-shared-inference-service.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

EMBEDDING_DIM = 128


@dataclass
class StripTask:
    """One block of pixels to embed: rows ``row0:row1`` of a tile, as a PixelSeries."""

    key: int
    row0: int
    row1: int
    series: Any  # tessera_assets.model.PixelSeries
    n_s2: np.ndarray | None = None  # uint16 (N,) observation counts, if the caller has them
    n_s1: np.ndarray | None = None


@dataclass(frozen=True)
class StripRef:
    """Rows ``row0:row1`` of one tile-year, to be read by the worker from the stores.

    ``settings_json`` is the pipeline settings (store root, storage options, tile size, years)
    the worker needs to open the same stores as the run; ``orbit_days`` maps each S1 orbit
    direction to its acquisition days, from the partition's manifest. ``regions`` maps each
    masked product to the ``written_at`` of the committed record the run verified: the worker
    reads without re-hashing the region, and refuses if the record has changed since.
    """

    key: int
    row0: int
    row1: int
    tile_id: str
    year: int
    settings_json: str
    orbit_days: dict[str, list[int]]
    regions: dict[str, str] = field(default_factory=dict)


@dataclass
class StripResult:
    key: int
    row0: int
    row1: int
    codes: np.ndarray  # int8 (N, 128)
    scales: np.ndarray  # float32 (N,), NaN = not embedded
    seconds: float  # model time on the worker
    read_seconds: float  # time the worker spent reading the strip from the store (0 if shipped)
    worker: str
    n_s2: np.ndarray | None = None  # uint16 (N,) clear S2 observations per pixel
    n_s1: np.ndarray | None = None  # uint16 (N,) valid S1 observations per pixel
    bytes_read: int = 0  # bytes the worker fetched from the stores for this strip


@dataclass
class ModelInfo:
    family: str
    sha256: str
    source: str
    is_demo: bool
    norm: str | None
    device: str


@dataclass
class TileEmbedding:
    codes: np.ndarray  # int8 (128, H, W)
    scales: np.ndarray  # float32 (H, W)
    seconds: float
    pixels_embedded: int
    strips: int
    workers: dict[str, int] = field(default_factory=dict)
    worker_seconds: float = 0.0
    read_seconds: float = 0.0
    n_s2: np.ndarray | None = None  # uint16 (H, W); None if a strip came without counts
    n_s1: np.ndarray | None = None
    bytes_read: int = 0


def assemble_tile(results: Iterable[StripResult], height: int, width: int) -> TileEmbedding:
    """Place strip results into (128, H, W) codes and (H, W) scales. Pixels no strip covered
    stay NaN (not embedded), never uninitialised."""
    t0 = time.perf_counter()
    codes = np.zeros((EMBEDDING_DIM, height, width), np.int8)
    scales = np.full((height, width), np.nan, np.float32)
    counts = np.zeros((2, height, width), np.uint16)
    counted = True
    covered = np.zeros(height, bool)
    workers: dict[str, int] = {}
    n = nbytes = 0
    busy = read = 0.0
    for r in results:
        rows = r.row1 - r.row0
        codes[:, r.row0:r.row1] = r.codes.reshape(rows, width, EMBEDDING_DIM).transpose(2, 0, 1)
        scales[r.row0:r.row1] = r.scales.reshape(rows, width)
        if r.n_s2 is None or r.n_s1 is None:
            counted = False
        else:
            counts[0, r.row0:r.row1] = r.n_s2.reshape(rows, width)
            counts[1, r.row0:r.row1] = r.n_s1.reshape(rows, width)
        covered[r.row0:r.row1] = True
        workers[r.worker] = workers.get(r.worker, 0) + 1
        busy += r.seconds
        read += r.read_seconds
        nbytes += r.bytes_read
        n += 1
    if not covered.all():
        missing = np.flatnonzero(~covered)
        raise RuntimeError(f"inference returned no result for tile rows {missing[:5]}...")
    return TileEmbedding(
        codes=codes, scales=scales, seconds=time.perf_counter() - t0,
        pixels_embedded=int(np.isfinite(scales).sum()), strips=n, workers=workers,
        worker_seconds=busy, read_seconds=read,
        n_s2=counts[0] if counted else None, n_s1=counts[1] if counted else None,
        bytes_read=nbytes,
    )

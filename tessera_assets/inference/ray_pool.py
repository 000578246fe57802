"""Tile inference on Ray: actors hold the model, strips of a tile are handed to whichever actor
is free (work stealing through ``ray.util.ActorPool``), results are assembled per tile.

The same code runs with a local Ray on a laptop (CPU actors) and against a KubeRay cluster
through a ``ray://`` address (one actor per GPU). The Ray client is created here from settings
the caller passes in; nothing is summoned from globals other than Ray's own connection.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tessera_assets.config import InferenceSettings

log = logging.getLogger(__name__)

EMBEDDING_DIM = 128


@dataclass
class StripTask:
    """One block of pixels to embed: rows ``row0:row1`` of a tile, as a PixelSeries."""

    key: int
    row0: int
    row1: int
    series: Any  # tessera_assets.model.PixelSeries


@dataclass
class StripResult:
    key: int
    row0: int
    row1: int
    codes: np.ndarray  # int8 (N, 128)
    scales: np.ndarray  # float32 (N,), NaN = not embedded
    seconds: float
    worker: str


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


class EmbeddingWorker:
    """Holds one model; instantiated as a Ray actor (``ray.remote(EmbeddingWorker)``)."""

    def __init__(self, settings: dict[str, Any], device: str, threads: int) -> None:
        import torch

        from tessera_assets.model import load_model

        if device == "cpu" and threads > 0:
            torch.set_num_threads(threads)
        s = InferenceSettings.model_validate(settings)
        self.settings = s
        self.model = load_model(
            s.model_source, family=s.family, device=device, sha256=s.model_sha256, norm=s.norm
        )
        self.name = f"{os.uname().nodename}:{os.getpid()}:{device}"

    def info(self) -> ModelInfo:
        m = self.model
        return ModelInfo(
            family=m.family, sha256=m.sha256, source=str(m.source), is_demo=bool(m.is_demo),
            norm=getattr(m, "norm", None), device=str(m.device),
        )

    def run(self, task: StripTask) -> StripResult:
        from tessera_assets.model import embed

        t0 = time.perf_counter()
        codes, scales = embed(self.model, task.series, batch_size=self.settings.batch_size)
        return StripResult(task.key, task.row0, task.row1, codes, scales,
                           time.perf_counter() - t0, self.name)


class RayEmbeddingEngine:
    """A pool of :class:`EmbeddingWorker` actors on a Ray cluster (local or ``ray://``)."""

    def __init__(self, settings: InferenceSettings) -> None:
        self.settings = settings
        self._actors: list[Any] = []
        self._owns_ray = False
        self.info: ModelInfo | None = None

    def start(self) -> RayEmbeddingEngine:
        import ray

        s = self.settings
        if not ray.is_initialized():
            # "local" starts a private instance instead of joining a stale cluster that
            # /tmp/ray/ray_current_cluster may name (environment-notes: Ray).
            ray.init(address=s.ray_address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False, ignore_reinit_error=True)
            self._owns_ray = True
        gpus = ray.cluster_resources().get("GPU", 0)
        cpus = ray.cluster_resources().get("CPU", 1)
        use_gpu = s.gpus_per_worker > 0 or (s.num_workers == 0 and gpus > 0)
        gpus_per = s.gpus_per_worker or (1.0 if use_gpu else 0.0)
        if s.num_workers:
            n = s.num_workers
        elif use_gpu:
            n = max(1, int(gpus / gpus_per))
        else:
            n = 1
        cpus_per = s.cpus_per_worker if (s.num_workers or use_gpu) else max(1.0, cpus)
        remote = ray.remote(num_cpus=cpus_per, num_gpus=gpus_per)(EmbeddingWorker)
        device = "cuda" if use_gpu else "cpu"
        self._actors = [
            remote.remote(s.model_dump(), device, int(cpus_per)) for _ in range(n)
        ]
        self.info = ray.get(self._actors[0].info.remote())
        log.info("Ray engine: %d %s worker(s), model %s (%s)%s", n, device, self.info.family,
                 self.info.sha256[:12], " [DEMO WEIGHTS]" if self.info.is_demo else "")
        return self

    def embed(
        self, tasks: Iterable[StripTask], progress: Callable[[int], None] | None = None
    ) -> Iterator[StripResult]:
        """Yield results as workers finish; tasks are pulled lazily, so at most one strip per
        actor is in flight and memory stays bounded by strip size, not tile size."""
        from ray.util import ActorPool

        if not self._actors:
            self.start()
        pool = ActorPool(self._actors)
        for result in pool.map_unordered(lambda a, t: a.run.remote(t), tasks):
            if progress:
                progress(result.row1 - result.row0)
            yield result

    def shutdown(self) -> None:
        import ray

        for a in self._actors:
            ray.kill(a)
        self._actors = []
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False

    def __enter__(self) -> RayEmbeddingEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def assemble_tile(
    results: Iterable[StripResult], height: int, width: int
) -> TileEmbedding:
    """Place strip results into (128, H, W) codes and (H, W) scales. Pixels no strip covered
    stay NaN (not embedded), never uninitialised."""
    t0 = time.perf_counter()
    codes = np.zeros((EMBEDDING_DIM, height, width), np.int8)
    scales = np.full((height, width), np.nan, np.float32)
    covered = np.zeros(height, bool)
    workers: dict[str, int] = {}
    n = 0
    for r in results:
        rows = r.row1 - r.row0
        codes[:, r.row0:r.row1] = r.codes.reshape(rows, width, EMBEDDING_DIM).transpose(2, 0, 1)
        scales[r.row0:r.row1] = r.scales.reshape(rows, width)
        covered[r.row0:r.row1] = True
        workers[r.worker] = workers.get(r.worker, 0) + 1
        n += 1
    if not covered.all():
        missing = np.flatnonzero(~covered)
        raise RuntimeError(f"inference returned no result for tile rows {missing[:5]}...")
    return TileEmbedding(
        codes=codes, scales=scales, seconds=time.perf_counter() - t0,
        pixels_embedded=int(np.isfinite(scales).sum()), strips=n, workers=workers,
    )

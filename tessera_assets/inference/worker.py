"""The inference actor: one model, loaded once, serving strips from any number of runs.

Instances live as named, detached Ray actors (see :mod:`tessera_assets.inference.service`), so
the model is loaded once per actor for the life of the cluster, not once per partition run.
A strip arrives either with its pixel series inline or as a :class:`StripRef`, which the actor
reads from the masked-cube stores itself (any fsspec root), keeping tile data off the run.
"""

from __future__ import annotations

import os
import time
from typing import Any

from tessera_assets.config import InferenceSettings
from tessera_assets.inference.strip_reader import StripReader
from tessera_assets.inference.strips import StripInputs
from tessera_assets.inference.tasks import ModelInfo, StripRef, StripResult, StripTask


class EmbeddingWorker:
    """Holds one model; instantiated as a Ray actor by :mod:`~tessera_assets.inference.service`
    (``info`` and ``stats`` in its ``control`` concurrency group, beside the strips)."""

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
        self.loads = 1
        self.strips = 0
        self.busy_seconds = 0.0
        self.started = time.time()
        self.name = f"{os.uname().nodename}:{os.getpid()}:{device}"
        self.reader = StripReader()

    def info(self) -> ModelInfo:
        m = self.model
        return ModelInfo(
            family=m.family, sha256=m.sha256, source=str(m.source), is_demo=bool(m.is_demo),
            norm=getattr(m, "norm", None), device=str(m.device),
        )

    def stats(self) -> dict[str, Any]:
        """Model loads (always 1: the model is loaded in ``__init__`` only), strips served and
        busy seconds since the actor started, for the scale test and benchmarks."""
        return {"name": self.name, "pid": os.getpid(), "loads": self.loads,
                "strips": self.strips, "busy_seconds": self.busy_seconds,
                "uptime_seconds": time.time() - self.started}

    def run(self, task: StripTask | StripRef, batch_size: int | None = None) -> StripResult:
        from tessera_assets.model import embed

        t0 = time.perf_counter()
        nbytes = 0
        if isinstance(task, StripTask):
            inputs = StripInputs(task.series, task.n_s2, task.n_s1)  # type: ignore[arg-type]
        else:
            inputs, nbytes = self.reader.read(task)
        t1 = time.perf_counter()
        codes, scales = embed(self.model, inputs.series,
                              batch_size=batch_size or self.settings.batch_size)
        t2 = time.perf_counter()
        self.strips += 1
        self.busy_seconds += t2 - t0
        return StripResult(task.key, task.row0, task.row1, codes, scales, t2 - t1, t1 - t0,
                           self.name, n_s2=inputs.n_s2, n_s1=inputs.n_s1, bytes_read=nbytes)

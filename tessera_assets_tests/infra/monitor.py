"""Peak resident memory per process role, sampled while a scale run is in flight."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psutil


class PeakMemory:
    """Samples every process under the given roots (and their children) each ``interval`` s;
    ``peaks`` maps role → the largest RSS one process of that role reached, in MiB."""

    def __init__(self, roots: Callable[[], dict[str, list[int]]], interval: float = 0.5) -> None:
        self.roots = roots
        self.interval = interval
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            for role, pids in self.roots().items():
                for pid in pids:
                    try:
                        procs = [psutil.Process(pid)]
                        procs += procs[0].children(recursive=True)
                    except psutil.Error:
                        continue
                    for p in procs:
                        try:
                            name = _role(role, p)
                            rss = p.memory_info().rss / 2**20
                        except psutil.Error:
                            continue
                        self.peaks[name] = max(self.peaks.get(name, 0.0), rss)


def _role(root_role: str, proc: psutil.Process) -> str:
    """Name a process by what it does: the root's role, a Dagster run worker, a Ray actor."""
    cmd = " ".join(proc.cmdline())
    if "ray::EmbeddingWorker" in cmd or proc.name().startswith("ray::EmbeddingWorker"):
        return "ray embedding actor"
    if "api execute_run" in cmd or "execute_run" in cmd:
        return "dagster run process"
    if proc.name() in ("raylet", "gcs_server"):
        return f"ray {proc.name()}"
    return root_role

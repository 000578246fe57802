"""The shared inference service: named, detached embedding actors on one long-lived Ray cluster.

Partition runs *attach* to the cluster (they never start or stop it) and look their actors up
by name: the first run to need a model creates its actors (``get_if_exists``), every later run
of any process reuses them, so the model is loaded once per actor for the cluster's life.
Each actor asks for one inference slot — a GPU in production, a custom resource standing in for
one on CPU clusters — so the pool is sized by the cluster, not by whoever asks first.

Fair sharing: Ray queues calls to an actor in arrival order, each run keeps at most
``in_flight`` strips queued per actor and starts its round of the actors at the one its
tile-year hashes to, so concurrent runs' strips interleave on every actor and no run waits for
another run's tile to finish. The bounded window also bounds a run's memory by strips, not
tiles. Why actors rather than Ray Serve or Ray Data: docs/adr/005-shared-inference-service.md.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tessera_assets.config import InferenceSettings
from tessera_assets.inference.cluster_address import NoClusterError, resolve_address
from tessera_assets.inference.tasks import ModelInfo, StripRef, StripResult, StripTask
from tessera_assets.inference.worker import EmbeddingWorker

log = logging.getLogger(__name__)

NAMESPACE = "tessera"
"""Ray namespace of the shared actors: every run must use the same one to find them."""
ACTOR_PREFIX = "tessera-embed"
CONTROL_GROUP = "control"
"""Actor concurrency group of ``info`` and ``stats``: answered on a thread of their own while
the actor embeds a strip. In the default group a run attaching to the actors waited behind
another run's strip (up to a whole strip) before it could send its own."""
ACTOR_PROTOCOL = 2
"""Part of the actor key: actors made by code with another protocol (here: without the control
group) are not reused by name."""


def control(method: Any) -> Any:
    """``method`` of an embedding actor, called in its control group (not behind strips)."""
    return method.options(concurrency_group=CONTROL_GROUP)


class InferenceUnavailable(RuntimeError):
    """No Ray cluster to attach to, or it has no inference slot for the model's actors."""


def actor_key(settings: InferenceSettings) -> str:
    """Actors are shared by runs that would load the same model the same way."""
    payload: dict[str, Any] = {k: getattr(settings, k) for k in
                               ("model_source", "family", "model_sha256", "norm",
                                "slot_resource", "slots_per_worker", "cpus_per_worker")}
    payload["protocol"] = ACTOR_PROTOCOL
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def _slot_options(settings: InferenceSettings) -> dict[str, Any]:
    per = settings.slots_per_worker
    if settings.slot_resource == "GPU":
        return {"num_gpus": per, "num_cpus": settings.cpus_per_worker}
    return {"resources": {settings.slot_resource: per}, "num_cpus": settings.cpus_per_worker}


class InferenceService:
    """A run's handle on the shared embedding actors (connect → embed; nothing to shut down)."""

    def __init__(self, settings: InferenceSettings, *, in_flight: int = 2) -> None:
        self.settings = settings
        self.in_flight = max(1, in_flight)
        self.info: ModelInfo | None = None
        self._actors: list[Any] = []

    @property
    def device(self) -> str:
        return "cuda" if self.settings.slot_resource == "GPU" else "cpu"

    def connect(self) -> InferenceService:
        """Attach to the cluster and find (or create, once) this model's actors."""
        import ray

        if not ray.is_initialized():
            try:
                address = resolve_address(self.settings.ray_address)
            except NoClusterError as exc:
                raise InferenceUnavailable(str(exc)) from exc
            try:
                ray.init(address=address, namespace=NAMESPACE, log_to_driver=False,
                         configure_logging=False)
            except (ConnectionError, RuntimeError) as exc:
                raise InferenceUnavailable(
                    f"cannot attach to the Ray cluster at {address!r}: {exc}. Start one with "
                    "`tessera-assets ray up` (laptop) or set inference.ray_address to a "
                    "running cluster (ray://host:10001 for KubeRay)") from exc
        self._actors = self._find_or_create_actors()
        self.info = ray.get(control(self._actors[0].info).remote())
        log.info("inference service: %d %s actor(s) %s, model %s (%s)%s", len(self._actors),
                 self.device, actor_key(self.settings), self.info.family,
                 self.info.sha256[:12], " [DEMO WEIGHTS]" if self.info.is_demo else "")
        return self

    def slots(self) -> int:
        """How many actors this model gets: ``num_workers``, else every slot of the cluster."""
        import ray

        s = self.settings
        capacity = ray.cluster_resources().get(s.slot_resource, 0.0)
        n = int(capacity // s.slots_per_worker)
        if n < 1:
            raise InferenceUnavailable(
                f"the Ray cluster has no {s.slot_resource!r} resource for inference actors "
                f"(cluster resources: {sorted(ray.cluster_resources())}); start nodes with "
                f"--resources='{{\"{s.slot_resource}\": N}}' or set inference.slot_resource")
        return min(n, s.num_workers) if s.num_workers else n

    def _find_or_create_actors(self) -> list[Any]:
        import ray

        s = self.settings
        key = actor_key(s)
        n = self.slots()
        names = [f"{ACTOR_PREFIX}-{key}-{i}" for i in range(n)]
        self._evict_other_models(key, missing=[m for m in names if m not in shared_actors()])
        remote = ray.remote(concurrency_groups={CONTROL_GROUP: 1})(EmbeddingWorker)
        return [
            remote.options(
                name=name, namespace=NAMESPACE, lifetime="detached",
                get_if_exists=True, max_restarts=2, max_task_retries=2, **_slot_options(s),
            ).remote(s.model_dump(), self.device, int(s.cpus_per_worker))
            for name in names
        ]

    def _evict_other_models(self, key: str, missing: list[str]) -> None:
        """One model per cluster at a time: when this model's actors lack free slots, the
        actors of another model give theirs up (their runs' strips then fail and retry)."""
        import ray

        if not missing:
            return
        s = self.settings
        free = ray.available_resources().get(s.slot_resource, 0.0)
        if free >= len(missing) * s.slots_per_worker:
            return
        for name in shared_actors():
            if not name.startswith(f"{ACTOR_PREFIX}-{key}-"):
                log.warning("inference service: removing actor %s of another model to free its "
                            "slot for model %s", name, key)
                ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
        deadline = time.monotonic() + 60
        while (ray.available_resources().get(s.slot_resource, 0.0)
               < len(missing) * s.slots_per_worker and time.monotonic() < deadline):
            time.sleep(0.2)

    def embed(self, tasks: Iterable[StripTask | StripRef],
              progress: Callable[[int], None] | None = None) -> Iterator[StripResult]:
        """Yield results as actors finish. Tasks are pulled lazily: at most ``in_flight`` per
        actor are queued, each sent to the actor with the fewest of this run's strips (ties
        from :func:`start_actor`, so runs of few strips spread over the actors)."""
        import ray

        if not self._actors:
            self.connect()
        load = [0] * len(self._actors)
        todo = iter(tasks)
        first = next(todo, None)
        if first is None:
            return
        todo = itertools.chain([first], todo)
        # Ties go round the actors from the tile-year's own start: a run that sends one or two
        # strips (a small tile) must not always pick actor 0, or concurrent runs pile onto it.
        start = start_actor(first, len(load))
        order = [(start + k) % len(load) for k in range(len(load))]
        pending: dict[Any, int] = {}

        def submit() -> bool:
            task = next(todo, None)
            if task is None:
                return False
            i = min(order, key=load.__getitem__)
            pending[self._actors[i].run.remote(task, self.settings.batch_size)] = i
            load[i] += 1
            return True

        while len(pending) < self.in_flight * len(load) and submit():
            pass
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            load[pending.pop(ready[0])] -= 1
            result: StripResult = ray.get(ready[0])
            if progress:
                progress(result.row1 - result.row0)
            yield result
            submit()

    def actor_stats(self) -> list[dict[str, Any]]:
        import ray

        return ray.get([control(a.stats).remote() for a in self._actors])

    def detach(self) -> None:
        """Drop this process's connection; the actors stay for the next run."""
        import ray

        self._actors = []
        if ray.is_initialized():
            ray.shutdown()


def start_actor(task: StripTask | StripRef, actors: int) -> int:
    """The actor a run's round starts at: a hash of its tile-year (of the strip key for inline
    tasks), which spreads many small runs over the actors and is the same on a re-run."""
    key = f"{task.tile_id}/{task.year}" if isinstance(task, StripRef) else f"strip/{task.key}"
    return zlib.crc32(key.encode()) % actors


def shared_actors(namespace: str = NAMESPACE) -> list[str]:
    """Names of the shared embedding actors alive in the connected cluster (read from the GCS:
    no dashboard needed)."""
    import ray

    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["namespace"] == namespace and a["name"].startswith(ACTOR_PREFIX))

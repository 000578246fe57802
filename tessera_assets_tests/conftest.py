"""Session fixtures shared by the test modules: the long-lived Ray cluster runs attach to."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tessera_assets.inference import local_cluster
from tessera_assets.inference.cluster_address import STATE_DIR_ENV


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_cluster.LocalCluster]:
    """A Ray head node on loopback with one ``inference_slot`` and two CPUs, started once per
    session like ``tessera-assets ray up``; ``inference.ray_address="auto"`` finds it through
    ``$TESSERA_RAY_STATE_DIR``. Runs attach to it and never start Ray themselves."""
    state = Path(tmp_path_factory.mktemp("ray-state"))
    previous = os.environ.get(STATE_DIR_ENV)
    os.environ[STATE_DIR_ENV] = str(state)
    # One cluster per pytest-xdist worker, each on a loopback net of its own (gw0 → 127.0.1.x).
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    net = f"127.0.{int(worker.removeprefix('gw')) + 1}" if worker else local_cluster.LOOPBACK_NET
    cluster = local_cluster.up(state, head_cpus=2, head_slots=1, worker_nodes=0, net=net)
    try:
        yield cluster
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        local_cluster.down(state)
        if previous is None:
            os.environ.pop(STATE_DIR_ENV, None)
        else:
            os.environ[STATE_DIR_ENV] = previous

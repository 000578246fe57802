"""A production-like Dagster deployment on loopback: Postgres storage, the QueuedRunCoordinator
with run and pool limits, run monitoring, runs launched as separate processes, a webserver whose
GraphQL API launches backfills the way the UI does, and a daemon that runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tessera_assets_tests.infra.ports import free_port

REPO = Path(__file__).resolve().parents[2]


def instance_yaml(pg_url: str, *, max_concurrent_runs: int, backfill_run_limit: int,
                  pool_limit: int, run_buffer: int) -> str:
    """The instance settings the deploy/ Helm values hold too (see deploy/helm-values.yaml).

    ``run_buffer`` (``op_granularity_run_buffer``): how many runs the queue starts beyond the
    ``gpu`` pool's free slots when their first step is in that pool (a re-embedding run:
    ``embeddings`` is its root). Without it such runs are only launched once a slot is free,
    so every slot waits out a run's start before its next strip (docs/performance.md)."""
    return f"""\
storage:
  postgres:
    postgres_url: "{pg_url}"
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
run_launcher:
  module: dagster._core.launcher
  class: DefaultRunLauncher
concurrency:
  runs:
    max_concurrent_runs: {max_concurrent_runs}
    tag_concurrency_limits:
      - key: dagster/backfill
        value:
          applyLimitPerUniqueValue: true
        limit: {backfill_run_limit}
      - key: dagster/partition
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    default_limit: {pool_limit}
    op_granularity_run_buffer: {run_buffer}
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  poll_interval_seconds: 5
telemetry:
  enabled: false
"""


@dataclass
class DagsterStack:
    home: Path
    url: str
    env: dict[str, str]
    processes: dict[str, subprocess.Popen]

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        r = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}},
                       timeout=120)
        r.raise_for_status()
        body = r.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def alive(self) -> dict[str, bool]:
        return {name: p.poll() is None for name, p in self.processes.items()}


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # A session of its own, so SIGTERM reaches the whole tree (environment-notes: Dagster).
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextmanager
def dagster_stack(home: Path, pg_url: str, env: dict[str, str], *, max_concurrent_runs: int = 4,
                  backfill_run_limit: int = 4, pool_limit: int = 2, run_buffer: int = 1,
                  start_timeout: float = 180) -> Iterator[DagsterStack]:
    """Write ``dagster.yaml`` into ``home``; start webserver and daemon; stop both after."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance_yaml(
        pg_url, max_concurrent_runs=max_concurrent_runs, backfill_run_limit=backfill_run_limit,
        pool_limit=pool_limit, run_buffer=run_buffer))
    full_env = {**os.environ, **env, "DAGSTER_HOME": str(home)}
    bindir = Path(sys.executable).parent
    port = free_port()
    web = _start([str(bindir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                  "-w", str(REPO / "workspace.yaml")], full_env, home / "webserver.log")
    daemon = _start([str(bindir / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
                    full_env, home / "daemon.log")
    stack = DagsterStack(home, f"http://127.0.0.1:{port}", full_env,
                         {"webserver": web, "daemon": daemon})
    try:
        deadline = time.time() + start_timeout
        while True:
            try:
                if requests.get(f"{stack.url}/server_info", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.time() > deadline or web.poll() is not None:
                raise RuntimeError("dagster-webserver did not start:\n"
                                   + (home / "webserver.log").read_text()[-3000:])
            time.sleep(1)
        yield stack
    finally:
        _stop(daemon)
        _stop(web)

"""Runs killed mid-step: a run whose worker process died (SIGKILL, OOM, a closed laptop) stays
STARTED in the instance for good unless something notices.

On Kubernetes the daemon's run monitoring asks the run launcher about the run pod and fails the
run (deploy/dagster.yaml ``run_monitoring``). Local runs — ``tessera-assets materialize`` runs
in-process, ``dagster dev`` runs as subprocesses of the code server — have no launcher that can
be asked, so ``status`` checks them itself: a run in progress whose worker pid (recorded by
Dagster's "Executing steps in process" event) no longer runs on this host is marked failed,
and ``status`` says so.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.launcher import DefaultRunLauncher

from tessera_assets.ops.partition_lease import pid_running

HOST_TAG = "tessera/host"
"""Set on runs started by ``tessera-assets materialize``: where their worker process lives."""
LOCAL_STATUSES = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


@dataclass(frozen=True)
class DeadRun:
    run_id: str
    partition: str | None
    pid: int

    def line(self) -> str:
        where = f" (tile-year {self.partition})" if self.partition else ""
        return (
            f"run {self.run_id[:8]}{where} was killed mid-step (worker pid {self.pid} is gone): "
            "marked failed; re-run its partition"
        )


def _worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """The pid Dagster recorded for the run's steps (in-process executor or run worker)."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=50
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        data = getattr(event, "event_specific_data", None)
        pid = (getattr(data, "metadata", None) or {}).get("pid")
        if pid is not None:
            value = getattr(pid, "value", pid)
            if str(value).isdigit():
                return int(value)
    return None


def reap_dead_runs(instance: DagsterInstance) -> list[DeadRun]:
    """Mark failed, and return, the local runs in progress whose worker process is gone.

    Only runs whose worker lives on this host are judged: those started by ``materialize``
    here (tagged :data:`HOST_TAG`), and every run of an instance whose launcher starts runs
    as local processes (``DefaultRunLauncher``). Runs on other hosts or pods are left to the
    daemon's run monitoring."""
    local_launcher = isinstance(instance.run_launcher, DefaultRunLauncher)
    host = socket.gethostname()
    dead = []
    for run in instance.get_runs(RunsFilter(statuses=LOCAL_STATUSES)):
        tagged = run.tags.get(HOST_TAG)
        if tagged != host and not (tagged is None and local_launcher):
            continue
        pid = _worker_pid(instance, run.run_id)
        if pid is None or pid == os.getpid() or pid_running(pid):
            continue
        found = DeadRun(run.run_id, run.tags.get("dagster/partition"), pid)
        instance.report_run_failed(run, found.line())
        dead.append(found)
    return dead

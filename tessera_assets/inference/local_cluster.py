"""A long-lived Ray cluster on this machine, for laptops, the demo and the loopback tests.

``up`` starts a head node (and optionally worker nodes) with ``ray start`` as separate
processes that outlive the caller, and records the address in the state file that
``inference.ray_address = "auto"`` reads; later runs attach to it. Every node binds a loopback
address of its own (127.0.0.2, 127.0.0.3, ...): Ray rewrites 127.0.0.1 to the machine's
network address, but keeps other loopback addresses, so nothing listens off the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tessera_assets.inference.cluster_address import STATE_FILE, reachable, read_state, state_dir

LOOPBACK_NET = "127.0.0"
"""Nodes bind ``{net}.2`` (head), ``{net}.3``, ... A second cluster on the same machine (e.g.
one per parallel test worker) takes another ``127.x.y`` net: two raylets on one address would
contend for Ray's fixed agent ports."""


class ClusterStartError(RuntimeError):
    """``ray start`` failed; the message carries the tail of its output."""


@dataclass
class LocalCluster:
    address: str
    temp_dir: str
    slot_resource: str
    slots: int
    nodes: list[str] = field(default_factory=list)
    started_at: float = 0.0


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _ray_cli() -> str:
    exe = Path(sys.executable).with_name("ray")
    return str(exe) if exe.exists() else (shutil.which("ray") or "ray")


def _ray_start(args: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run([_ray_cli(), "start", *args, "--disable-usage-stats"], env=env,
                          capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise ClusterStartError(f"`ray start {' '.join(args)}` failed:\n{tail}")


def up(folder: Path | None = None, *, head_cpus: int = 1, head_slots: int = 0,
       worker_nodes: int = 1, worker_cpus: int = 1, worker_slots: int = 1,
       slot_resource: str = "inference_slot", object_store_mb: int = 512,
       net: str = LOOPBACK_NET) -> LocalCluster:
    """Start (or find running) a head plus ``worker_nodes`` worker nodes; returns the cluster.

    ``*_slots`` give each node that many ``slot_resource`` units (the stand-in for GPUs on a
    CPU machine); the shared inference actors ask for one each.
    """
    folder = folder or state_dir()
    current = read_state(folder)
    if current and reachable(current["address"]):
        return LocalCluster(**current)
    down(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # Ray's socket paths must stay short: a temp dir under /tmp, named by the state folder.
    temp_dir = tempfile.mkdtemp(prefix="tessera-ray-", dir="/tmp")
    # Token auth off: every node binds loopback addresses only, and drivers (Dagster run
    # processes) then need no token file; a shared cluster (KubeRay) sets its own auth.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    head_ip = f"{net}.2"
    port = _free_port(head_ip)
    address = f"{head_ip}:{port}"
    mb = str(object_store_mb * 1024 * 1024)
    _ray_start(["--head", f"--node-ip-address={head_ip}", f"--port={port}",
                f"--num-cpus={head_cpus}", f"--resources={json.dumps({slot_resource: head_slots})}",
                "--include-dashboard=false", f"--temp-dir={temp_dir}",
                f"--object-store-memory={mb}"], env)
    nodes = [head_ip]
    for i in range(worker_nodes):
        ip = f"{net}.{3 + i}"
        _ray_start([f"--address={address}", f"--node-ip-address={ip}", f"--num-cpus={worker_cpus}",
                    f"--resources={json.dumps({slot_resource: worker_slots})}",
                    f"--object-store-memory={mb}"], env)
        nodes.append(ip)
    cluster = LocalCluster(address=address, temp_dir=temp_dir, slot_resource=slot_resource,
                           slots=head_slots + worker_nodes * worker_slots, nodes=nodes,
                           started_at=time.time())
    (folder / STATE_FILE).write_text(json.dumps(asdict(cluster), indent=1))
    return cluster


def _cluster_pids(temp_dir: str) -> list[int]:
    """Ray processes of the cluster whose session lives under ``temp_dir``."""
    import psutil

    pids: set[int] = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if temp_dir in cmd and proc.info["pid"] != os.getpid():
            pids.add(int(proc.info["pid"]))
            # actor and task workers rename themselves ("ray::EmbeddingWorker"): take the
            # raylets' children too
            with contextlib.suppress(psutil.Error):
                pids.update(c.pid for c in proc.children(recursive=True))
    pids.discard(os.getpid())
    return sorted(pids)


def down(folder: Path | None = None, timeout: float = 5.0) -> bool:
    """Stop the recorded local cluster (only its own processes); True if one was running."""
    import psutil

    folder = folder or state_dir()
    state = read_state(folder)
    if not state:
        return False
    pids = _cluster_pids(state["temp_dir"])
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    _, alive = psutil.wait_procs([p for p in map(_proc, pids) if p], timeout=timeout)
    for p in alive:
        p.kill()
    (folder / STATE_FILE).unlink(missing_ok=True)
    shutil.rmtree(state["temp_dir"], ignore_errors=True)
    return bool(pids)


def _proc(pid: int):
    import psutil

    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None

"""Where the shared Ray cluster is: an explicit address, ``$RAY_ADDRESS``, or the local cluster
that ``tessera-assets ray up`` started (recorded in a small state file).

Runs only ever *attach*: an address that leads nowhere is an error that says how to start a
cluster, never a reason to start a private one.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

STATE_DIR_ENV = "TESSERA_RAY_STATE_DIR"
STATE_FILE = "cluster.json"


class NoClusterError(RuntimeError):
    """There is no Ray cluster to attach to."""


def state_dir() -> Path:
    """The local cluster's state folder: ``$TESSERA_RAY_STATE_DIR`` or a per-user cache."""
    env = os.environ.get(STATE_DIR_ENV)
    return Path(env) if env else Path.home() / ".cache" / "tessera_assets" / "ray"


def read_state(folder: Path | None = None) -> dict | None:
    path = (folder or state_dir()) / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def reachable(address: str, timeout: float = 2.0) -> bool:
    """Whether the GCS port of ``host:port`` accepts a TCP connection."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def resolve_address(address: str) -> str:
    """``"auto"`` → ``$RAY_ADDRESS``, else the running local cluster; anything else as is."""
    if address != "auto":
        return address
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    state = read_state()
    if state and reachable(state["address"]):
        return str(state["address"])
    where = state_dir() / STATE_FILE
    raise NoClusterError(
        "no Ray cluster is running for inference: start one with `tessera-assets ray up` "
        f"(it records its address in {where}), or set inference.ray_address / RAY_ADDRESS "
        "to a running cluster (ray://host:10001 for KubeRay)")

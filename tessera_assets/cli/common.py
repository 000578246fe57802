"""What the commands share: the terminal console and the Dagster instance they record runs in.

Dagster is imported only when a command asks for the instance, so ``--help`` and the commands
that only read the AOI registry stay fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from dagster import DagsterInstance

console = Console(stderr=False)


def dagster_instance(home: Path | None = None) -> DagsterInstance:
    """The instance of ``$DAGSTER_HOME`` (set to ``home`` first, with telemetry off, if given),
    the same one ``dagster dev`` shows."""
    from dagster import DagsterInstance

    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(home)
        cfg = home / "dagster.yaml"
        if not cfg.exists():
            cfg.write_text("telemetry:\n  enabled: false\n")
    if not os.environ.get("DAGSTER_HOME"):
        raise SystemExit("set DAGSTER_HOME (a folder for Dagster's run and event storage)")
    return DagsterInstance.get()

"""What the commands share: the terminal console and the Dagster instance they record runs in.

Dagster is imported only when a command asks for the instance, so ``--help`` and the commands
that only read the AOI registry stay fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from dagster import DagsterInstance



def _console() -> Console:
    """The commands' console. Piped output (logs, CI, ``grep``) gets 200 columns instead of
    rich's 80-column default, so a table keeps one line per tile-year; ``COLUMNS`` wins."""
    out = Console(stderr=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = 200
    return out


console = _console()
OLD_LOCAL_INSTANCE_YAML = "telemetry:\n  enabled: false\n"
LOCAL_INSTANCE_YAML = """\
# The demo's Dagster instance (what `dagster dev` and the CLI use; deploy/dagster.yaml is the
# production one). Runs are queued, at most one per tile-year partition at a time
# (dagster/partition, per unique value), and the daemon's run monitoring fails runs that
# never start or whose worker dies (with local run processes `tessera-assets status` also
# marks killed runs failed: docs/operations.md "Killed runs").
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
concurrency:
  runs:
    tag_concurrency_limits:
      - key: dagster/partition
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:  # the `gpu` pool of embeddings: one run at a time feeds the inference slots
    default_limit: 1
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  poll_interval_seconds: 30
"""


def print_error(exc: BaseException | str, label: str = "error") -> None:
    """One line, whatever the terminal width, and with the text as written: user and
    exception text is escaped, so ``[pc]`` in a fix is not swallowed as rich markup."""
    text = exc if isinstance(exc, str) else str(exc).strip("'\"") if isinstance(
        exc, KeyError) else str(exc)
    console.print(f"[red]{label}:[/] {escape(' '.join(text.split()))}", soft_wrap=True)


def dagster_instance(home: Path | None = None) -> DagsterInstance:
    """The instance of ``$DAGSTER_HOME`` (set to ``home`` first, with telemetry off, if given),
    the same one ``dagster dev`` shows."""
    from dagster import DagsterInstance

    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(home)
        cfg = home / "dagster.yaml"
        if not cfg.exists() or cfg.read_text() == OLD_LOCAL_INSTANCE_YAML:
            cfg.write_text(LOCAL_INSTANCE_YAML)
    if not os.environ.get("DAGSTER_HOME"):
        raise SystemExit("set DAGSTER_HOME (a folder for Dagster's run and event storage)")
    return DagsterInstance.get()

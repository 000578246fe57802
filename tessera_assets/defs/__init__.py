"""The Dagster code location (``dagster dev``, ``dagster definitions validate``).

``defs`` is built on first access from the settings named by ``$TESSERA_CONFIG`` (plus
``TESSERA_*`` variables), not on import: importing a submodule such as
:mod:`tessera_assets.defs.partitions` (the CLI does) must not build the whole graph.
:func:`build_definitions` builds the same graph for explicit settings (tests, CLI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagster import Definitions

    from tessera_assets.defs.definitions import PIPELINE_JOB, build_definitions

_LAZY = ("PIPELINE_JOB", "build_definitions", "defs")


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from tessera_assets.defs import definitions

    if name == "defs":
        value: Definitions = definitions.build_definitions()
        globals()["defs"] = value  # built once per process
        return value
    return getattr(definitions, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["PIPELINE_JOB", "build_definitions", "defs"]

"""``tessera-assets materialize``: run every asset of an AOI's (or one) tile-years in-process,
against the same Dagster instance the UI shows. Refused above ``planner.budget_usd``."""

from __future__ import annotations

import argparse
import socket
import time
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from tessera_assets.cli.common import console, dagster_instance
from tessera_assets.cli.plan import gb, plan_for
from tessera_assets.cli.run_health import HOST_TAG
from tessera_assets.config import PipelineSettings
from tessera_assets.grid import Tile
from tessera_assets.ops.aoi_registry import AoiRegistry
from tessera_assets.ops.preflight import preflight

if TYPE_CHECKING:
    from dagster import DagsterInstance, Definitions

QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
"""Step events stay in the instance (and the UI); the terminal shows INFO and above."""


def materialize_partitions(defs: Definitions, instance: DagsterInstance,
                           partitions: list[tuple[Tile, int]]) -> list[dict[str, Any]]:
    """Run every asset for each (tile, year) in-process against ``instance``."""
    from tessera_assets.defs.definitions import PIPELINE_JOB
    from tessera_assets.defs.partitions import partition_key

    job = defs.resolve_job_def(PIPELINE_JOB)
    summary = []
    for i, (tile, year) in enumerate(partitions, 1):
        console.print(f"[bold]▶ {i}/{len(partitions)}[/] materialising all assets for "
                      f"tile [cyan]{tile.id}[/] year {year}")
        t0 = time.perf_counter()
        result = job.execute_in_process(partition_key=partition_key(tile, year),
                                        instance=instance, raise_on_error=False,
                                        run_config=QUIET_CONSOLE,
                                        tags={HOST_TAG: socket.gethostname()})
        seconds = time.perf_counter() - t0
        summary.append({"tile": tile.id, "year": year, "success": result.success,
                        "seconds": seconds, "run_id": result.run_id})
        status = "[green]ok[/]" if result.success else "[red]FAILED[/]"
        console.print(f"  {status} in {seconds:.1f} s (run {result.run_id[:8]})")
        if not result.success:
            for ev in result.all_events:
                if ev.is_step_failure or ev.event_type_value == "RESOURCE_INIT_FAILURE":
                    error = ev.event_specific_data.error
                    cause = error.cause or error
                    console.print(f"  [red]{escape(ev.step_key or 'run start')}:[/] "
                                  f"{escape(' '.join(cause.message.split()))}", soft_wrap=True)
    return summary


def _year(text: str) -> int:
    if not str(text).strip().isdigit():
        raise ValueError(f"--year {text!r} is not a year (e.g. --year 2024)")
    return int(text)


def check_partitions(parts: list[tuple[Tile, int]], years: list[int],
                     instance: DagsterInstance) -> None:
    """Every (tile, year) is a partition of the graph: a configured year and a registered
    tile. Said in one line before anything runs (instead of Dagster's
    ``DagsterUnknownPartitionError`` traceback)."""
    from tessera_assets.defs.partitions import TILES

    bad_years = sorted({y for _, y in parts} - set(years))
    if bad_years:
        raise ValueError(f"year {bad_years[0]} is not a partition: the configured years are "
                         f"{years[0]}-{years[-1]} (settings 'years' / TESSERA_YEARS)")
    known = set(instance.get_dynamic_partitions(TILES.name))
    unknown = sorted({t.id for t, _ in parts} - known)
    if unknown:
        raise ValueError(f"tile {unknown[0]} is not a partition: no registered AOI covers it; "
                         "register one first (tessera-assets aoi add <bbox> --years ...)")


def cmd_materialize(args: argparse.Namespace) -> int:
    from tessera_assets.defs.definitions import build_definitions

    settings = PipelineSettings.load()
    if args.aoi:
        record = AoiRegistry(settings.root, settings.storage_options).get(args.aoi)
        parts = [(t, y) for t in record.tile_objects() for y in record.years]
    else:
        if not (args.tile and args.year):
            raise SystemExit("give --aoi NAME, or --tile ID and --year YEAR")
        parts = [(Tile.parse(args.tile), _year(args.year))]
    instance = dagster_instance()
    check_partitions(parts, settings.years, instance)
    tile_years: dict[str, list[int]] = {}
    for tile, year in parts:
        tile_years.setdefault(tile.id, []).append(year)
    plan = plan_for(settings, tile_years)
    t = plan.total
    console.print(f"plan: {len(plan.parts)} tile-years, {sum(t.scenes.values()):,} scenes, "
                  f"{gb(t.input_bytes)}, {t.cpu_hours:,.2f} CPU-h, {t.gpu_hours:,.2f} GPU-h, "
                  f"${t.cost_usd:,.2f}")
    refusal = plan.refusal()
    if refusal:
        console.print(f"[red]refused:[/] {escape(refusal)}", soft_wrap=True)
        return 3
    preflight(settings, needs_model=True)  # each run checks again at its start
    summary = materialize_partitions(build_definitions(settings), instance, parts)
    return 0 if all(s["success"] for s in summary) else 1

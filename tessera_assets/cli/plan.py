"""``tessera-assets plan``: tiles, scenes, bytes, hours and cost of a backfill before it starts
(the same numbers ``materialize`` and the budget guard refuse on)."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from tessera_assets.aoi import AoiError
from tessera_assets.cli.common import console
from tessera_assets.config import PipelineSettings, parse_years
from tessera_assets.ops.aoi_registry import AoiRegistry, check_name, derive_name
from tessera_assets.ops.planner import Plan


def plan_for(settings: PipelineSettings, tile_years: dict[str, list[int]]) -> Plan:
    """Count each tile-year's scenes in the configured catalog and price them."""
    from tessera_assets.catalog.factory import catalog_from_settings
    from tessera_assets.ops.planner import plan_tile_years

    catalog = catalog_from_settings(settings.catalog)
    return plan_tile_years(catalog, tile_years, settings)


def gb(n: float) -> str:
    return f"{n / 1e9:,.3f} GB"


def print_plan(plan: Plan, title: str, *, per_tile: bool = False) -> None:
    t = plan.total
    table = Table(title=title, title_justify="left", show_header=False, show_edge=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("tiles", f"{len(plan.tiles):,}")
    table.add_row("tile-years", f"{len(plan.parts):,} (years {', '.join(map(str, plan.years))})")
    table.add_row("scenes S2 / S1 / Landsat",
                  f"{t.scenes['s2']:,} / {t.scenes['s1']:,} / {t.scenes['landsat']:,}")
    table.add_row("input bytes", gb(t.input_bytes))
    table.add_row("embedded pixels", f"{t.pixels * plan.prices['embedded_fraction']:,.0f}")
    table.add_row("CPU-hours", f"{t.cpu_hours:,.3f}")
    table.add_row("GPU-hours", f"{t.gpu_hours:,.3f}")
    table.add_row("compute cost", f"${t.compute_usd:,.2f}")
    table.add_row("egress cost", f"${t.egress_usd:,.2f}")
    table.add_row("[bold]total cost[/]", f"[bold]${t.cost_usd:,.2f}[/]")
    budget = "none" if plan.budget_usd is None else f"${plan.budget_usd:,.2f}"
    verdict = "[red]OVER BUDGET[/]" if plan.over_budget else "[green]within budget[/]"
    table.add_row("budget", f"{budget} ({verdict})")
    table.add_row("model / device", f"{plan.family} on {plan.device} "
                                    f"({plan.prices['px_per_s']:,.0f} px/s)")
    console.print(table)
    if per_tile:
        detail = Table("tile", "year", "S2", "S1", "Landsat", "input", "cost")
        for p in plan.parts:
            e = p.estimate
            detail.add_row(p.tile, str(p.year), str(e.scenes["s2"]), str(e.scenes["s1"]),
                           str(e.scenes["landsat"]), gb(e.input_bytes), f"${e.cost_usd:,.4f}")
        console.print(detail)


def _is_name(text: str) -> bool:
    try:
        check_name(text)
    except AoiError:
        return False
    return not text.endswith((".geojson", ".json", ".wkt"))


def cmd_plan(args: argparse.Namespace) -> int:
    settings = PipelineSettings.load()
    registry = AoiRegistry(settings.root, settings.storage_options)
    if _is_name(args.aoi) and registry.exists(args.aoi):
        record = registry.get(args.aoi)
        years = parse_years(args.years) if args.years else record.years
        title = f"Plan for AOI {record.name}"
    else:
        if not args.years:
            raise SystemExit("give --years for an AOI that is not registered")
        years = parse_years(args.years)
        record = registry.resolve(derive_name(args.aoi, years), args.aoi, years,
                                  settings.tile_size, crs=args.crs)
        title = f"Plan for {record.name} (not registered)"
    unknown = sorted(set(years) - set(settings.years))
    if unknown:
        raise ValueError(f"years {unknown} are not in the configured years {settings.years}")
    plan = plan_for(settings, {t: years for t in record.tiles})
    if args.json:
        console.print_json(json.dumps(plan.summary()))
    else:
        print_plan(plan, f"{title}: {len(record.tiles)} tiles × {len(years)} years",
                   per_tile=args.per_tile)
    return 0

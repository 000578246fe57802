"""``tessera-assets``: the terminal front end (demo, AOIs, planning, materialisation, status).

It drives the same Dagster definitions and instance that ``dagster dev`` shows, so every run
started here appears in the UI with its logs and metadata.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tessera_assets.aoi import AoiError
from tessera_assets.catalog.backends import CatalogError
from tessera_assets.config import CONFIG_ENV, PipelineSettings, parse_years
from tessera_assets.grid import Tile
from tessera_assets.ops.aoi_registry import (
    AoiRegistry,
    AoiRequestInbox,
    check_name,
    delete_partition_data,
    derive_name,
    process_requests,
    requests_url,
)
from tessera_assets.ops.planner import Plan, PlannerError

QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
console = Console(stderr=False)


def _instance(home: Path | None = None):
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


def register_aoi(instance, settings: PipelineSettings, name: str, spec, years: list[int],
                 crs: str | None = None):
    """Record the AOI and add its tiles as dynamic partitions."""
    from tessera_assets.defs.partitions import TILES

    unknown = sorted(set(years) - set(settings.years))
    if unknown:
        raise AoiError(f"years {unknown} are not in the configured year range {settings.years}")
    record = AoiRegistry(settings.root, settings.storage_options).add(
        name, spec, years, settings.tile_size, crs=crs)
    instance.add_dynamic_partitions(TILES.name, record.tiles)
    return record


def materialize_partitions(defs, instance, partitions: list[tuple[Tile, int]]) -> list[dict]:
    """Run every asset for each (tile, year) in-process against ``instance``."""
    from tessera_assets.defs import PIPELINE_JOB
    from tessera_assets.defs.partitions import partition_key

    job = defs.resolve_job_def(PIPELINE_JOB)
    summary = []
    for i, (tile, year) in enumerate(partitions, 1):
        console.print(f"[bold]▶ {i}/{len(partitions)}[/] materialising all assets for "
                      f"tile [cyan]{tile.id}[/] year {year}")
        t0 = time.perf_counter()
        # Step events stay in the instance (and the UI); the terminal shows INFO and above.
        result = job.execute_in_process(partition_key=partition_key(tile, year),
                                        instance=instance, raise_on_error=False,
                                        run_config=QUIET_CONSOLE)
        seconds = time.perf_counter() - t0
        summary.append({"tile": tile.id, "year": year, "success": result.success,
                        "seconds": seconds, "run_id": result.run_id})
        status = "[green]ok[/]" if result.success else "[red]FAILED[/]"
        console.print(f"  {status} in {seconds:.1f} s (run {result.run_id[:8]})")
        if not result.success:
            for ev in result.all_events:
                if ev.is_step_failure:
                    console.print(f"  [red]{ev.step_key}: {ev.event_specific_data.error.message}")
    return summary


def cmd_demo(args: argparse.Namespace) -> int:
    from tessera_assets.aoi import load_aoi
    from tessera_assets.demo import DemoSpec, generate_demo_archive
    from tessera_assets.demo.area import (
        DEMO_AOI_UTM,
        DEMO_EPSG,
        DEMO_MODEL_FAMILY,
        DemoPaths,
        demo_bounds,
        demo_settings,
    )
    from tessera_assets.grid import tiles_for_geometry
    from tessera_assets.model.demo_weights import write_demo_checkpoint

    t_start = time.perf_counter()
    paths = DemoPaths(Path(args.home).resolve())
    settings = demo_settings(paths, tile_size=args.tile_size)
    tiles = tiles_for_geometry(load_aoi(list(DEMO_AOI_UTM), crs=f"EPSG:{DEMO_EPSG}"),
                               settings.tile_size)
    year = settings.years[0]

    console.rule("[bold]tessera_assets demo")
    t0 = time.perf_counter()
    spec = DemoSpec(epsg=DEMO_EPSG, bounds=demo_bounds([t.bounds for t in tiles]), year=year)
    archive = generate_demo_archive(spec, paths.archive)
    console.print(f"1. demo archive: {archive.root} "
                  f"({', '.join(f'{k}: {v}' for k, v in archive.item_counts.items())}) "
                  f"in {time.perf_counter() - t0:.1f} s")
    if not paths.model.exists():
        write_demo_checkpoint(paths.model, family=DEMO_MODEL_FAMILY, seed=0)
    console.print(f"2. demo model: {paths.model} [yellow](DEMO WEIGHTS: seeded random, "
                  "not a trained TESSERA model)[/]")
    settings.save(paths.settings_file)
    os.environ[CONFIG_ENV] = str(paths.settings_file)
    instance = _instance(paths.dagster_home)
    record = register_aoi(instance, settings, "demo", list(DEMO_AOI_UTM), [year],
                          crs=f"EPSG:{DEMO_EPSG}")
    console.print(f"3. registered AOI 'demo': tiles {', '.join(record.tiles)} × {year}")

    from tessera_assets.defs import build_definitions

    defs = build_definitions(settings)
    summary = materialize_partitions(defs, instance, [(t, year) for t in tiles])
    ok = all(s["success"] for s in summary)
    _print_stores(settings)
    console.print(f"\nDemo finished in {time.perf_counter() - t_start:.1f} s "
                  f"({'all partitions materialised' if ok else 'SOME PARTITIONS FAILED'}).")
    console.print("Browse the runs, assets and partitions:\n"
                  f"  DAGSTER_HOME={paths.dagster_home} {CONFIG_ENV}={paths.settings_file} "
                  ".venv/bin/dagster dev -w workspace.yaml      (or: make dev)\n"
                  "Open the embeddings in Python:\n"
                  f"  xarray.open_zarr('{settings.root}/embeddings.zarr', group='utm30', chunks=None)\n"
                  "Progress and plans (docs/operations.md):\n"
                  f"  DAGSTER_HOME={paths.dagster_home} {CONFIG_ENV}={paths.settings_file} "
                  ".venv/bin/tessera-assets status   (or: plan demo)")
    return 0 if ok else 1


def _print_stores(settings: PipelineSettings) -> None:
    table = Table(title="Stores")
    table.add_column("asset")
    table.add_column("location")
    for name in ("scene_manifest", "s2_cube", "s1_cube", "landsat_cube", "s2_masked",
                 "s1_calibrated", "landsat_masked", "embeddings", "embeddings_coarse"):
        suffix = "/" if name == "scene_manifest" else ".zarr"
        table.add_row(name, f"{settings.root}/{name}{suffix}")
    console.print(table)


def cmd_aoi(args: argparse.Namespace) -> int:
    settings = PipelineSettings.load()
    registry = AoiRegistry(settings.root, settings.storage_options)
    if args.aoi_cmd == "add":
        years = parse_years(args.years)
        name = args.name or derive_name(args.spec, years)
        record = register_aoi(_instance(), settings, name, args.spec, years, crs=args.crs)
        console.print(f"AOI {record.name}: {len(record.tiles)} tiles × years {record.years}")
        for t in record.tiles:
            console.print(f"  {t}")
    elif args.aoi_cmd == "list":
        table = Table("name", "tiles", "years", "created")
        for r in registry.list():
            table.add_row(r.name, str(len(r.tiles)), f"{r.years[0]}-{r.years[-1]}", r.created)
        console.print(table)
    elif args.aoi_cmd == "remove":
        return _remove_aoi(settings, registry, args.name, delete_data=args.delete_data)
    elif args.aoi_cmd == "requests":
        return _file_requests(settings, registry)
    return 0


def _remove_aoi(settings: PipelineSettings, registry: AoiRegistry, name: str, *,
                delete_data: bool) -> int:
    """Forget an AOI; with ``delete_data`` also drop the tile partitions and regions that no
    other AOI needs (tiles shared with another AOI keep their partitions and its years)."""
    removal = registry.removal_plan(name)
    if not delete_data:
        registry.remove(name)
        console.print(f"removed AOI {name} (its data is kept; --delete-data deletes it)")
        return 0
    from tessera_assets.defs.partitions import TILES

    instance = _instance()
    registry.remove(name)
    committed = 0
    for tile_id, years in removal.delete_regions.items():
        committed += delete_partition_data(settings, Tile.parse(tile_id), years)
    # The instance must agree with the stores (a partition counts as written only when
    # Dagster recorded it): forget the deleted tile-years' materialisations too.
    from dagster import AssetKey

    from tessera_assets.cli.status import ASSET_ORDER

    keys = [f"{t}|{y}" for t, years in removal.delete_regions.items() for y in years]
    note = ""
    try:
        for asset in ASSET_ORDER if keys else ():
            instance.wipe_asset_partitions(AssetKey(asset), keys)
    except NotImplementedError:  # the OSS SQLite/Postgres event logs cannot wipe partitions
        note = (f"\nnote: this Dagster instance cannot forget partition materialisations, so it "
                f"still lists the {len(keys)} deleted tile-year(s) as materialised; an AOI "
                "that covers them again must re-materialise them explicitly (not 'missing "
                "only')")
    existing = set(instance.get_dynamic_partitions(TILES.name))
    for tile_id in removal.drop_tiles:
        if tile_id in existing:
            instance.delete_dynamic_partition(TILES.name, tile_id)
    regions = sum(len(v) for v in removal.delete_regions.values())
    console.print(f"removed AOI {name}: {len(removal.drop_tiles)} tile partition(s) dropped, "
                  f"{regions} tile-year region(s) deleted from every store "
                  f"({committed} committed regions), shared tiles kept{note}")
    return 0


def _file_requests(settings: PipelineSettings, registry: AoiRegistry) -> int:
    """Process the AOI request folder once (what the sensor does on each tick)."""
    from tessera_assets.defs.partitions import TILES

    inbox = AoiRequestInbox(requests_url(settings), settings.storage_options)
    outcomes = process_requests(inbox, registry, settings)
    instance = _instance()
    have = set(instance.get_dynamic_partitions(TILES.name))
    missing = sorted(set(registry.tile_years()) - have)
    if missing:
        instance.add_dynamic_partitions(TILES.name, missing)
    for o in outcomes:
        colour = "green" if o.status == "accepted" else "red"
        console.print(f"[{colour}]{o.status}[/] {o.file}: "
                      f"{o.reason or (o.record.name if o.record else '')} → {o.moved_to}")
    if not outcomes:
        console.print(f"no AOI requests in {inbox.url}")
    return 0 if all(o.status == "accepted" for o in outcomes) else 1


def plan_for(settings: PipelineSettings, tile_years: dict[str, list[int]]) -> Plan:
    """Count each tile-year's scenes in the configured catalog and price them."""
    from tessera_assets.catalog.backends import catalog_from_settings
    from tessera_assets.ops.planner import plan_tile_years

    catalog = catalog_from_settings(settings.catalog)
    return plan_tile_years(catalog, tile_years, settings)


def _gb(n: float) -> str:
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
    table.add_row("input bytes", _gb(t.input_bytes))
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
                           str(e.scenes["landsat"]), _gb(e.input_bytes), f"${e.cost_usd:,.4f}")
        console.print(detail)


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


def _is_name(text: str) -> bool:
    try:
        check_name(text)
    except AoiError:
        return False
    return not text.endswith((".geojson", ".json", ".wkt"))


def cmd_status(args: argparse.Namespace) -> int:
    from tessera_assets.cli.status import collect_status, render_status
    from tessera_assets.defs.partitions import tile_year_partitions

    settings = PipelineSettings.load()
    registry = AoiRegistry(settings.root, settings.storage_options)
    records = [registry.get(args.aoi)] if args.aoi else registry.list()
    if not records:
        console.print("no AOIs registered (tessera-assets aoi add ...)")
        return 0
    statuses = collect_status(_instance(), records, tile_year_partitions(settings.years))
    render_status(statuses, console, max_rows=10**9 if args.all else 50)
    return 0


def cmd_materialize(args: argparse.Namespace) -> int:
    from tessera_assets.defs import build_definitions

    settings = PipelineSettings.load()
    if args.aoi:
        record = AoiRegistry(settings.root, settings.storage_options).get(args.aoi)
        parts = [(t, y) for t in record.tile_objects() for y in record.years]
    else:
        if not (args.tile and args.year):
            raise SystemExit("give --aoi NAME, or --tile ID and --year YEAR")
        parts = [(Tile.parse(args.tile), int(args.year))]
    tile_years: dict[str, list[int]] = {}
    for tile, year in parts:
        tile_years.setdefault(tile.id, []).append(year)
    plan = plan_for(settings, tile_years)
    t = plan.total
    console.print(f"plan: {len(plan.parts)} tile-years, {sum(t.scenes.values()):,} scenes, "
                  f"{_gb(t.input_bytes)}, {t.cpu_hours:,.2f} CPU-h, {t.gpu_hours:,.2f} GPU-h, "
                  f"${t.cost_usd:,.2f}")
    refusal = plan.refusal()
    if refusal:
        console.print(f"[red]refused:[/] {refusal}")
        return 3
    summary = materialize_partitions(build_definitions(settings), _instance(), parts)
    return 0 if all(s["success"] for s in summary) else 1


class _Parser(argparse.ArgumentParser):
    """Takes ``-1.2,51.9,-1.0,52.0`` (a western bbox) as a value, not as an unknown option."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\d+(\.\d*)?([,\s]+-?\d+(\.\d*)?)*$")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tessera-assets", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="generate the demo archive and materialise every asset")
    d.add_argument("--home", default=".demo", help="folder for data, settings and DAGSTER_HOME")
    d.add_argument("--tile-size", type=int, default=160)
    d.set_defaults(func=cmd_demo)

    a = sub.add_parser("aoi", help="register areas of interest (adds tile partitions)")
    asub = a.add_subparsers(dest="aoi_cmd", required=True)
    add = asub.add_parser("add")
    add.add_argument("spec", help="GeoJSON file/string, WKT or 'minx,miny,maxx,maxy'")
    add.add_argument("--years", required=True, help="e.g. 2019-2024 or 2021,2023")
    add.add_argument("--name", default=None,
                     help="default: the GeoJSON's properties.name, the file name, or aoi-<hash>")
    add.add_argument("--crs", default=None, help="CRS of a bbox/WKT (default EPSG:4326)")
    asub.add_parser("list")
    rm = asub.add_parser("remove", help="forget an AOI (its data is kept unless --delete-data)")
    rm.add_argument("name")
    rm.add_argument("--delete-data", action="store_true",
                    help="also drop tile partitions and delete regions no other AOI uses")
    asub.add_parser("requests", help="process the AOI request folder once (as the sensor does)")
    a.set_defaults(func=cmd_aoi)

    pl = sub.add_parser("plan", help="tiles, scenes, bytes, hours and cost before a backfill")
    pl.add_argument("aoi", help="a registered AOI name, or a GeoJSON/WKT/bbox to plan")
    pl.add_argument("--years", default=None, help="e.g. 2019-2024 (default: the AOI's years)")
    pl.add_argument("--crs", default=None, help="CRS of a bbox/WKT (default EPSG:4326)")
    pl.add_argument("--per-tile", action="store_true", help="also list every tile-year")
    pl.add_argument("--json", action="store_true", help="print the totals as JSON")
    pl.set_defaults(func=cmd_plan)

    st = sub.add_parser("status", help="progress per tile-year, from the Dagster instance")
    st.add_argument("aoi", nargs="?", default=None)
    st.add_argument("--all", action="store_true", help="list every tile-year of large AOIs")
    st.set_defaults(func=cmd_status)

    m = sub.add_parser("materialize", help="run every asset for an AOI or one tile-year "
                                           "(refused above planner.budget_usd)")
    m.add_argument("--aoi")
    m.add_argument("--tile")
    m.add_argument("--year")
    m.set_defaults(func=cmd_materialize)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (AoiError, KeyError, FileNotFoundError, ValueError, PlannerError,
            CatalogError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())

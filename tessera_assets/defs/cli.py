"""``tessera-assets``: the terminal front end (demo, AOI registration, materialisation).

It drives the same Dagster definitions and instance that ``dagster dev`` shows, so every run
started here appears in the UI with its logs and metadata.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tessera_assets.aoi import AoiError
from tessera_assets.aoi_registry import AoiRegistry
from tessera_assets.config import CONFIG_ENV, PipelineSettings, parse_years
from tessera_assets.grid import Tile

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
        result = job.execute_in_process(partition_key=partition_key(tile, year),
                                        instance=instance, raise_on_error=False)
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
    from tessera_assets.demo_area import (
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
                  f"  xarray.open_zarr('{settings.root}/embeddings.zarr', group='utm30')")
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
        record = register_aoi(_instance(), settings, args.name, args.spec,
                              parse_years(args.years), crs=args.crs)
        console.print(f"AOI {record.name}: {len(record.tiles)} tiles × years {record.years}")
        for t in record.tiles:
            console.print(f"  {t}")
    elif args.aoi_cmd == "list":
        table = Table("name", "tiles", "years", "created")
        for r in registry.list():
            table.add_row(r.name, str(len(r.tiles)), f"{r.years[0]}-{r.years[-1]}", r.created)
        console.print(table)
    elif args.aoi_cmd == "remove":
        record = registry.remove(args.name)
        console.print(f"removed AOI {record.name} (its data is kept)")
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
    summary = materialize_partitions(build_definitions(settings), _instance(), parts)
    return 0 if all(s["success"] for s in summary) else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tessera-assets", description=__doc__)
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
    add.add_argument("--name", required=True)
    add.add_argument("--crs", default=None, help="CRS of a bbox/WKT (default EPSG:4326)")
    asub.add_parser("list")
    rm = asub.add_parser("remove")
    rm.add_argument("name")
    a.set_defaults(func=cmd_aoi)

    m = sub.add_parser("materialize", help="run every asset for an AOI or one tile-year")
    m.add_argument("--aoi")
    m.add_argument("--tile")
    m.add_argument("--year")
    m.set_defaults(func=cmd_materialize)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (AoiError, KeyError, FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())

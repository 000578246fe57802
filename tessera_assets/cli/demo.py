"""``tessera-assets demo``: generate the embedded demo archive and demo weights, register the
demo AOI and materialise every asset of every demo partition through Dagster (DESIGN §7)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from rich.table import Table

from tessera_assets.cli.common import console, dagster_instance
from tessera_assets.config import CONFIG_ENV, PipelineSettings
from tessera_assets.products.registry import MANIFEST, PRODUCTS, manifest_dir, store_url


def cmd_demo(args: argparse.Namespace) -> int:
    from tessera_assets.aoi import load_aoi
    from tessera_assets.cli.aoi import register_aoi
    from tessera_assets.cli.materialize import materialize_partitions
    from tessera_assets.defs.definitions import build_definitions
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
    instance = dagster_instance(paths.dagster_home)
    record = register_aoi(instance, settings, "demo", list(DEMO_AOI_UTM), [year],
                          crs=f"EPSG:{DEMO_EPSG}")
    console.print(f"3. registered AOI 'demo': tiles {', '.join(record.tiles)} × {year}")

    from tessera_assets.demo.area import DEMO_RAY_CPUS
    from tessera_assets.inference import local_cluster
    from tessera_assets.inference.cluster_address import reachable, read_state

    running = read_state()
    started = not (running and reachable(running["address"]))
    cluster = local_cluster.up(head_cpus=max(DEMO_RAY_CPUS, os.cpu_count() or 1), head_slots=1,
                               worker_nodes=0)
    console.print(f"4. Ray cluster at {cluster.address} ({'started' if started else 'reused'}): "
                  "every partition run attaches to its inference actor", highlight=False)
    defs = build_definitions(settings)
    try:
        summary = materialize_partitions(defs, instance, [(t, year) for t in tiles])
    finally:
        if started:
            local_cluster.down()
    ok = all(s["success"] for s in summary)
    print_stores(settings)
    console.print(f"\nDemo finished in {time.perf_counter() - t_start:.1f} s "
                  f"({'all partitions materialised' if ok else 'SOME PARTITIONS FAILED'}).")
    console.print("Browse the runs, assets and partitions:\n"
                  f"  DAGSTER_HOME={paths.dagster_home} {CONFIG_ENV}={paths.settings_file} "
                  ".venv/bin/dagster dev -w workspace.yaml      (or: make dev)\n"
                  "Open the embeddings in Python:\n"
                  f"  xarray.open_zarr('{store_url(settings.root, 'embeddings')}', group='utm30', "
                  "chunks=None)\n"
                  "Progress and plans (docs/operations.md):\n"
                  f"  DAGSTER_HOME={paths.dagster_home} {CONFIG_ENV}={paths.settings_file} "
                  ".venv/bin/tessera-assets status   (or: plan demo)")
    return 0 if ok else 1


def print_stores(settings: PipelineSettings) -> None:
    table = Table(title="Stores")
    table.add_column("asset")
    table.add_column("location")
    table.add_row(MANIFEST, f"{manifest_dir(settings.root)}/")
    for name in PRODUCTS:
        table.add_row(name, store_url(settings.root, name))
    console.print(table)

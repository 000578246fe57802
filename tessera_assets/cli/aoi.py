"""``tessera-assets aoi``: register, list and remove areas of interest, and file the AOI request
folder once. Registering an AOI adds its tiles as dynamic partitions of the Dagster instance."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table
from shapely.geometry import shape

from tessera_assets.aoi import AoiError, land_warning
from tessera_assets.cli.common import console, dagster_instance
from tessera_assets.config import PipelineSettings, parse_years
from tessera_assets.grid import Tile
from tessera_assets.ops.aoi_registry import (
    AoiRecord,
    AoiRegistry,
    delete_partition_data,
    derive_name,
)
from tessera_assets.ops.aoi_requests import (
    AoiRequestInbox,
    process_requests,
    requests_url,
    tiles_missing_from,
)

if TYPE_CHECKING:
    from dagster import DagsterInstance


def register_aoi(instance: DagsterInstance, settings: PipelineSettings, name: str, spec: Any,
                 years: list[int], crs: str | None = None) -> AoiRecord:
    """Record the AOI and add its tiles as dynamic partitions."""
    from tessera_assets.defs.partitions import TILES

    unknown = sorted(set(years) - set(settings.years))
    if unknown:
        raise AoiError(f"years {unknown} are not in the configured year range {settings.years}")
    record = AoiRegistry(settings.root, settings.storage_options).add(
        name, spec, years, settings.tile_size, crs=crs)
    instance.add_dynamic_partitions(TILES.name, record.tiles)
    return record


def cmd_aoi(args: argparse.Namespace) -> int:
    settings = PipelineSettings.load()
    registry = AoiRegistry(settings.root, settings.storage_options)
    if args.aoi_cmd == "add":
        years = parse_years(args.years)
        name = args.name or derive_name(args.spec, years)
        record = register_aoi(dagster_instance(), settings, name, args.spec, years, crs=args.crs)
        console.print(f"AOI {record.name}: {len(record.tiles)} tiles × years {record.years}")
        warning = land_warning(shape(record.geometry), record.tile_objects())
        if warning:
            console.print(f"[yellow]warning:[/] {escape(warning)}")
        for t in record.tiles:
            console.print(f"  {t}")
    elif args.aoi_cmd == "list":
        table = Table("name", "tiles", "years", "created")
        for r in registry.list():
            table.add_row(r.name, str(len(r.tiles)), f"{r.years[0]}-{r.years[-1]}", r.created)
        console.print(table)
    elif args.aoi_cmd == "remove":
        return remove_aoi(settings, registry, args.name, delete_data=args.delete_data)
    elif args.aoi_cmd == "requests":
        return file_requests(settings, registry)
    return 0


def remove_aoi(settings: PipelineSettings, registry: AoiRegistry, name: str, *,
               delete_data: bool) -> int:
    """Forget an AOI; with ``delete_data`` also drop the tile partitions and regions that no
    other AOI needs (tiles shared with another AOI keep their partitions and its years)."""
    removal = registry.removal_plan(name)
    if not delete_data:
        registry.remove(name)
        console.print(f"removed AOI {name} (its data is kept; --delete-data deletes it)")
        return 0
    from dagster import AssetKey

    from tessera_assets.cli.status import ASSET_ORDER
    from tessera_assets.defs.partitions import TILES, partition_key

    instance = dagster_instance()
    registry.remove(name)
    committed = 0
    for tile_id, years in removal.delete_regions.items():
        committed += delete_partition_data(settings, Tile.parse(tile_id), years)
    # The instance must agree with the stores (a partition counts as written only when
    # Dagster recorded it): forget the deleted tile-years' materialisations too.
    keys = [str(partition_key(t, y)) for t, years in removal.delete_regions.items()
            for y in years]
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


def file_requests(settings: PipelineSettings, registry: AoiRegistry) -> int:
    """Process the AOI request folder once (what the sensor does on each tick)."""
    from tessera_assets.defs.partitions import TILES

    inbox = AoiRequestInbox(requests_url(settings), settings.storage_options)
    outcomes = process_requests(inbox, registry, settings)
    instance = dagster_instance()
    missing = tiles_missing_from(registry.tile_years(),
                                 instance.get_dynamic_partitions(TILES.name))
    if missing:
        instance.add_dynamic_partitions(TILES.name, missing)
    for o in outcomes:
        colour = "green" if o.status == "accepted" else "red"
        console.print(f"[{colour}]{o.status}[/] "
                      + escape(f"{o.file}: {o.reason or (o.record.name if o.record else '')} "
                               f"→ {o.moved_to}"), soft_wrap=True)
    if not outcomes:
        console.print(f"no AOI requests in {escape(inbox.url)}")
    return 0 if all(o.status == "accepted" for o in outcomes) else 1

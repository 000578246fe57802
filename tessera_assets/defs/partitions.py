"""Tile × year partitions (DESIGN §3): tiles are dynamic (added when an AOI is registered),
years are static from the settings."""

from __future__ import annotations

from dagster import (
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
)

from tessera_assets.grid import Tile

TILES = DynamicPartitionsDefinition(name="tiles")


def tile_year_partitions(years: list[int]) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition(
        {"tile": TILES, "year": StaticPartitionsDefinition([str(y) for y in years])}
    )


def tile_year_ids(partition_key: str | MultiPartitionKey) -> tuple[str, int]:
    """(tile id, year) of a multi-partition key such as ``'32630_2048_31_177|2024'``."""
    if isinstance(partition_key, MultiPartitionKey):
        dims = partition_key.keys_by_dimension
    else:
        # Dimension values are joined with '|' in alphabetical order of dimension names.
        tile_id, year = partition_key.split("|")
        dims = {"tile": tile_id, "year": year}
    return dims["tile"], int(dims["year"])


def tile_year(partition_key: str | MultiPartitionKey) -> tuple[Tile, int]:
    """(Tile, year) of a multi-partition key."""
    tile_id, year = tile_year_ids(partition_key)
    return Tile.parse(tile_id), year


def partition_key(tile: Tile | str, year: int) -> MultiPartitionKey:
    """The key of a tile (or tile id) and year; as a string ``'{tile_id}|{year}'``."""
    tile_id = tile if isinstance(tile, str) else tile.id
    return MultiPartitionKey({"tile": tile_id, "year": str(year)})

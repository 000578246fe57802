"""Zone-wide Zarr v3 stores written region by region (DESIGN §4).

One concept per module: :mod:`.schema` (what a product's arrays are), :mod:`.documents` (the
zone's on-disk metadata, derived from the schema), :mod:`.write_plan` (validating a partition
and laying out its shards), :mod:`.zone_store` (the intent → shards → commit protocol),
:mod:`.read` (committed records, tile windows), :mod:`.lineage` (the per-partition records),
:mod:`.staging` (shards staged until commit), :mod:`.integrity` (shard content hashes),
:mod:`.objects` (object I/O on any fsspec URL) and :mod:`.errors`.
"""

from tessera_assets.store.errors import (
    ConcurrentWriteError,
    PartitionNotCommittedError,
    RegionIntegrityError,
    StoreError,
    StoreLayoutError,
)
from tessera_assets.store.integrity import IntegrityReport
from tessera_assets.store.lineage import Lineage, LineageRecord, RegionStatus
from tessera_assets.store.read import TileWindow, ZoneReader, store_url
from tessera_assets.store.schema import ProductSchema, VariableSpec, valid_resolutions
from tessera_assets.store.write_plan import PartitionDataError
from tessera_assets.store.zone_store import ZoneStore

__all__ = [
    "ConcurrentWriteError",
    "IntegrityReport",
    "Lineage",
    "LineageRecord",
    "PartitionDataError",
    "PartitionNotCommittedError",
    "ProductSchema",
    "RegionIntegrityError",
    "RegionStatus",
    "StoreError",
    "StoreLayoutError",
    "TileWindow",
    "VariableSpec",
    "ZoneReader",
    "ZoneStore",
    "store_url",
    "valid_resolutions",
]

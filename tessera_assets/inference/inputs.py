"""What an embeddings run reads: the masked-cube regions it verified, their stored size, and a
strip height that reads every stored chunk once.

The run checks each region's shard hashes once (the IO manager's input load) and hands the
verified records' ``written_at`` to the actors, which then read strips without hashing the
region again. Strips are whole multiples of the stored inner chunk's rows and columns, so no
chunk is decoded by two strips. The region's stored size is the yardstick the workers' byte
counts are reported against (``read_amplification``).
"""

from __future__ import annotations

from dataclasses import dataclass

from tessera_assets.config import PipelineSettings
from tessera_assets.grid import Tile
from tessera_assets.products.registry import open_store
from tessera_assets.store.errors import PartitionNotCommittedError

STRIP_VARIABLES = {"s2_masked": ("bands", "valid"), "s1_calibrated": ("codes",)}
"""The variables a strip reads from each masked product (:func:`~.strips.strip_inputs`)."""


@dataclass(frozen=True)
class MaskedInputs:
    regions: dict[str, str]
    """Product → ``written_at`` of its committed lineage record."""
    region_bytes: int
    """Stored bytes of the shards of :data:`STRIP_VARIABLES`."""
    chunk_rows: int
    """The largest inner-chunk height of those variables: strips are multiples of it."""

    def strip_rows(self, wanted: int) -> int:
        """``wanted`` rounded up to a whole number of stored chunk rows."""
        return -(-max(wanted, 1) // self.chunk_rows) * self.chunk_rows


def masked_inputs(settings: PipelineSettings, tile: Tile, year: int) -> MaskedInputs:
    """The committed masked regions of a tile-year (no data is read: records and sizes only)."""
    regions: dict[str, str] = {}
    size = chunk = 0
    for product, variables in STRIP_VARIABLES.items():
        store = open_store(product, settings)
        record = store.read_lineage(tile, year)
        if record is None:
            raise PartitionNotCommittedError(f"{product} {tile.id} {year} is not committed")
        regions[product] = record.written_at
        size += store.region_bytes(tile, year, variables)
        for name in variables:
            var = store.schema.variable(name)
            chunk = max(chunk, store.schema.inner_chunks(var)[var.dims.index("y")])
    return MaskedInputs(regions=regions, region_bytes=size, chunk_rows=max(chunk, 1))

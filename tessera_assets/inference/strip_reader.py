"""How an inference actor reads its strips from the masked-cube stores (any fsspec root).

A reader keeps lazy views of the few tile-years it is serving (one per concurrent run is
plenty) and counts the bytes each strip fetched. The run verified each region's shard hashes
before sending strips and names the verified records in ``StripRef.regions``: the reader checks
the records are still those and reads without hashing the region again, so each stored chunk is
fetched once per tile, not once per actor. A ref without ``regions`` is fully verified here.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from tessera_assets.config import PipelineSettings
from tessera_assets.grid import Tile
from tessera_assets.inference.inputs import STRIP_VARIABLES
from tessera_assets.inference.strips import StripInputs, strip_inputs
from tessera_assets.inference.tasks import StripRef
from tessera_assets.products.registry import open_store

OPEN_TILES = 4
"""How many tile-years' views a reader keeps open."""


class RegionChangedError(RuntimeError):
    """A masked-cube region was rewritten after the run verified it: the strip is not read."""


class StripReader:
    def __init__(self, open_tiles: int = OPEN_TILES) -> None:
        self.open_tiles = open_tiles
        self._tiles: OrderedDict[tuple[Any, ...], tuple[Any, Any, list[Any]]] = OrderedDict()

    def read(self, ref: StripRef) -> tuple[StripInputs, int]:
        """The strip's inputs and the bytes fetched to read them (call from one thread at a
        time: the stores' counters then move for this strip only)."""
        s2, s1, stores = self._cubes(ref)
        before = sum(st.read_counter.bytes for st in stores)
        inputs = strip_inputs(s2, s1, ref.orbit_days, ref.row0, ref.row1)
        return inputs, sum(st.read_counter.bytes for st in stores) - before

    def _cubes(self, ref: StripRef) -> tuple[Any, Any, list[Any]]:
        """Lazy views of the tile-year's masked S2 and calibrated S1 cubes, dask-chunked by the
        strip height so each strip reads only its own rows, and their stores."""
        key = (ref.tile_id, ref.year, ref.settings_json, tuple(sorted(ref.regions.items())))
        if key not in self._tiles:
            settings = PipelineSettings.model_validate_json(
                ref.settings_json
            ).with_runtime_secrets()  # credentials: from this host
            tile = Tile.parse(ref.tile_id)
            rows = ref.row1 - ref.row0
            stores, views = [], []
            for product in STRIP_VARIABLES:
                store = open_store(product, settings)
                if ref.regions:
                    _check_unchanged(store, tile, ref.year, ref.regions.get(product))
                views.append(store.read_tile(tile, ref.year, chunks=rows, verify=not ref.regions))
                stores.append(store)
            self._tiles[key] = (views[0], views[1], stores)
            while len(self._tiles) > self.open_tiles:
                self._tiles.popitem(last=False)
        self._tiles.move_to_end(key)
        return self._tiles[key]


def _check_unchanged(store: Any, tile: Tile, year: int, written_at: str | None) -> None:
    record = store.read_lineage(tile, year)
    found = record.written_at if record is not None else None
    if written_at is None or found != written_at:
        raise RegionChangedError(
            f"{store.product} {tile.id} {year} was rewritten after the run verified it "
            f"(verified record written at {written_at}, now {found}); re-run the partition"
        )

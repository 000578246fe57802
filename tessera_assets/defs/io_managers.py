"""IO managers: each tile × year partition goes to its own region of the product's zone store
(DESIGN §4); the scene manifest goes to a stac-geoparquet file per partition.

Where each product lives and how its store is laid out is the product registry's business
(:mod:`tessera_assets.products.registry`). Outputs carry their provenance in ``tessera:*``
attributes, which become the region's lineage record (the partition's commit marker)."""

from __future__ import annotations

from typing import Any

import xarray as xr
from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext

from tessera_assets.defs.partitions import tile_year
from tessera_assets.defs.resources import PipelineResource
from tessera_assets.grid import Tile
from tessera_assets.products.attributes import lineage_attrs, lineage_from_attrs
from tessera_assets.products.depths import with_prefixes
from tessera_assets.products.embeddings import EmbeddingsStore
from tessera_assets.products.registry import (
    EMBEDDING_PRODUCTS,
    ModelStamp,
    manifest_url,
    open_store,
)
from tessera_assets.products.stac_out import publish, unpublish
from tessera_assets.sources.manifest import SceneManifest
from tessera_assets.store import LineageRecord, ZoneStore


def _partition(context: OutputContext | InputContext) -> tuple[Tile, int]:
    key = context.asset_partition_key if isinstance(context, InputContext) else context.partition_key
    return tile_year(key)


def _region_metadata(store: ZoneStore, record: LineageRecord) -> dict[str, Any]:
    return {
        "store": MetadataValue.path(store.url),
        "zone_group": f"utm{record.zone:02d}",
        "shards_written": sum(len(r.shards) for r in record.variables.values()),
        "shards_hashed": sum(len(r.digests) for r in record.variables.values()),
        "written_at": record.written_at,
        "manifest_digest": record.manifest_digest,
        "config_digest": record.config_digest,
    }


class ManifestIOManager(ConfigurableIOManager):
    """``{root}/scene_manifest/{tile}/{year}.parquet`` (+ ``.json`` summary)."""

    pipeline: PipelineResource

    def _url(self, context: OutputContext | InputContext) -> str:
        tile, year = _partition(context)
        return manifest_url(self.pipeline.settings.root, tile.id, year)

    def handle_output(self, context: OutputContext, obj: SceneManifest) -> None:
        url = self._url(context)
        obj.save(url, self.pipeline.settings.storage_options)
        context.add_output_metadata({"path": MetadataValue.path(url + ".parquet")})

    def load_input(self, context: InputContext) -> SceneManifest:
        return SceneManifest.load(self._url(context), self.pipeline.settings.storage_options)


class ZoneStoreIOManager(ConfigurableIOManager):
    """A zone-store product (cube or embeddings), one region per partition.

    An embeddings output also names the model that made it (``tessera:model_*``); the store is
    opened with that stamp, so a store never mixes models. Reads use the stored stamp.
    """

    pipeline: PipelineResource
    product: str

    def handle_output(self, context: OutputContext, obj: xr.Dataset) -> None:
        tile, year = _partition(context)
        model = ModelStamp.from_attrs(obj.attrs) if self.product in EMBEDDING_PRODUCTS else None
        store = open_store(self.product, self.pipeline.settings, model)
        # Embeddings outputs are plain arrays on the tile grid; cubes keep their coords (doy).
        data = obj if model is None else {name: obj[name].data for name in obj.data_vars}
        if isinstance(store, EmbeddingsStore):  # v2 matryoshka prefixes, written before the rest
            data = with_prefixes(data, store.depths)
        stac = self.product == "embeddings"  # the STAC index lists committed regions only
        if stac:
            unpublish(self.pipeline.settings, tile, year)
        record = store.write_tile(tile, year, data, lineage_from_attrs(obj.attrs))
        if stac:
            publish(self.pipeline.settings, store, tile, year)
        context.add_output_metadata(_region_metadata(store, record))

    def load_input(self, context: InputContext) -> xr.Dataset:
        """The committed region, after checking its shards against the recorded content
        hashes: a corrupt region raises ``RegionIntegrityError`` and never reaches the
        consuming asset."""
        tile, year = _partition(context)
        store = open_store(self.product, self.pipeline.settings)
        ds = store.read_tile(tile, year, verify=True)
        ds.attrs.update(lineage_attrs(store.read_lineage(tile, year)))
        return ds

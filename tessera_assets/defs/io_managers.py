"""IO managers: each tile × year partition goes to its own region of the product's zone store
(DESIGN §4); the scene manifest goes to a stac-geoparquet file per partition.

Outputs carry their provenance in ``tessera:*`` attributes, which become the region's lineage
record (the partition's commit marker in the store)."""

from __future__ import annotations

from typing import Any

import xarray as xr
from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext

from tessera_assets import __version__
from tessera_assets.defs.partitions import tile_year
from tessera_assets.defs.resources import PipelineResource
from tessera_assets.products.coarse import coarse_embeddings_schema
from tessera_assets.products.cubes import cube_schema
from tessera_assets.products.embeddings import EmbeddingsStore, embeddings_schema
from tessera_assets.sources.manifest import SceneManifest
from tessera_assets.store.objects import ObjectIO
from tessera_assets.store.zone_store import Lineage, ZoneStore

LINEAGE_KEYS = ("manifest_digest", "code_version", "config_digest", "model_sha256")
BUILD_VERSION = f"tessera_assets-{__version__}"


def _partition(context: OutputContext | InputContext):
    key = context.asset_partition_key if isinstance(context, InputContext) else context.partition_key
    return tile_year(key)


def _lineage(ds: xr.Dataset) -> Lineage:
    attrs = {k.removeprefix("tessera:"): v for k, v in ds.attrs.items() if k.startswith("tessera:")}
    missing = [k for k in LINEAGE_KEYS[:3] if k not in attrs]
    if missing:
        raise ValueError(f"output has no lineage attributes {missing}; set tessera:* attrs")
    return Lineage.model_validate({k: _plain(v) for k, v in attrs.items()})


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _region_metadata(store: ZoneStore, record) -> dict[str, Any]:
    return {
        "store": MetadataValue.path(store.url),
        "zone_group": f"utm{record.zone:02d}",
        "shards_written": sum(len(r.shards) for r in record.variables.values()),
        "written_at": record.written_at,
        "manifest_digest": record.manifest_digest,
        "config_digest": record.config_digest,
    }


class ManifestIOManager(ConfigurableIOManager):
    """``{root}/scene_manifest/{tile}/{year}.parquet`` (+ ``.json`` summary)."""

    pipeline: PipelineResource

    def _url(self, context: OutputContext | InputContext) -> str:
        tile, year = _partition(context)
        return f"{self.pipeline.settings.root.rstrip('/')}/scene_manifest/{tile.id}/{year}"

    def handle_output(self, context: OutputContext, obj: SceneManifest) -> None:
        url = self._url(context)
        obj.save(url, self.pipeline.settings.storage_options)
        context.add_output_metadata({"path": MetadataValue.path(url + ".parquet")})

    def load_input(self, context: InputContext) -> SceneManifest:
        return SceneManifest.load(self._url(context), self.pipeline.settings.storage_options)


class CubeIOManager(ConfigurableIOManager):
    """A cube product (raw / masked / calibrated) in its zone store, one region per partition."""

    pipeline: PipelineResource
    product: str

    def _store(self) -> ZoneStore:
        s = self.pipeline.settings
        return ZoneStore(s.root, self.product, cube_schema(self.product, s.years, s.tile_size),
                         s.storage_options)

    def handle_output(self, context: OutputContext, obj: xr.Dataset) -> None:
        tile, year = _partition(context)
        store = self._store()
        record = store.write_tile(tile, year, obj, _lineage(obj))
        context.add_output_metadata(_region_metadata(store, record))

    def load_input(self, context: InputContext) -> xr.Dataset:
        tile, year = _partition(context)
        return _with_lineage(self._store(), tile, year)


def _with_lineage(store: ZoneStore, tile, year) -> xr.Dataset:
    ds = store.read_tile(tile, year)
    record = store.read_lineage(tile, year)
    if record is not None:
        ds.attrs.update({f"tessera:{k}": v for k, v in record.model_dump().items()
                         if k in LINEAGE_KEYS and v is not None})
    return ds


class EmbeddingsIOManager(ConfigurableIOManager):
    """Embeddings in the published TESSERA Zarr layout (fine, or coarse when ``coarse``)."""

    pipeline: PipelineResource
    product: str = "embeddings"
    coarse: bool = False

    def _schema(self, attrs: dict[str, Any]):
        s = self.pipeline.settings
        family = str(attrs.get("tessera:model_family") or attrs.get("tessera_assets:model_family"))
        sha = attrs.get("tessera:model_sha256") or attrs.get("tessera_assets:model_sha256")
        demo = bool(attrs.get("tessera:model_is_demo") or attrs.get("tessera_assets:demo_weights"))
        common = dict(model_name=f"tessera-{family}", build_version=BUILD_VERSION,
                      model_sha256=sha, model_family=family, demo_weights=demo)
        if self.coarse:
            return coarse_embeddings_schema(s.years, s.tile_size, s.coarse_resolution, **common)
        return embeddings_schema(s.years, s.tile_size, **common)

    def _stored_attrs(self) -> dict[str, Any]:
        s = self.pipeline.settings
        doc = ObjectIO(f"{s.root.rstrip('/')}/{self.product}.zarr", s.storage_options).get_json(
            "zarr.json")
        if doc is None:
            raise FileNotFoundError(f"no {self.product} store under {s.root}: materialise it first")
        return doc.get("attributes", {})

    def _store(self, attrs: dict[str, Any]) -> EmbeddingsStore:
        s = self.pipeline.settings
        return EmbeddingsStore(s.root, self._schema(attrs), self.product, s.storage_options)

    def handle_output(self, context: OutputContext, obj: xr.Dataset) -> None:
        tile, year = _partition(context)
        store = self._store(obj.attrs)
        data = {name: obj[name].data for name in obj.data_vars}
        record = store.write_tile(tile, year, data, _lineage(obj))
        context.add_output_metadata(_region_metadata(store, record))

    def load_input(self, context: InputContext) -> xr.Dataset:
        tile, year = _partition(context)
        return _with_lineage(self._store(self._stored_attrs()), tile, year)

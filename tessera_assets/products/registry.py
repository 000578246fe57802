"""The product registry: one place that maps a product name to its schema, path and store.

Every caller that opens a product's store — IO managers, checks, AOI removal, the CLI — goes
through :func:`open_store`, so the layout of a product is decided once, from the pipeline
settings (root, storage options, tile size, years, coarse resolution).

The embeddings stores also carry the model that wrote them in their root attributes, and a
store refuses writers whose root attributes differ. :class:`ModelStamp` is that identity: a
writer passes the one its output carries, a reader leaves it out and the stamp the store was
created with is read back, so opening a store for reading never conflicts with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tessera_assets import __version__
from tessera_assets.products import attributes as attr
from tessera_assets.products.coarse import (
    coarse_embeddings_schema,
    level_product,
    pyramid_resolutions,
)
from tessera_assets.products.cubes import CUBE_PRODUCTS, cube_schema
from tessera_assets.products.depths import family_depths, stored_depths
from tessera_assets.products.embeddings import EmbeddingsStore, embeddings_schema
from tessera_assets.store import ProductSchema, ZoneStore, store_url
from tessera_assets.store.objects import ObjectIO


class PipelineSettings(Protocol):
    """What the registry reads of the pipeline settings (:class:`tessera_assets.config.
    PipelineSettings` has it): products sit below the settings that compose every package."""

    root: str
    storage_options: dict[str, Any]
    tile_size: int
    years: list[int]
    coarse_resolution: float


EMBEDDING_PRODUCTS: tuple[str, ...] = ("embeddings", "embeddings_coarse")
PRODUCTS: tuple[str, ...] = (*CUBE_PRODUCTS, *EMBEDDING_PRODUCTS)
"""Every zone-store (Zarr) product, in graph order."""
MANIFEST = "scene_manifest"
"""The one product that is not a zone store: a stac-geoparquet file per tile-year."""
BUILD_VERSION = f"tessera_assets-{__version__}"
"""``geoemb:build_version`` of stores this code creates (informational: may differ per writer)."""

__all__ = [
    "BUILD_VERSION",
    "CUBE_PRODUCTS",
    "EMBEDDING_PRODUCTS",
    "MANIFEST",
    "PRODUCTS",
    "ModelStamp",
    "manifest_dir",
    "manifest_url",
    "open_pyramid",
    "open_store",
    "product_schema",
    "store_url",
    "stored_attrs",
]


@dataclass(frozen=True)
class ModelStamp:
    """The model identity an embeddings store records in its root attributes."""

    family: str | None = None
    sha256: str | None = None
    demo_weights: bool = False
    name: str | None = None
    """``geoemb:model``; by default ``tessera-{family}``."""
    build_version: str = BUILD_VERSION

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> ModelStamp:
        """From a store's root attributes or an output's ``tessera:*`` attributes."""
        family = attrs.get(attr.MODEL_FAMILY)
        return cls(
            family=str(family) if family else None,
            sha256=attrs.get(attr.MODEL_SHA256),
            demo_weights=bool(attrs.get(attr.DEMO_WEIGHTS)),
            name=attrs.get(attr.GEOEMB_MODEL),
            build_version=str(attrs.get(attr.GEOEMB_BUILD_VERSION) or BUILD_VERSION),
        )

    def schema_kwargs(self) -> dict[str, Any]:
        name = self.name or (f"tessera-{self.family}" if self.family else "tessera")
        return {
            "model_name": name,
            "build_version": self.build_version,
            "model_sha256": self.sha256,
            "model_family": self.family,
            "demo_weights": self.demo_weights,
        }


def manifest_dir(root: str) -> str:
    """``{root}/scene_manifest``: the folder of every scene manifest."""
    return f"{str(root).rstrip('/')}/{MANIFEST}"


def manifest_url(root: str, tile_id: str, year: int) -> str:
    """``{root}/scene_manifest/{tile}/{year}``, without suffix (``.parquet``/``.json`` follow)."""
    return f"{manifest_dir(root)}/{tile_id}/{int(year)}"


def stored_attrs(product: str, settings: PipelineSettings) -> dict[str, Any]:
    """Root attributes of a product's store as created on disk; empty when it does not exist."""
    doc = ObjectIO(store_url(settings.root, product), settings.storage_options).get_json(
        "zarr.json"
    )
    return (doc or {}).get("attributes", {})


def product_schema(
    product: str, settings: PipelineSettings, model: ModelStamp | None = None
) -> ProductSchema:
    """The layout of ``product`` under ``settings``.

    For the embeddings products ``model`` is the writer's stamp; without one, the stamp the
    store was created with (so a reader matches the store), or a blank one for a new store.
    """
    s = settings
    if product in CUBE_PRODUCTS:
        return cube_schema(product, s.years, s.tile_size)
    if product not in EMBEDDING_PRODUCTS:
        raise KeyError(f"unknown product {product!r}; known: {list(PRODUCTS)}")
    stored = stored_attrs(product, s) if model is None else {}
    stamp = model if model is not None else ModelStamp.from_attrs(stored)
    if product == "embeddings_coarse":
        return coarse_embeddings_schema(
            s.years, s.tile_size, s.coarse_resolution, **stamp.schema_kwargs()
        )
    # v2 writers add the matryoshka prefix arrays; a reader follows what the store declares.
    depths = stored_depths(stored) if stored else family_depths(stamp.family)
    return embeddings_schema(s.years, s.tile_size, depths=depths, **stamp.schema_kwargs())


def open_store(
    product: str, settings: PipelineSettings, model: ModelStamp | None = None
) -> ZoneStore:
    """The store of ``product`` (an :class:`EmbeddingsStore` for the embeddings products)."""
    schema = product_schema(product, settings, model)
    if product in EMBEDDING_PRODUCTS:
        return EmbeddingsStore(settings.root, schema, product, settings.storage_options)
    return ZoneStore(settings.root, product, schema, settings.storage_options)


def open_pyramid(
    settings: PipelineSettings, model: ModelStamp | None = None
) -> list[EmbeddingsStore]:
    """Every level store of the ``embeddings_coarse`` pyramid, finest first; the last is
    :func:`open_store`'s ``embeddings_coarse`` (:mod:`tessera_assets.products.pyramid`)."""
    s, out = settings, []
    for res in pyramid_resolutions(s.tile_size, s.coarse_resolution):
        product = level_product(res, s.coarse_resolution)
        stamp = model if model is not None else ModelStamp.from_attrs(stored_attrs(product, s))
        schema = coarse_embeddings_schema(
            s.years, s.tile_size, res, coarsest=s.coarse_resolution, **stamp.schema_kwargs()
        )
        out.append(EmbeddingsStore(s.root, schema, product, s.storage_options))
    return out

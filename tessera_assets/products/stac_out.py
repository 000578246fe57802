"""STAC out: one Item per committed ``embeddings`` partition, a Collection, and a
stac-geoparquet index that answers "which tile-years are done for this AOI and model".

Items follow the geo-embeddings STAC extension (``emb:*``, schema
:data:`EMB_EXTENSION`): an ``embeddings`` asset pointing at the partition's region of the zone
store (the ``utm{NN}`` group, with the region's window), ``emb:model`` and ``emb:source-data``
links (the checkpoint, the scene manifest the partition was built from), ``emb:quantization``;
the properties carry the lineage of the committed record (manifest digest, model sha256, code
version, config digest, provisional flag).

The index is partition-local like the stores: each partition's Item is a one-row
stac-geoparquet file ``{root}/embeddings_stac/items/utm{NN}/{tile}/{year}.parquet`` (written
with stac-geoparquet's writer, the Collection embedded in its metadata). The embeddings commit
path drops it *before* a rewrite un-commits the region and writes it *after* the lineage record
(:func:`unpublish_partition`, :func:`publish_partition`), so parallel partition runs never
write the same object and the index never lists a region that is not committed (a crash in
between only leaves a partition out until its re-run). rustac's DuckDB reads all files as one
index (:func:`done_partitions`).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fsspec
import stac_geoparquet.arrow as sgpa
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from tessera_assets.grid import Tile
from tessera_assets.products import attributes as attr
from tessera_assets.products.embeddings import N_BANDS, SOURCE_DATA, EmbeddingsStore
from tessera_assets.products.registry import PipelineSettings, manifest_url, open_store
from tessera_assets.store import LineageRecord
from tessera_assets.store.objects import ObjectIO
from tessera_assets.store.schema import zone_group_name

STAC_VERSION = "1.1.0"
EMB_EXTENSION = "https://stac-extensions.github.io/embeddings/v0.0.1/schema.json"
PROCESSING_EXTENSION = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
PROJ_EXTENSION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
COLLECTION_ID = "tessera-embeddings"
STAC_DIR = "embeddings_stac"
ITEMS_DIR = "items"
ZARR_TYPE = "application/vnd.zarr; version=3"
LAYOUT_SPEC = "https://github.com/geo-embeddings/embeddings-zarr-convention/blob/v1/README.md"


class StacError(ValueError):
    """A partition that cannot be described (not committed), or an index that cannot be read."""


def stac_url(root: str) -> str:
    """``{root}/embeddings_stac``: the Collection and the index."""
    return f"{str(root).rstrip('/')}/{STAC_DIR}"


def item_key(tile: Tile, year: int) -> str:
    """The index file of one partition, relative to :func:`stac_url`."""
    return f"{ITEMS_DIR}/{zone_group_name(tile.zone)}/{tile.id}/{int(year)}.parquet"


def item_id(tile_id: str, year: int) -> str:
    return f"{tile_id}_{int(year)}"


def _model_source(record: LineageRecord) -> str:
    return str((record.model_extra or {}).get("model_source") or "")


def collection(store: EmbeddingsStore, years: Sequence[int]) -> dict[str, Any]:
    """The Collection of the embeddings store (the ``emb:*`` collection fields and links)."""
    a = store.schema.attrs
    ys = sorted(int(y) for y in years)
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [EMB_EXTENSION],
        "id": COLLECTION_ID,
        "title": "TESSERA embeddings",
        "description": (
            "Per-pixel TESSERA embeddings (int8 codes × float32 per-pixel scale) in the "
            "published TESSERA Zarr layout, one Item per committed tile-year partition."
            + (
                " DEMO WEIGHTS: seeded random weights, not a trained model."
                if a.get(attr.DEMO_WEIGHTS)
                else ""
            )
        ),
        "license": "other",
        "extent": {
            "spatial": {"bbox": [[-180.0, -80.0, 180.0, 84.0]]},
            "temporal": {
                "interval": [[f"{ys[0]}-01-01T00:00:00Z", f"{ys[-1]}-12-31T23:59:59Z"]]
                if ys
                else [[None, None]]
            },
        },
        "emb:type": "pixel",
        "emb:dimensions": N_BANDS,
        "data_type": "int8",
        "gsd": float(store.schema.resolution),
        "emb:temporal_resolution": "P1Y",
        "emb:fit_for_use": ["classification", "change_detection", "retrieval"],
        "summaries": {
            attr.GEOEMB_MODEL: [a.get(attr.GEOEMB_MODEL)],
            attr.MODEL_FAMILY: [a.get(attr.MODEL_FAMILY)],
            attr.MODEL_SHA256: [a.get(attr.MODEL_SHA256)],
        },
        "item_assets": {
            "embeddings": {
                "type": ZARR_TYPE,
                "roles": ["data"],
                "title": "embeddings zone store (TESSERA layout)",
            }
        },
        "links": [
            {
                "rel": "emb:model",
                "href": str(a.get(attr.GEOEMB_MODEL) or ""),
                "title": f"TESSERA {a.get(attr.MODEL_FAMILY) or ''} checkpoint "
                f"sha256 {a.get(attr.MODEL_SHA256) or 'unknown'}",
            },
            *({"rel": "emb:source-data", "href": href} for href in SOURCE_DATA),
            {"rel": "describedby", "href": LAYOUT_SPEC, "title": "geoemb: Zarr convention"},
        ],
    }


def partition_item(
    store: EmbeddingsStore, tile: Tile, year: int, record: LineageRecord, *, manifest_href: str
) -> dict[str, Any]:
    """The Item of one committed partition, from its lineage record and the store's root
    attributes. Every Item has the same properties with the same types (so the one-row files
    read as one table)."""
    extra = record.model_extra or {}
    footprint = tile.footprint_lonlat()
    region = record.variables.get("embeddings")
    window = {d: list(v) for d, v in (region.index if region else {}).items() if d in ("y", "x")}
    zone = f"{store.url.rstrip('/')}/{zone_group_name(tile.zone)}"
    source = _model_source(record)
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [EMB_EXTENSION, PROCESSING_EXTENSION, PROJ_EXTENSION],
        "id": item_id(tile.id, year),
        "collection": COLLECTION_ID,
        "geometry": mapping(footprint),
        "bbox": list(footprint.bounds),
        "properties": {
            "datetime": None,
            "start_datetime": f"{int(year)}-01-01T00:00:00Z",
            "end_datetime": f"{int(year)}-12-31T23:59:59Z",
            "gsd": float(store.schema.resolution),
            "proj:code": f"EPSG:{tile.epsg}",
            "processing:datetime": record.written_at,
            "emb:quantization": {
                "method": "per_pixel_scale",
                "original_dtype": "float32",
                "quantized_dtype": "int8",
                "link": {
                    "rel": "about",
                    "href": LAYOUT_SPEC,
                    "title": "embedding = int8 code × per-pixel scale (array 'scales')",
                },
            },
            "emb:runtime_parameters": {
                "tile_size": int(store.schema.tile_size),
                "config_digest": record.config_digest,
            },
            attr.key("tile"): tile.id,
            attr.key("year"): int(year),
            attr.key("zone"): int(tile.zone),
            attr.MANIFEST_DIGEST: record.manifest_digest,
            attr.MODEL_SHA256: str(
                record.model_sha256 or store.schema.attrs.get(attr.MODEL_SHA256) or ""
            ),
            attr.MODEL_FAMILY: str(
                extra.get("model_family") or store.schema.attrs.get(attr.MODEL_FAMILY) or ""
            ),
            attr.GEOEMB_MODEL: str(store.schema.attrs.get(attr.GEOEMB_MODEL) or ""),
            attr.CODE_VERSION: record.code_version,
            attr.CONFIG_DIGEST: record.config_digest,
            attr.PROVISIONAL: bool(extra.get("provisional", False)),
            attr.PROVISIONAL_REASON: str(extra.get("provisional_reason") or ""),
            attr.DEMO_WEIGHTS: bool(
                extra.get("demo_weights", store.schema.attrs.get(attr.DEMO_WEIGHTS, False))
            ),
            attr.key("written_at"): record.written_at,
        },
        "links": [
            {"rel": "collection", "href": "../../../collection.json", "type": "application/json"},
            {"rel": "emb:model", "href": source, "title": f"sha256 {record.model_sha256}"},
            {
                "rel": "emb:source-data",
                "href": manifest_href,
                "type": "application/vnd.apache.parquet",
                "title": "scene manifest (stac-geoparquet) the partition was built from",
            },
        ],
        "assets": {
            "embeddings": {
                "href": zone,
                "type": ZARR_TYPE,
                "roles": ["data"],
                "title": f"{tile.id} {year} in the {zone_group_name(tile.zone)} zone group",
                attr.key("window"): window,
                attr.key("year_index"): store.schema.years.index(int(year)),
            },
        },
    }


def _parquet_bytes(item: dict[str, Any], coll: dict[str, Any]) -> bytes:
    """One Item as stac-geoparquet (stac-geoparquet's writer wants a path: a scratch file)."""
    table = sgpa.parse_stac_items_to_arrow([item]).read_all()
    with tempfile.TemporaryDirectory(prefix="tessera-stac-") as scratch:
        path = Path(scratch) / "item.parquet"
        sgpa.to_parquet(table, path, collections={COLLECTION_ID: coll})
        return path.read_bytes()


def publish_partition(
    store: EmbeddingsStore,
    tile: Tile,
    year: int,
    *,
    root: str,
    years: Sequence[int],
    manifest_href: str,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the Item of a committed partition into the index (and the Collection beside it).
    Idempotent: a re-run rewrites the same object. Refuses a partition that is not committed."""
    record = store.read_lineage(tile, year)
    if record is None:
        raise StacError(f"{store.product} {tile.id} {year} is not committed: no STAC Item")
    out = ObjectIO(stac_url(root), storage_options)
    coll = collection(store, years)
    item = partition_item(store, tile, year, record, manifest_href=manifest_href)
    out.put(item_key(tile, year), _parquet_bytes(item, coll))
    out.put_json("collection.json", coll)
    return item


def unpublish_partition(
    tile: Tile, year: int, *, root: str, storage_options: dict[str, Any] | None = None
) -> None:
    """Drop a partition's Item from the index (before a rewrite, on AOI data removal)."""
    ObjectIO(stac_url(root), storage_options).delete_many([item_key(tile, year)])


def indexed_partitions(
    root: str, storage_options: dict[str, Any] | None = None
) -> list[tuple[str, int]]:
    """(tile id, year) of every Item in the index, from the object listing."""
    out = []
    for key in ObjectIO(stac_url(root), storage_options).list_keys(ITEMS_DIR):
        parts = key.split("/")
        if len(parts) == 4 and parts[-1].endswith(".parquet"):
            out.append((parts[2], int(parts[3].removesuffix(".parquet"))))
    return sorted(out)


def _local_index(root: str, storage_options: dict[str, Any] | None, scratch: str) -> Path | None:
    """The local folder of the index files; a remote index is copied to ``scratch`` first
    (rustac's embedded DuckDB reads local files only, offline)."""
    fs, path = fsspec.core.url_to_fs(stac_url(root), **(storage_options or {}))
    items = f"{path.rstrip('/')}/{ITEMS_DIR}"
    if not fs.exists(items):
        return None
    if fs.protocol in ("file", ("file", "local")) or "file" in fs.protocol:
        return Path(items)
    fs.get(items, scratch, recursive=True)
    return Path(scratch)


def search_index(
    root: str,
    *,
    intersects: BaseGeometry | None = None,
    filter: dict[str, Any] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Items of the index (through rustac's DuckDB client, offline) matching a geometry and
    a CQL2-JSON filter."""
    import rustac

    from tessera_assets.catalog.duckdb_extensions import duckdb_extension_directory

    with tempfile.TemporaryDirectory(prefix="tessera-stac-") as scratch:
        folder = _local_index(root, storage_options, scratch)
        if folder is None or not any(folder.rglob("*.parquet")):
            return []
        client = rustac.DuckdbClient(
            extension_directory=str(duckdb_extension_directory(None)), install_extensions=False
        )
        client.execute("SET autoinstall_known_extensions = false")
        try:
            return client.search(
                f"{folder}/**/*.parquet",
                intersects=mapping(intersects) if intersects else None,
                filter=filter,
            )
        except Exception as err:  # rustac/DuckDB raise several types for unreadable files
            raise StacError(
                f"the STAC index under {stac_url(root)} cannot be searched: {err}"
            ) from err


def model_field(model: str) -> str:
    """The Item property a model names: a sha256 (64 hex digits), a family (``v2-nano``,
    ``v1.1``) or else a ``geoemb:model`` name."""
    if re.fullmatch(r"[0-9a-fA-F]{64}", model):
        return attr.MODEL_SHA256
    if re.fullmatch(r"v\d[\w.-]*", model):
        return attr.MODEL_FAMILY
    return attr.GEOEMB_MODEL


def model_filter(model: str | None) -> dict[str, Any] | None:
    """CQL2-JSON equality on :func:`model_field` (one comparison: rustac's DuckDB translation
    of ``or`` inside ``and`` loses its parentheses)."""
    if not model:
        return None
    value = model.lower() if model_field(model) == attr.MODEL_SHA256 else model
    return {"op": "=", "args": [{"property": model_field(model)}, value]}


def done_partitions(
    root: str,
    aoi: BaseGeometry,
    model: str | None = None,
    *,
    years: Sequence[int] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> list[tuple[str, int]]:
    """Which tile-years are done for ``aoi`` (EPSG:4326) and ``model``: (tile id, year) of the
    Items whose footprint intersects the AOI, by that model (any model if None), in ``years``
    (all if None). Provisional partitions count as done (their Items say so)."""
    rows = search_index(
        root, intersects=aoi, filter=model_filter(model), storage_options=storage_options
    )
    want = None if years is None else {int(y) for y in years}
    out = {
        (r["properties"][attr.key("tile")], int(r["properties"][attr.key("year")])) for r in rows
    }
    return sorted(p for p in out if want is None or p[1] in want)


def publish(
    settings: PipelineSettings, store: EmbeddingsStore, tile: Tile, year: int
) -> dict[str, Any]:
    """:func:`publish_partition` under the pipeline settings (root, years, manifest)."""
    return publish_partition(
        store,
        tile,
        year,
        root=settings.root,
        years=settings.years,
        manifest_href=manifest_url(settings.root, tile.id, year) + ".parquet",
        storage_options=settings.storage_options,
    )


def unpublish(settings: PipelineSettings, tile: Tile, year: int) -> None:
    """:func:`unpublish_partition` under the pipeline settings."""
    unpublish_partition(tile, year, root=settings.root, storage_options=settings.storage_options)


def rebuild_index(settings: PipelineSettings) -> tuple[int, int]:
    """Make the index list exactly the committed embeddings partitions (stores written before
    STAC out, or an index lost with a crash between a commit and its Item): publishes every
    committed partition, drops Items of uncommitted ones. Returns (published, dropped)."""
    store = open_store("embeddings", settings)
    committed = store.list_partitions()
    for tile_id, year in committed:
        publish(settings, store, Tile.parse(tile_id), year)
    stale = sorted(
        set(indexed_partitions(settings.root, settings.storage_options)) - set(committed)
    )
    for tile_id, year in stale:
        unpublish(settings, Tile.parse(tile_id), year)
    return len(committed), len(stale)

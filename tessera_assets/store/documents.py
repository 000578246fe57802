"""The objects that define a zone group on disk, derived deterministically from a schema.

Group and array ``zarr.json`` documents, consolidated metadata and coordinate arrays are built
by :func:`build_zone_documents` from the :class:`~tessera_assets.store.schema.ProductSchema`
alone. That determinism is what makes zone creation race-safe without locks: two processes
creating the same zone write byte-identical objects, so whichever write lands last, the store
is the same.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import zarr
from odc.geo.xr import xr_coords
from zarr.codecs import BloscCodec

from tessera_assets.grid import zone_epsg, zone_geobox
from tessera_assets.store.schema import (
    CRS_COORD,
    SPATIAL_DIMS,
    YEAR_DIMS,
    ProductSchema,
    zone_group_name,
)

NAMESPACE = "tessera:"
"""Prefix of every attribute of ours (``geoemb:``/``proj:``/``spatial:`` are conventions)."""
LAYOUT_ATTR = f"{NAMESPACE}layout"
"""Zone-group attribute describing the layout (resolution, tile size, years, schema digest)."""

SPATIAL_CONVENTION = {
    "uuid": "689b58e2-cf7b-45e0-9fff-9cfc0883d6b4",
    "schema_url": "https://raw.githubusercontent.com/zarr-conventions/spatial/refs/tags/v0.1/schema.json",
    "spec_url": "https://github.com/zarr-conventions/spatial/blob/v0.1/README.md",
    "name": "spatial",
    "description": "Spatial coordinate information",
}
PROJ_CONVENTION = {
    "uuid": "f17cb550-5864-4468-aeb7-f3180cfb622f",
    "schema_url": "https://raw.githubusercontent.com/zarr-conventions/proj/refs/tags/v0.1/schema.json",
    "spec_url": "https://github.com/zarr-conventions/proj/blob/v0.1/README.md",
    "name": "proj",
    "description": "Coordinate reference system information for geospatial data",
}


def geo_convention_attrs(
    crs: str,
    transform: list[float],
    bbox: list[float],
    shape: list[int],
    dimensions: tuple[str, str] = SPATIAL_DIMS,
) -> dict[str, Any]:
    """``spatial:``/``proj:`` attributes plus their ``zarr_conventions`` registrations.

    Same keys and registration entries that geotessera's writer produces through zarr-cm
    (spatial r3 / proj r3), built here by hand because zarr-cm is not a dependency; geotessera's
    reader needs ``proj:code`` and ``spatial:transform`` on the zone group.
    """
    return {
        "spatial:dimensions": list(dimensions),
        "spatial:bbox": [float(v) for v in bbox],
        "spatial:transform_type": "affine",
        "spatial:transform": [float(v) for v in transform],
        "spatial:shape": [int(v) for v in shape],
        "spatial:registration": "pixel",
        "zarr_conventions": [SPATIAL_CONVENTION, PROJ_CONVENTION],
        "proj:code": crs,
    }


def coordinate_values(schema: ProductSchema, zone: int) -> dict[str, np.ndarray]:
    """Zone-wide coordinate arrays: pixel-centre x/y (y descending), years, doy/band values.

    x/y come from odc-geo (:func:`odc.geo.xr.xr_coords`), the same coordinates a tile read
    carries, so a zone and its tiles can never disagree.
    """
    geo = xr_coords(zone_geobox(zone, schema.resolution), crs_coord_name=CRS_COORD)
    out: dict[str, np.ndarray] = {
        "x": np.asarray(geo["x"].values, dtype=np.float64),
        "y": np.asarray(geo["y"].values, dtype=np.float64),
        schema.year_dim: np.asarray(schema.years, dtype=np.int32),
    }
    for dim, values in schema.coords.items():
        arr = np.asarray(values)
        out[dim] = arr.astype(np.int32) if arr.dtype.kind in "iu" else arr.astype(str)
    return out


def spatial_ref_attrs(zone: int, resolution: float) -> dict[str, Any]:
    """CF grid-mapping attributes of the zone (crs_wkt, GeoTransform...), as odc-geo writes them."""
    coords = xr_coords(zone_geobox(zone, resolution), crs_coord_name=CRS_COORD)
    return {k: _jsonable(v) for k, v in coords[CRS_COORD].attrs.items()}


def zone_attrs(schema: ProductSchema, zone: int) -> dict[str, Any]:
    """Zone-group attributes: proj/spatial conventions plus our layout description."""
    gbox = zone_geobox(zone, schema.resolution)
    h, w = gbox.shape
    a = gbox.affine
    west, north = a.c, a.f
    attrs = geo_convention_attrs(
        crs=f"EPSG:{zone_epsg(zone)}",
        transform=[a.a, a.b, a.c, a.d, a.e, a.f],
        bbox=[west, north + h * a.e, west + w * a.a, north],
        shape=[h, w],
    )
    attrs[LAYOUT_ATTR] = {
        "resolution_m": schema.resolution,
        "tile_size": schema.tile_size,
        "tile_px": schema.tile_px,
        "years": list(schema.years),
        "schema_digest": schema.digest,
        "shards": "one per tile per time step (per day for doy arrays)",
    }
    return attrs


def build_zone_documents(schema: ProductSchema, zone: int) -> dict[str, bytes]:
    """Every object defining the root group and one zone group, as deterministic bytes.

    Built through zarr itself in memory (so the documents are exactly what zarr would write),
    with consolidated metadata both on the zone group (what ``xr.open_zarr(group=...,
    consolidated=True)`` reads) and on the root (what ``zarr.open_group(root)`` lists).
    Keys are relative to the store root; data chunks of coordinate arrays are included.
    """
    mem = zarr.storage.MemoryStore()
    root = zarr.create_group(mem, zarr_format=3, attributes=_jsonable(schema.attrs))
    group = root.create_group(zone_group_name(zone), attributes=zone_attrs(schema, zone))
    compressor = BloscCodec(**schema.compressor)
    for var in schema.variables:
        group.create_array(
            var.name,
            shape=schema.array_shape(var),
            chunks=schema.inner_chunks(var),
            shards=schema.shard_shape(var),
            dtype=var.np_dtype,
            fill_value=var.fill,
            compressors=compressor,
            dimension_names=list(var.dims),
            attributes={
                **_jsonable(var.attrs),
                "grid_mapping": CRS_COORD,
                "coordinates": CRS_COORD,
            },
        )
    for name, values in coordinate_values(schema, zone).items():
        is_str = values.dtype.kind == "U"
        arr = group.create_array(
            name,
            shape=values.shape,
            chunks=values.shape,  # one object per coordinate: readers always load it whole
            dtype=str if is_str else values.dtype,
            fill_value="" if is_str else 0,
            compressors=compressor,
            dimension_names=[name],
            attributes=_jsonable(
                {**_COORD_ATTRS.get(name, {}), **schema.coord_attrs.get(name, {})}
            ),
        )
        arr[:] = values
    crs = group.create_array(
        CRS_COORD,
        shape=(),
        dtype=np.int32,
        fill_value=0,
        compressors=compressor,
        dimension_names=[],
        attributes=spatial_ref_attrs(zone, schema.resolution),
    )
    crs[...] = zone_epsg(zone)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        zarr.consolidate_metadata(mem, path=zone_group_name(zone))
        zarr.consolidate_metadata(mem)
    return {key: buf.to_bytes() for key, buf in mem._store_dict.items()}


def structural_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The parts of an array ``zarr.json`` that fix its layout (attrs excluded)."""
    keys = ("shape", "data_type", "chunk_grid", "codecs", "fill_value", "dimension_names")
    return {k: doc.get(k) for k in keys}


def describe_layout(doc: dict[str, Any]) -> str:
    """Human-readable shape/shard/chunk/dtype/fill summary of an array document."""
    shard = doc.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape")
    codecs = doc.get("codecs") or [{}]
    inner = codecs[0].get("configuration", {}).get("chunk_shape") if codecs else None
    return (
        f"shape={doc.get('shape')} shards={shard} chunks={inner} dtype={doc.get('data_type')} "
        f"fill={doc.get('fill_value')} dims={doc.get('dimension_names')}"
    )


def root_entries(gname: str, zone_doc: dict[str, Any]) -> dict[str, Any]:
    """A zone's entries in the root's consolidated metadata, in zarr's own (flat) form."""
    children = zone_doc["consolidated_metadata"]["metadata"]
    group = dict(zone_doc)
    group["consolidated_metadata"] = {"kind": "inline", "must_understand": False, "metadata": {}}
    return {gname: group} | {f"{gname}/{k}": v for k, v in children.items()}


_COORD_ATTRS: dict[str, dict[str, Any]] = {
    "x": {"standard_name": "projection_x_coordinate", "long_name": "easting",
          "units": "metre", "axis": "X"},
    "y": {"standard_name": "projection_y_coordinate", "long_name": "northing",
          "units": "metre", "axis": "Y"},
    **{dim: {"long_name": "calendar year"} for dim in YEAR_DIMS},
    "doy": {"long_name": "day of year of the acquisition (1..366)"},
}
"""CF attributes of the coordinate arrays every zone has (a schema's ``coord_attrs`` add to them)."""


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON so attrs are plain types (tuples → lists, numpy → python)."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")

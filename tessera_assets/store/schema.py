"""Array schemas for zone-wide Zarr products and the metadata documents they produce (DESIGN §4).

A product is described once, by a :class:`ProductSchema`: its variables (name, dims, dtype,
fill value, inner chunks), its pre-allocated year axis, its resolution and the tile size of the
grid it is partitioned on. Everything that defines a zone group on disk — group and array
``zarr.json`` documents, consolidated metadata, coordinate arrays — is derived from the schema
*deterministically* by :func:`build_zone_documents`. That determinism is what makes zone
creation race-safe without locks: two processes creating the same zone write byte-identical
objects, so whichever write lands last, the store is the same.

Shards are always one tile × one time step (× one day for ``doy`` products): every partition
owns whole shard objects, so parallel writers never touch the same object.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from typing import Any, Literal

import numpy as np
import zarr
from odc.geo.xr import xr_coords
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from zarr.codecs import BloscCodec

from tessera_assets.grid import PIXEL_SIZE, STORAGE_CHUNK, zone_epsg, zone_geobox, zone_shape_px

YEAR_DIMS = ("year", "time")
"""The pre-allocated year axis is called ``year`` (our products) or ``time`` (TESSERA layout)."""
SLICED_DIMS = ("doy",)
"""Non-spatial dims written one slice per shard (a partition may hold any subset of days)."""
SPATIAL_DIMS = ("y", "x")
CRS_COORD = "spatial_ref"

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


def zone_group_name(zone: int) -> str:
    """``utm{NN}``: the published TESSERA name of a zone's group."""
    zone_epsg(zone)
    return f"utm{zone:02d}"


def is_band_dim(dim: str) -> bool:
    """Band-like dims (``band``, ``band_d16``...) are stored whole inside every shard."""
    return dim == "band" or dim.startswith("band_")


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


class VariableSpec(BaseModel):
    """One zone-wide array of a product.

    ``dims`` start with the year axis, end with ``y, x``; in between optionally ``doy`` (one
    shard per day) and band-like dims (kept whole per shard). ``chunks`` overrides inner chunk
    sizes per dim; by default year/doy chunks are 1, band dims whole and spatial dims
    ``gcd(tile_px, STORAGE_CHUNK)`` (32 at 10 m; smaller for coarse tiles so chunks still
    divide the one-tile shard).
    """

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="strings")

    name: str
    dims: tuple[str, ...]
    dtype: str
    fill_value: float | int | str | bool
    attrs: dict[str, Any] = Field(default_factory=dict)
    chunks: dict[str, int] = Field(default_factory=dict)

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, v: str) -> str:
        dt = np.dtype(v)
        if dt.kind not in "biuf":
            raise ValueError(f"variable dtype must be bool/int/uint/float, got {v!r}")
        return dt.name

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not v or "/" in v or v.startswith(("_", ".")):
            raise ValueError(f"variable name {v!r} must be a plain, non-hidden array name")
        return v

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @property
    def fill(self) -> np.generic:
        """The fill value as a numpy scalar of the variable's dtype (``"inf"``/``"nan"`` accepted)."""
        return self.np_dtype.type(
            float(self.fill_value) if isinstance(self.fill_value, str) else self.fill_value
        )


class ProductSchema(BaseModel):
    """Everything that fixes a product's on-disk layout; see the module docstring.

    ``tile_size`` is in 10 m pixels (:attr:`Tile.size`); at ``resolution`` a tile is
    :attr:`tile_px` pixels wide, which is also the spatial shard size. ``coords`` gives the
    coordinate values of every non-spatial, non-year dim (``doy`` = 1..366, band names...).
    ``attrs`` become the store's root attributes: they describe the whole store (model,
    layout version), so a store refuses writers whose attrs differ; per-run provenance belongs
    in the lineage record instead.
    """

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="strings")

    variables: tuple[VariableSpec, ...]
    years: tuple[int, ...]
    tile_size: int
    resolution: float = PIXEL_SIZE
    year_dim: Literal["year", "time"] = "year"
    coords: dict[str, list[int] | list[str]] = Field(default_factory=dict)
    attrs: dict[str, Any] = Field(default_factory=dict)
    coord_attrs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    informational_attrs: tuple[str, ...] = ("geoemb:build_version",)
    """Root attrs that may differ between writers (the first writer's value is kept), e.g. a
    build version that follows the code version; every other root attr must match."""
    compressor: dict[str, Any] = Field(default_factory=lambda: {"cname": "zstd", "clevel": 3})

    @field_validator("years")
    @classmethod
    def _sorted_years(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or list(v) != sorted(set(v)):
            raise ValueError(f"years must be a non-empty, strictly increasing list, got {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ProductSchema:
        if self.tile_size <= 0 or self.tile_size % STORAGE_CHUNK:
            raise ValueError(f"tile_size must be a positive multiple of {STORAGE_CHUNK} px")
        span = self.tile_size * PIXEL_SIZE
        n = span / self.resolution
        if abs(n - round(n)) > 1e-9 or round(n) < 1:
            raise ValueError(
                f"resolution {self.resolution} m does not divide the tile span {span:g} m; "
                f"valid resolutions: {valid_resolutions(self.tile_size)}"
            )
        names = [v.name for v in self.variables]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"variables must be non-empty with unique names, got {names}")
        reserved = {self.year_dim, *SPATIAL_DIMS, CRS_COORD, *self.coords}
        clash = reserved.intersection(names)
        if clash:
            raise ValueError(f"variable names clash with coordinate names: {sorted(clash)}")
        for dim, values in self.coords.items():
            if dim in (*YEAR_DIMS, *SPATIAL_DIMS):
                raise ValueError(f"coords for {dim!r} are derived, do not pass them")
            if len(values) == 0 or len(set(values)) != len(values):
                raise ValueError(f"coordinate {dim!r} must be non-empty and unique")
        for var in self.variables:
            self._check_variable(var)
        return self

    def _check_variable(self, var: VariableSpec) -> None:
        dims = var.dims
        if len(dims) < 3 or dims[0] != self.year_dim or dims[-2:] != SPATIAL_DIMS:
            raise ValueError(f"{var.name}: dims must be ({self.year_dim}, ..., y, x), got {dims}")
        middle = dims[1:-2]
        if len(set(middle)) != len(middle):
            raise ValueError(f"{var.name}: repeated dims {dims}")
        for d in middle:
            if d not in SLICED_DIMS and not is_band_dim(d):
                raise ValueError(f"{var.name}: unsupported dim {d!r} (use doy or band*)")
            if d not in self.coords:
                raise ValueError(f"{var.name}: dim {d!r} needs coordinate values in coords")
        if list(middle) != sorted(middle, key=lambda d: 0 if d in SLICED_DIMS else 1):
            raise ValueError(f"{var.name}: doy must come before band dims, got {dims}")
        shard = self.shard_shape(var)
        for d, c, s in zip(dims, self.inner_chunks(var), shard, strict=True):
            if c <= 0 or s % c:
                raise ValueError(f"{var.name}: inner chunk {c} along {d} must divide shard {s}")
        try:
            var.fill  # noqa: B018 - validates that the fill value fits the dtype
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"{var.name}: fill value {var.fill_value!r} invalid: {exc}") from exc

    # -- derived layout ----------------------------------------------------------------------
    @property
    def tile_px(self) -> int:
        """Tile width in pixels at this product's resolution (= spatial shard size)."""
        return round(self.tile_size * PIXEL_SIZE / self.resolution)

    @property
    def zone_shape(self) -> tuple[int, int]:
        return zone_shape_px(self.resolution)

    def variable(self, name: str) -> VariableSpec:
        for v in self.variables:
            if v.name == name:
                return v
        raise KeyError(f"no variable {name!r}; have {[v.name for v in self.variables]}")

    def dim_size(self, dim: str) -> int:
        if dim in YEAR_DIMS:
            return len(self.years)
        if dim == "y":
            return self.zone_shape[0]
        if dim == "x":
            return self.zone_shape[1]
        return len(self.coords[dim])

    def array_shape(self, var: VariableSpec) -> tuple[int, ...]:
        return tuple(self.dim_size(d) for d in var.dims)

    def shard_shape(self, var: VariableSpec) -> tuple[int, ...]:
        """One tile × one year (× one day); band dims whole."""
        return tuple(
            self.tile_px if d in SPATIAL_DIMS else self.dim_size(d) if is_band_dim(d) else 1
            for d in var.dims
        )

    def inner_chunks(self, var: VariableSpec) -> tuple[int, ...]:
        default_spatial = math.gcd(self.tile_px, STORAGE_CHUNK)
        out = []
        for d, s in zip(var.dims, self.shard_shape(var), strict=True):
            if d in var.chunks:
                out.append(var.chunks[d])
            elif d in SPATIAL_DIMS:
                out.append(default_spatial)
            else:
                out.append(s)
        return tuple(out)

    @property
    def digest(self) -> str:
        """sha256 of the canonical schema JSON; recorded in zone attrs and lineage."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


def valid_resolutions(tile_size: int) -> list[float]:
    """Resolutions (m) at which a tile of ``tile_size`` 10 m px is a whole number of pixels."""
    return [tile_size * PIXEL_SIZE / n for n in range(tile_size, 0, -1) if tile_size % n == 0]


def coordinate_values(schema: ProductSchema, zone: int) -> dict[str, np.ndarray]:
    """Zone-wide coordinate arrays: pixel-centre x/y (y descending), years, doy/band values."""
    gbox = zone_geobox(zone, schema.resolution)
    h, w = gbox.shape
    aff = gbox.affine
    out: dict[str, np.ndarray] = {
        "x": aff.c + (np.arange(w, dtype=np.float64) + 0.5) * aff.a,
        "y": aff.f + (np.arange(h, dtype=np.float64) + 0.5) * aff.e,
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
    attrs["tessera_assets:layout"] = {
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
                {**_default_coord_attrs(name), **schema.coord_attrs.get(name, {})}
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


def _default_coord_attrs(name: str) -> dict[str, Any]:
    if name == "x":
        return {
            "standard_name": "projection_x_coordinate",
            "long_name": "easting",
            "units": "metre",
            "axis": "X",
        }
    if name == "y":
        return {
            "standard_name": "projection_y_coordinate",
            "long_name": "northing",
            "units": "metre",
            "axis": "Y",
        }
    if name in YEAR_DIMS:
        return {"long_name": "calendar year"}
    if name == "doy":
        return {"long_name": "day of year of the acquisition (1..366)"}
    return {}


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON so attrs are plain types (tuples → lists, numpy → python)."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")

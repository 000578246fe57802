"""Array schemas of zone-wide Zarr products (DESIGN §4).

A product is described once, by a :class:`ProductSchema`: its variables (name, dims, dtype,
fill value, inner chunks), its pre-allocated year axis, its resolution and the tile size of the
grid it is partitioned on. Every on-disk document of a zone is derived from it
(:mod:`tessera_assets.store.documents`), so the schema alone fixes the layout.

Shards are always one tile × one time step (× one day for ``doy`` products): every partition
owns whole shard objects, so parallel writers never touch the same object.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tessera_assets.grid import PIXEL_SIZE, STORAGE_CHUNK, tile_pixels, zone_epsg, zone_shape_px
from tessera_assets.grid import valid_resolutions as valid_resolutions  # re-exported

YEAR_DIMS = ("year", "time")
"""The pre-allocated year axis is called ``year`` (our products) or ``time`` (TESSERA layout)."""
SLICED_DIMS = ("doy",)
"""Non-spatial dims written one slice per shard (a partition may hold any subset of days)."""
SPATIAL_DIMS = ("y", "x")
CRS_COORD = "spatial_ref"


def zone_group_name(zone: int) -> str:
    """``utm{NN}``: the published TESSERA name of a zone's group."""
    zone_epsg(zone)
    return f"utm{zone:02d}"


def is_band_dim(dim: str) -> bool:
    """Band-like dims (``band``, ``band_d16``...) are stored whole inside every shard."""
    return dim == "band" or dim.startswith("band_")


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
        tile_pixels(self.tile_size, self.resolution)  # the grid's rule for both
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

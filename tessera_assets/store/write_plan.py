"""Validating a partition's data against the schema and laying out its shard-sized writes.

Everything here is pure (no I/O): :func:`plan_partition` checks every variable of a tile × year
partition — names, dims, dtype, tile window, coordinates, CRS — *before* the store writes
anything, and returns the list of shard-sized pieces to write. Pieces produce their values
lazily, so a dask cube is computed one day slice at a time rather than whole.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from odc.geo.xr import xr_coords

from tessera_assets.grid import Tile
from tessera_assets.store.schema import (
    SLICED_DIMS,
    SPATIAL_DIMS,
    ProductSchema,
    VariableSpec,
    is_band_dim,
    zone_group_name,
)

PartitionData = xr.Dataset | Mapping[str, Any]


class PartitionDataError(ValueError):
    """Data handed to ``write_tile`` does not fit the tile window or the schema."""


@dataclass(frozen=True)
class Piece:
    """One shard-sized write: the zone-array selection and a callable producing its values."""

    selection: tuple[int | slice, ...]
    values: Callable[[], np.ndarray]


@dataclass(frozen=True)
class PartitionPlan:
    """A validated partition write: pieces per variable and the sliced-dim values written."""

    pieces: dict[str, list[Piece]]
    slices: dict[str, list[Any]]


def check_tile(schema: ProductSchema, tile: Tile) -> None:
    """The tile must be of the store's tile size (one shard per tile)."""
    if tile.size != schema.tile_size:
        raise PartitionDataError(
            f"tile {tile.id} is {tile.size} px but the store is laid out for "
            f"{schema.tile_size} px tiles (one {schema.tile_px} px shard per tile)"
        )


def year_index(schema: ProductSchema, year: int) -> int:
    try:
        return schema.years.index(int(year))
    except ValueError:
        raise PartitionDataError(
            f"year {year} is not on the store's year axis {list(schema.years)}; "
            "the axis is fixed when the store is created"
        ) from None


def plan_partition(
    schema: ProductSchema,
    tile: Tile,
    year: int,
    data: PartitionData,
    coords: Mapping[str, Sequence[Any]] | None = None,
) -> PartitionPlan:
    """Validate a partition's data and lay out its shard-sized writes (no I/O).

    ``data``: an ``xr.Dataset`` or a mapping of variable → numpy/dask array or DataArray, with
    the schema's dims minus the year dim. Every schema variable must be present, nothing else.
    """
    yi = year_index(schema, year)
    check_tile(schema, tile)
    if isinstance(data, xr.Dataset):
        _check_georef(data, tile, schema.resolution)
        arrays: dict[str, Any] = {str(k): data[k] for k in data.data_vars}
    elif isinstance(data, Mapping):
        arrays = dict(data)
    else:
        raise PartitionDataError(f"data must be an xr.Dataset or a mapping, got {type(data)}")
    names = [v.name for v in schema.variables]
    missing = [n for n in names if n not in arrays]
    unknown = sorted(set(arrays) - set(names))
    if missing or unknown:
        raise PartitionDataError(
            f"variables must be exactly {names}; missing {missing}, unknown {unknown}"
        )
    slices: dict[str, list[Any]] = {}
    pieces = {
        var.name: _plan_variable(schema, var, arrays[var.name], tile, yi, coords or {}, slices)
        for var in schema.variables
    }
    return PartitionPlan(pieces=pieces, slices=slices)


def shard_keys(
    schema: ProductSchema, tile: Tile, year: int, slices: Mapping[str, Sequence[Any]]
) -> dict[str, list[str]]:
    """Shard object keys of a partition per variable, for the given sliced-dim values.

    Variables without sliced dims have exactly one shard per partition. Keys follow zarr v3's
    default chunk key encoding (``c/i/j/...``); the shard grid is one tile per shard, so the
    spatial shard indices are the tile's row and column.
    """
    gname = zone_group_name(tile.zone)
    yi = year_index(schema, year)
    out: dict[str, list[str]] = {}
    for var in schema.variables:
        axes: list[list[int]] = []
        for d in var.dims:
            if d == schema.year_dim:
                axes.append([yi])
            elif d == "y":
                axes.append([tile.row])
            elif d == "x":
                axes.append([tile.col])
            elif d in SLICED_DIMS:
                index = {v: i for i, v in enumerate(schema.coords[d])}
                axes.append(sorted(index[v] for v in slices.get(d, []) if v in index))
            else:
                axes.append([0])
        out[var.name] = [
            f"{gname}/{var.name}/c/" + "/".join(str(i) for i in combo)
            for combo in itertools.product(*axes)
        ]
    return out


def _plan_variable(
    schema: ProductSchema,
    var: VariableSpec,
    value: Any,
    tile: Tile,
    yi: int,
    coords: Mapping[str, Sequence[Any]],
    slices: dict[str, list[Any]],
) -> list[Piece]:
    dims = var.dims[1:]
    if isinstance(value, xr.DataArray):
        if set(value.dims) != set(dims):
            raise PartitionDataError(f"{var.name}: dims {value.dims} != expected {dims}")
        _check_georef(value, tile, schema.resolution)
        value = value.transpose(*dims)
        own_coords = {d: value.coords[d].values.tolist() for d in dims if d in value.coords}
        array = value.data
    else:
        own_coords = {}
        array = value if isinstance(value, da.Array) else np.asarray(value)
    if array.ndim != len(dims):
        raise PartitionDataError(
            f"{var.name}: expected {len(dims)} dims {dims}, got shape {array.shape}"
        )
    if np.dtype(array.dtype) != var.np_dtype:
        raise PartitionDataError(f"{var.name}: dtype {array.dtype} != schema dtype {var.dtype}")
    _check_sizes(schema, var, dims, array.shape, own_coords)
    sliced = [d for d in dims if d in SLICED_DIMS]
    positions = {
        d: _slice_positions(schema, var, d, array.shape[dims.index(d)], own_coords, coords, slices)
        for d in sliced
    }
    ys, xs = tile.pixel_window(schema.resolution)
    out: list[Piece] = []
    for combo in itertools.product(*(range(len(positions[d])) for d in sliced)):
        local: list[int | slice] = []
        selection: list[int | slice] = [yi]
        for d in dims:
            if d in sliced:
                k = combo[sliced.index(d)]
                local.append(k)
                selection.append(positions[d][k])
            else:
                local.append(slice(None))
                selection.append(ys if d == "y" else xs if d == "x" else slice(None))
        out.append(Piece(tuple(selection), _materialiser(array, tuple(local))))
    return out


def _check_sizes(
    schema: ProductSchema,
    var: VariableSpec,
    dims: tuple[str, ...],
    shape: tuple[int, ...],
    own_coords: dict[str, list[Any]],
) -> None:
    px = schema.tile_px
    for d, n in zip(dims, shape, strict=True):
        if d in SPATIAL_DIMS and n != px:
            raise PartitionDataError(
                f"{var.name}: {d} size {n} != tile size {px} px at {schema.resolution:g} m"
            )
        if is_band_dim(d):
            if n != len(schema.coords[d]):
                raise PartitionDataError(f"{var.name}: {d} size {n} != {len(schema.coords[d])}")
            if d in own_coords and own_coords[d] != list(schema.coords[d]):
                raise PartitionDataError(f"{var.name}: {d} coordinate differs from the schema's")


def _slice_positions(
    schema: ProductSchema,
    var: VariableSpec,
    dim: str,
    n: int,
    own_coords: dict[str, list[Any]],
    coords: Mapping[str, Sequence[Any]],
    slices: dict[str, list[Any]],
) -> list[int]:
    """Zone-axis indices of a sliced dim's values (from the data, ``coords``, or the full axis);
    records the values in ``slices`` and checks every variable agrees on them."""
    if dim in own_coords:
        values = own_coords[dim]
    elif dim in coords:
        values = list(coords[dim])
    elif n == len(schema.coords[dim]):
        values = list(schema.coords[dim])
    else:
        raise PartitionDataError(
            f"{var.name}: {n} {dim} slices but no {dim} coordinate; pass coords={{'{dim}': [...]}}"
        )
    values = [v.item() if isinstance(v, np.generic) else v for v in values]
    if len(values) != n or len(set(values)) != n:
        raise PartitionDataError(f"{var.name}: {dim} needs {n} unique values, got {values}")
    allowed = {v: i for i, v in enumerate(schema.coords[dim])}
    bad = [v for v in values if v not in allowed]
    if bad:
        raise PartitionDataError(f"{var.name}: {dim} values {bad} not in the store's {dim} axis")
    if dim in slices and slices[dim] != sorted(values):
        raise PartitionDataError(f"{var.name}: {dim} values differ from other variables'")
    slices[dim] = sorted(values)
    return [allowed[v] for v in values]


def _materialiser(array: Any, local: tuple[int | slice, ...]) -> Callable[[], np.ndarray]:
    """Compute one shard-sized piece only when it is written (keeps dask inputs lazy)."""

    def values() -> np.ndarray:
        return np.asarray(array[local])

    return values


def _check_georef(obj: xr.Dataset | xr.DataArray, tile: Tile, resolution: float) -> None:
    """Reject data whose x/y coordinates or CRS are not the tile's (e.g. another zone's tile)."""
    gbox = tile.geobox_at(resolution)
    try:
        crs = obj.odc.crs
    except Exception:  # odc raises various errors for objects without spatial dims
        crs = None
    if crs is not None and crs != gbox.crs:
        raise PartitionDataError(
            f"data CRS {crs} is not tile {tile.id}'s {gbox.crs} (a tile from another zone?)"
        )
    expected = xr_coords(gbox)
    for i, dim in enumerate(SPATIAL_DIMS):
        if dim in obj.coords and obj.sizes.get(dim) == gbox.shape[i]:
            have = np.asarray(obj.coords[dim].values, dtype=np.float64)
            want = expected[dim].values
            if not np.allclose(have, want, rtol=0, atol=resolution * 1e-3):
                raise PartitionDataError(
                    f"data {dim} coordinates ({have[0]:.1f}..{have[-1]:.1f}) are not tile "
                    f"{tile.id}'s ({want[0]:.1f}..{want[-1]:.1f})"
                )

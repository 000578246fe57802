"""Shared helpers for the store tests: small schemas, deterministic data, store snapshots and
the worker that spawned processes run (it must live in an importable module)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr
from odc.geo.xr import xr_coords

from tessera_assets.grid import Tile
from tessera_assets.store import ProductSchema, VariableSpec, ZoneStore
from tessera_assets.store.objects import ObjectIO

TILE_SIZE = 64
YEARS = (2020, 2021, 2022)
BANDS = ["B02", "B03", "B04"]
LINEAGE = {"manifest_digest": "sha256:manifest", "code_version": "0.1.0", "config_digest": "cfg"}
# Two neighbouring 64 px tiles in zone 30 (near 2.5°W 52.2°N) and one in zone 31.
TILE_A = Tile(zone=30, col=834, row=5650, size=TILE_SIZE)
TILE_B = Tile(zone=30, col=835, row=5650, size=TILE_SIZE)
TILE_OTHER_ZONE = Tile(zone=31, col=834, row=5650, size=TILE_SIZE)


def cube_schema(
    years: tuple[int, ...] = YEARS, tile_size: int = TILE_SIZE, **attrs: Any
) -> ProductSchema:
    """A raw-cube-like product: reflectance (doy, band, y, x) and a validity mask (doy, y, x)."""
    return ProductSchema(
        variables=(
            VariableSpec(
                name="refl", dims=("year", "doy", "band", "y", "x"), dtype="uint16", fill_value=0
            ),
            VariableSpec(name="valid", dims=("year", "doy", "y", "x"), dtype="uint8", fill_value=0),
        ),
        years=years,
        tile_size=tile_size,
        coords={"doy": list(range(1, 367)), "band": BANDS},
        attrs={"tessera:product": "test_cube", **attrs},
    )


def cube_data(seed: int, doys: list[int], tile: Tile = TILE_A) -> xr.Dataset:
    """Deterministic non-fill data for a tile window, with georeferenced coords."""
    rng = np.random.default_rng(seed)
    n = len(doys)
    gbox = tile.geobox
    ds = xr.Dataset(
        {
            "refl": (
                ("doy", "band", "y", "x"),
                rng.integers(1, 10_000, (n, len(BANDS), TILE_SIZE, TILE_SIZE), dtype=np.uint16),
            ),
            "valid": (
                ("doy", "y", "x"),
                rng.integers(1, 3, (n, TILE_SIZE, TILE_SIZE), dtype=np.uint8),
            ),
        },
        coords={"doy": doys, "band": BANDS},
    )
    return ds.assign_coords(xr_coords(gbox))


def snapshot(io: ObjectIO) -> dict[str, Any]:
    """Every object of a store: bytes, except lineage JSON with its timestamps removed."""
    out: dict[str, Any] = {}
    for key in io.list_keys(""):
        data = io.get(key)
        if key.startswith("_lineage/"):
            doc = json.loads(data)
            doc.pop("written_at", None)
            doc.pop("started_at", None)
            out[key] = doc
        else:
            out[key] = data
    return out


def data_keys(keys: list[str] | dict[str, Any], var: str) -> set[str]:
    return {k for k in keys if f"/{var}/c/" in k}


def write_worker(
    root: str,
    storage_options: dict[str, Any] | None,
    tile_id: str,
    seed: int,
    doys: list[int],
    products: list[str],
    barrier: Any,
    results: Any,
) -> None:
    """Spawned-process body: for each product, wait for the peer, then write one partition.

    Both processes hit the same fresh store at once, so zone creation races every round;
    ``results`` gets (product, zone group absent when the write started) as evidence.
    """
    tile = Tile.parse(tile_id)
    for product in products:
        barrier.wait(timeout=60)
        store = ZoneStore(root, product, cube_schema(), storage_options)
        absent = store.io.get(f"utm{tile.zone:02d}/zarr.json") is None
        store.write_tile(tile, 2021, cube_data(seed, doys, tile), LINEAGE)
        results.put((product, tile.zone, absent))

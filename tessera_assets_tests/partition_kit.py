"""A small synthetic tile-year written through the real product stores, for the integrity and
crash-safety tests: deterministic per seed (so a re-run can be compared byte for byte with a
clean run), 64 px tiles, and the same ``open_store(...).write_tile`` call the IO manager makes.

:func:`run_partition` is the crash-test child's work (the test forks a process for it, which
skips a fresh interpreter's imports); run as a module, ``python -m tessera_assets_tests.
partition_kit ROOT TILE_INDEX YEAR SEED`` does the same, killed by SIGKILL at the point
``TESSERA_TEST_KILL`` names (see :func:`install_kill_hook`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pystac

from tessera_assets.config import PipelineSettings
from tessera_assets.grid import Tile
from tessera_assets.products.registry import manifest_url, open_store
from tessera_assets.sources.manifest import SceneManifest
from tessera_assets.store import LineageRecord, ZoneStore
from tessera_assets.store.schema import SLICED_DIMS, is_band_dim

TILE_SIZE = 64
YEARS = [2023, 2024]
TILES = [Tile(zone=30, col=834 + i, row=5650, size=TILE_SIZE) for i in range(2)]
PRODUCTS = ("s2_cube", "s2_masked", "embeddings")
LINEAGE = {"manifest_digest": "sha256:m", "code_version": "test", "config_digest": "cfg"}


def settings(root: str) -> PipelineSettings:
    return PipelineSettings(root=root, tile_size=TILE_SIZE, years=YEARS, coarse_resolution=160.0)


def synthetic(store: ZoneStore, seed: int) -> tuple[dict[str, np.ndarray], dict[str, list]]:
    """Deterministic data for every variable of the store's schema (and the doy values).

    Embedding codes reach ±127 in every pixel, as the quantiser's output does."""
    rng = np.random.default_rng(seed)
    schema = store.schema
    days = sorted(rng.choice(np.arange(1, 367), size=3, replace=False).tolist())
    data: dict[str, np.ndarray] = {}
    for var in schema.variables:
        shape = []
        for d in var.dims[1:]:
            if d in SLICED_DIMS:
                shape.append(len(days))
            elif is_band_dim(d):
                shape.append(len(schema.coords[d]))
            else:
                shape.append(schema.tile_px)
        dt = var.np_dtype
        if var.name == "embeddings":
            codes = rng.integers(-126, 127, shape, dtype=np.int8)
            peak = rng.integers(0, shape[0], shape[1:])
            np.put_along_axis(codes, peak[None], 127, axis=0)
            data[var.name] = codes
        elif var.name == "scales":
            data[var.name] = rng.uniform(0.01, 0.9, shape).astype(dt)
        elif dt.kind == "f":
            data[var.name] = rng.normal(size=shape).astype(dt)
        else:
            data[var.name] = rng.integers(1, 100, shape).astype(dt)
    return data, {"doy": days}


def write_product(root: str, product: str, tile: Tile, year: int, seed: int) -> LineageRecord:
    store = open_store(product, settings(root))
    data, coords = synthetic(store, seed + PRODUCTS.index(product))
    return store.write_tile(tile, year, data, LINEAGE, coords=coords)


def scene_manifest(tile: Tile, year: int, seed: int) -> SceneManifest:
    """A small manifest (2–4 S2 scenes, depending on the seed), as ``scene_manifest`` saves."""
    items = []
    for i in range(2 + seed % 3):
        item = pystac.Item(
            id=f"S2_{seed}_{i}",
            geometry={"type": "Point", "coordinates": [-2.5, 52.2]},
            bbox=[-2.5, 52.2, -2.5, 52.2],
            datetime=datetime(year, 1, 1 + i, tzinfo=UTC),
            properties={"tessera:sensor": "s2", "tessera:doy": 1 + i},
            collection="sentinel-2-l2a",
        )
        item.add_asset("B02", pystac.Asset(href=f"file:///scenes/{seed}/{i}.tif"))
        items.append(item)
    return SceneManifest(tile.id, year, items=items)


def write_manifest(root: str, tile: Tile, year: int, seed: int) -> None:
    scene_manifest(tile, year, seed).save(manifest_url(root, tile.id, year))


def load_manifest(root: str, tile: Tile, year: int) -> SceneManifest:
    return SceneManifest.load(manifest_url(root, tile.id, year))


def install_kill_hook(spec: str) -> None:
    """SIGKILL this process at the Nth matching file-system event, deterministically.

    ``spec`` is ``EVENT:SUBSTRING:N``: EVENT is a Python audit event (``open`` for a file opened
    for writing, ``os.rename`` for a rename — zarr's and the store's atomic writes rename a
    temp file into place —, ``os.remove``), SUBSTRING must occur in its path (the target path
    for renames), N counts matches from 1. Audit hooks see every write whatever code does it.
    """
    event, needle, nth = spec.split(":")
    count = 0

    def hook(name: str, args: tuple[Any, ...]) -> None:
        nonlocal count
        if name != event:
            return
        if name == "open":
            path, mode = str(args[0]), args[1]
            if not isinstance(mode, str) or not any(c in mode for c in "wax+"):
                return
        else:
            path = str(args[1] if name == "os.rename" else args[0])
        if needle in path:
            count += 1
            if count == int(nth):
                os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(hook)


def run_partition(
    root: str, tile_index: int, year: int, seed: int, kill: str | None = None
) -> dict[str, str]:
    """Save the scene manifest, then write every product of one tile-year (the crash-test
    child's work); ``kill`` arms :func:`install_kill_hook` first. Returns product →
    ``written_at``."""
    if kill:
        install_kill_hook(kill)
    write_manifest(root, TILES[tile_index], year, seed)
    return {p: write_product(root, p, TILES[tile_index], year, seed).written_at for p in PRODUCTS}


def main(argv: list[str]) -> None:
    root, tile_index, year, seed = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    print(
        json.dumps(run_partition(root, tile_index, year, seed, os.environ.get("TESSERA_TEST_KILL")))
    )


if __name__ == "__main__":
    main(sys.argv[1:])

"""Two processes writing different tiles at once — racing on zone creation too — must produce
the same store (objects and values) as writing them one after the other."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import numpy as np

from tessera_assets.grid import Tile
from tessera_assets.store.zone_store import ZoneStore
from tessera_assets_tests.store_testkit import (
    LINEAGE,
    TILE_A,
    TILE_B,
    TILE_OTHER_ZONE,
    cube_data,
    cube_schema,
    snapshot,
    write_worker,
)

ROUNDS = 2
"""Fresh stores raced per process pair (each round is a new zone-creation race)."""
SAME_ZONE = ((TILE_A, 11, [3, 9, 27]), (TILE_B, 12, [9, 40]))
TWO_ZONES = ((TILE_A, 11, [3, 9, 27]), (TILE_OTHER_ZONE, 13, [5]))

Job = tuple[Tile, int, list[int]]


def run_parallel_and_sequential(
    root_par: str,
    root_seq: str,
    storage_options: dict[str, Any] | None,
    jobs: tuple[Job, ...],
    rounds: int = ROUNDS,
) -> list[tuple[str, int, bool]]:
    """Write ``jobs`` into ROUNDS fresh stores with two racing processes, and sequentially,
    then compare every object and the values read back. Returns the workers' race evidence."""
    products = [f"race{i}" for i in range(rounds)]
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(
            target=write_worker,
            args=(root_par, storage_options, tile.id, seed, doys, products, barrier, results),
        )
        for tile, seed, doys in jobs
    ]
    for p in procs:
        p.start()
    for tile, seed, doys in jobs:  # meanwhile, the sequential reference
        for product in products:
            ZoneStore(root_seq, product, cube_schema(), storage_options).write_tile(
                tile, 2021, cube_data(seed, doys, tile), LINEAGE
            )
    evidence = [results.get(timeout=120) for _ in range(len(jobs) * rounds)]
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0, f"writer process failed with exit code {p.exitcode}"

    zones = sorted({t.zone for t, _, _ in jobs})
    for product in products:
        par = ZoneStore(root_par, product, cube_schema(), storage_options)
        seq = ZoneStore(root_seq, product, cube_schema(), storage_options)
        if len(zones) > 1:
            # Two new zones at the same instant may lose one root listing (documented);
            # the rebuild must give exactly the sequential root.
            assert par.consolidate_root() == zones
        got, want = snapshot(par.io), snapshot(seq.io)
        assert sorted(got) == sorted(want), f"{product}: object keys differ"
        differing = [k for k in want if got[k] != want[k]]
        assert differing == [], f"{product}: objects differ: {differing}"
        for tile, seed, doys in jobs:
            ds = par.read_tile(tile, 2021).compute()
            np.testing.assert_array_equal(
                ds["refl"].values, cube_data(seed, doys, tile)["refl"].values
            )
            np.testing.assert_array_equal(
                ds["valid"].values, cube_data(seed, doys, tile)["valid"].values
            )
            assert par.region_status(tile, 2021).complete
        assert par.list_partitions() == sorted((t.id, 2021) for t, _, _ in jobs)
    return evidence


def test_two_processes_one_zone_match_sequential_writes(tmp_path) -> None:
    evidence = run_parallel_and_sequential(
        str(tmp_path / "par"), str(tmp_path / "seq"), None, SAME_ZONE
    )
    # In at least one round both processes found the zone absent, i.e. both created it.
    both_created = [p for p in {e[0] for e in evidence} if all(a for q, _, a in evidence if q == p)]
    assert both_created, f"zone creation never raced: {evidence}"


def test_two_processes_two_zones_match_sequential_writes(tmp_path) -> None:
    run_parallel_and_sequential(str(tmp_path / "par"), str(tmp_path / "seq"), None, TWO_ZONES)

"""Content hashes in lineage records (issue 13.2): every shard's sha256 is recorded at commit;
the completeness check, every read of a region (store reads, the IO manager's load, the coarse
rebuild) and ``value_sanity`` catch flipped bytes, 0-byte and missing shards. Also the staged
rewrite's refusal when a later write of the same partition starts meanwhile."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from dagster import AssetKey, DagsterInstance, build_input_context

from tessera_assets.defs.checks import audit_completeness, audit_values
from tessera_assets.defs.io_managers import ZoneStoreIOManager
from tessera_assets.defs.partitions import partition_key, tile_year_partitions
from tessera_assets.defs.resources import PipelineResource
from tessera_assets.model.families import clamp_for_family
from tessera_assets.products.coarse import coarse_dataset
from tessera_assets.products.registry import open_store
from tessera_assets.store import ConcurrentWriteError, RegionIntegrityError
from tessera_assets_tests.partition_kit import (
    LINEAGE,
    TILES,
    settings,
    synthetic,
    write_product,
)

TILE, YEAR = TILES[0], 2023


@pytest.fixture
def root(tmp_path: Path) -> str:
    for product in ("s2_cube", "embeddings"):
        for i, tile in enumerate(TILES):
            write_product(str(tmp_path), product, tile, YEAR, seed=10 + i)
    return str(tmp_path)


def _shard(root: str, product: str, variable: str) -> Path:
    store = open_store(product, settings(root))
    key = store.read_lineage(TILE, YEAR).variables[variable].shards[0]
    return Path(root) / f"{product}.zarr" / key


def _flip(path: Path, n: int = 64) -> None:
    data = bytearray(path.read_bytes())
    for i in range(n):
        data[len(data) // 3 + i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_record_lists_the_sha256_of_every_shard(root: str) -> None:
    store = open_store("s2_cube", settings(root))
    record = store.read_lineage(TILE, YEAR)
    region = record.variables["bands"]
    assert len(region.shards) == 3 and set(region.digests) == set(region.shards)
    for key, digest in region.digests.items():
        data = (Path(store.url) / key).read_bytes()
        assert digest == f"sha256:{hashlib.sha256(data).hexdigest()}"
    assert not store.io.list_keys("_staging")  # staged shards were moved into place


def test_flipped_bytes_fail_the_check_and_every_read(root: str) -> None:
    shard = _shard(root, "embeddings", "embeddings")
    _flip(shard)
    key = shard.relative_to(Path(root) / "embeddings.zarr").as_posix()
    store = open_store("embeddings", settings(root))
    outcome = audit_completeness(store, TILE, YEAR)
    assert not outcome.passed
    assert f"{key}: content hash mismatch" in outcome.description
    assert outcome.metadata["shards_corrupt"] == 1
    with pytest.raises(RegionIntegrityError, match="content hash mismatch"):
        store.read_tile(TILE, YEAR)
    with pytest.raises(RegionIntegrityError):
        open_store("embeddings", settings(root)).tile_array(TILE, YEAR, "embeddings")
    # The coarse rebuild streams the fine region through tile_array: it refuses too.
    with pytest.raises(RegionIntegrityError):
        coarse_dataset(
            open_store("embeddings", settings(root)),
            TILE,
            YEAR,
            resolution=160.0,
            clamp=clamp_for_family("v2"),
        )
    # Scales and counts are intact: reading only them still works, and the other tile is fine.
    store.read_tile(TILE, YEAR, ["scales"])
    assert audit_completeness(store, TILES[1], YEAR).passed


def test_zero_byte_shard_fails_completeness_and_value_sanity(root: str) -> None:
    store = open_store("embeddings", settings(root))
    assert audit_values(store, TILE, YEAR, family="v2", manifest=None).passed
    shard = _shard(root, "embeddings", "embeddings")
    shard.write_bytes(b"")
    outcome = audit_completeness(store, TILE, YEAR)
    assert not outcome.passed and "0 bytes" in outcome.description
    values = audit_values(store, TILE, YEAR, family="v2", manifest=None)
    assert not values.passed
    assert "4096 embedded pixels have codes that do not reach ±127" in values.description


def test_missing_shard_fails_completeness(root: str) -> None:
    shard = _shard(root, "s2_cube", "bands")
    shard.unlink()
    outcome = audit_completeness(open_store("s2_cube", settings(root)), TILE, YEAR)
    assert not outcome.passed and "1 of 3 shards of the region are missing" in outcome.description


def test_flipped_s2_cube_shard_never_loads_downstream(root: str) -> None:
    """The IO manager's load (what feeds s2_masked) refuses a region that fails its hashes."""
    s = settings(root)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tiles", [TILE.id])
    manager = ZoneStoreIOManager(
        pipeline=PipelineResource(settings_json=s.model_dump_json()), product="s2_cube"
    )

    def load():
        context = build_input_context(
            asset_key=AssetKey("s2_cube"),
            instance=instance,
            partition_key=str(partition_key(TILE, YEAR)),
            asset_partitions_def=tile_year_partitions(s.years),
        )
        return manager.load_input(context)

    assert load()["bands"].shape[0] == 3
    _flip(_shard(root, "s2_cube", "bands"))
    with pytest.raises(RegionIntegrityError, match="re-materialize the partition"):
        load()


def test_records_without_hashes_are_unverified_but_still_checked_for_empty_shards(
    root: str,
) -> None:
    store = open_store("s2_cube", settings(root))
    path = Path(store.url) / "_lineage" / "utm30" / TILE.id / f"{YEAR}.json"
    doc = json.loads(path.read_text())
    for region in doc["variables"].values():
        region.pop("digests")
    path.write_text(json.dumps(doc))
    outcome = audit_completeness(store, TILE, YEAR)
    assert outcome.passed and "unverified" in outcome.description
    assert outcome.metadata["shards_unverified"] == 3
    store.read_tile(TILE, YEAR).load()  # readable, nothing to compare against
    _shard(root, "s2_cube", "bands").write_bytes(b"")
    assert "0 bytes" in audit_completeness(store, TILE, YEAR).description


def test_an_earlier_writer_refuses_when_a_later_write_started(tmp_path: Path) -> None:
    """Writer A is computing its pieces when writer B writes the same partition in full: A
    stops before touching the region, B's region stands, committed and verified."""
    root = str(tmp_path)
    store_a = open_store("s2_cube", settings(root))
    data_a, coords_a = synthetic(store_a, 1)
    data_b, coords_b = synthetic(store_a, 2)

    fired = []

    def interrupt(block: np.ndarray) -> np.ndarray:  # A's first piece runs B's whole write
        if block.shape[1:] == data_a["bands"].shape[1:] and not fired:  # (not dask's probes)
            fired.append(True)
            open_store("s2_cube", settings(root)).write_tile(
                TILE, YEAR, data_b, LINEAGE, coords=coords_b
            )
        return block

    bands_a = da.from_array(data_a["bands"], chunks=(1, -1, -1, -1)).map_blocks(interrupt)
    with pytest.raises(ConcurrentWriteError, match="another write of this partition started"):
        store_a.write_tile(TILE, YEAR, {"bands": bands_a}, LINEAGE, coords=coords_a)
    store = open_store("s2_cube", settings(root))
    assert audit_completeness(store, TILE, YEAR).passed
    np.testing.assert_array_equal(store.read_tile(TILE, YEAR)["bands"].values, data_b["bands"])
    assert not store.io.list_keys("_staging")

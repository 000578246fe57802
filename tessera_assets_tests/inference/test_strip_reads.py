"""Inference reads each stored chunk of the masked cubes once (issue 14.1): strips are whole
chunk rows, the actors count the bytes they fetch, the run's verification is not repeated per
actor, and the observation counts come back with the strips (the run reads no cube)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from tessera_assets.inference.inputs import masked_inputs
from tessera_assets.inference.strip_reader import RegionChangedError, StripReader
from tessera_assets.inference.strips import observation_counts, strip_bounds, strip_inputs
from tessera_assets.inference.tasks import StripRef
from tessera_assets.products.registry import open_store
from tessera_assets.store.errors import RegionIntegrityError
from tessera_assets_tests.partition_kit import LINEAGE, TILES, settings, synthetic

YEAR = 2024
DAYS = {"ascending": [], "descending": []}


def _write(root: str, product: str, seed: int) -> None:
    store = open_store(product, settings(root))
    data, coords = synthetic(store, seed)
    if product == "s2_masked":
        data["valid"] = (data["valid"] % 2).astype(data["valid"].dtype)  # some not clear
    if product == "s1_calibrated":
        data["codes"][:, :, :8] = 0  # no S1 observation in the top rows
    store.write_tile(TILES[0], YEAR, data, LINEAGE, coords=coords)


@pytest.fixture
def root(tmp_path) -> str:
    root = str(tmp_path / "store")
    _write(root, "s2_masked", 1)
    _write(root, "s1_calibrated", 2)
    return root


def _refs(root: str, rows: int, regions: dict[str, str]) -> list[StripRef]:
    s1 = open_store("s1_calibrated", settings(root)).read_tile(TILES[0], YEAR)
    days = {"ascending": [int(d) for d in s1["doy"].values], "descending": []}
    return [
        StripRef(key, r0, r1, TILES[0].id, YEAR, settings(root).model_dump_json(), days, regions)
        for key, r0, r1 in strip_bounds(TILES[0].size, rows)
    ]


def test_strips_are_whole_chunk_rows(root: str) -> None:
    inputs = masked_inputs(settings(root), TILES[0], YEAR)
    assert inputs.chunk_rows == 64  # 64 px tiles: one 64 px inner chunk (CUBE_INNER_CHUNK)
    assert [inputs.strip_rows(n) for n in (1, 16, 64, 65, 128)] == [64, 64, 64, 128, 128]
    assert set(inputs.regions) == {"s2_masked", "s1_calibrated"}
    assert inputs.region_bytes > 0


def test_each_chunk_is_read_once(root: str) -> None:
    inputs = masked_inputs(settings(root), TILES[0], YEAR)
    reader = StripReader()
    total = sum(reader.read(ref)[1] for ref in _refs(root, inputs.strip_rows(16), inputs.regions))
    # every stored byte of the strips' variables once, plus the shard indexes: never 2x
    assert inputs.region_bytes <= total < 1.2 * inputs.region_bytes


def test_strip_counts_match_the_whole_tile(root: str) -> None:
    s = settings(root)
    inputs = masked_inputs(s, TILES[0], YEAR)
    reader = StripReader()
    strips = [reader.read(ref)[0] for ref in _refs(root, 16, inputs.regions)]
    assert len(strips) == 4
    s2 = open_store("s2_masked", s).read_tile(TILES[0], YEAR)
    s1 = open_store("s1_calibrated", s).read_tile(TILES[0], YEAR)
    whole_s2, whole_s1 = observation_counts(s2, s1)
    width = TILES[0].size
    np.testing.assert_array_equal(np.concatenate([t.n_s2.reshape(-1, width) for t in strips]),
                                  whole_s2)
    np.testing.assert_array_equal(np.concatenate([t.n_s1.reshape(-1, width) for t in strips]),
                                  whole_s1)
    assert whole_s1[:8].max() == 0 and whole_s1[8:].max() > 0


def test_half_chunk_strips_read_the_region_twice(root: str) -> None:
    """Why strips are rounded up to chunk rows: 32-row strips in 64-row chunks fetch every
    chunk twice (the amplification the rounding removes)."""
    inputs = masked_inputs(settings(root), TILES[0], YEAR)
    reader = StripReader()
    total = sum(reader.read(ref)[1] for ref in _refs(root, 32, inputs.regions))
    assert total > 1.9 * inputs.region_bytes


def test_a_region_rewritten_after_verification_is_refused(root: str) -> None:
    inputs = masked_inputs(settings(root), TILES[0], YEAR)
    _write(root, "s2_masked", 3)  # a new commit: new written_at
    with pytest.raises(RegionChangedError, match="rewritten after the run verified it"):
        StripReader().read(_refs(root, 64, inputs.regions)[0])


def test_without_regions_the_reader_verifies_the_hashes(root: str) -> None:
    store = open_store("s2_masked", settings(root))
    record = store.read_lineage(TILES[0], YEAR)
    shard = next(iter(record.variables["bands"].shards))
    path = store.io.local / shard
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RegionIntegrityError):
        StripReader().read(_refs(root, 64, {})[0])


def test_strip_inputs_count_what_the_series_hold() -> None:
    rng = np.random.default_rng(0)
    valid = rng.integers(0, 2, (5, 4, 3)).astype(np.uint8)
    codes = rng.integers(0, 3, (3, 4, 4, 3)).astype(np.int16)
    s2 = xr.Dataset({"bands": (("doy", "band", "y", "x"), np.ones((5, 10, 4, 3), np.uint16)),
                     "valid": (("doy", "y", "x"), valid)}, coords={"doy": np.arange(5) + 1})
    s1 = xr.Dataset({"codes": (("doy", "band", "y", "x"), codes)}, coords={"doy": [3, 9, 20]})
    got = strip_inputs(s2, s1, DAYS, 1, 3)
    assert got.n_s2.tolist() == valid[:, 1:3].sum(axis=0).reshape(-1).tolist()
    expect = ((codes[:, :2, 1:3] != 0).any(axis=1).astype(int)
              + (codes[:, 2:, 1:3] != 0).any(axis=1)).sum(axis=0)
    assert got.n_s1.tolist() == expect.reshape(-1).tolist()

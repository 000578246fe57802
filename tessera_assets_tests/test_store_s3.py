"""The zone store over the real S3 protocol: a moto_server on loopback, started per module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import s3fs
import xarray as xr

from tessera_assets.store import ZoneStore
from tessera_assets_tests.infra.s3 import KEY, SECRET, s3_server
from tessera_assets_tests.store_testkit import (
    LINEAGE,
    TILE_A,
    TILE_B,
    cube_data,
    cube_schema,
    data_keys,
    snapshot,
)
from tessera_assets_tests.test_store_parallel import SAME_ZONE, run_parallel_and_sequential

BUCKET = "tessera-test"


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """storage_options for a fresh bucket on a moto_server bound to 127.0.0.1 (stopped after)."""
    with s3_server(BUCKET) as server:
        yield {"endpoint_url": server.endpoint, "key": KEY, "secret": SECRET}


def _root() -> str:
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"


def test_s3_write_read_rerun_delete(s3) -> None:
    store = ZoneStore(_root(), "cube", cube_schema(), s3)
    a, b = cube_data(1, [5, 10, 15], TILE_A), cube_data(2, [7], TILE_B)
    store.write_tile(TILE_A, 2021, a, LINEAGE)
    store.write_tile(TILE_B, 2021, b, LINEAGE)
    for tile, data in ((TILE_A, a), (TILE_B, b)):
        got = store.read_tile(tile, 2021).compute()
        np.testing.assert_array_equal(got["refl"].values, data["refl"].values)
        assert got.odc.geobox == tile.geobox
        assert store.region_status(tile, 2021).complete
    # The objects really live in the bucket (seen by an independent S3 client).
    listing = s3fs.S3FileSystem(**s3, skip_instance_cache=True).find(
        store.url.removeprefix("s3://")
    )
    assert any(k.endswith(f"_lineage/utm30/{TILE_A.id}/2021.json") for k in listing)

    # Re-run A with other data and fewer days: B untouched, A's old days gone.
    b_before = {k: v for k, v in snapshot(store.io).items() if k.endswith(f"/{TILE_B.col}")}
    new_a = cube_data(3, [10], TILE_A)
    store.write_tile(TILE_A, 2021, new_a, LINEAGE)
    after = snapshot(store.io)
    assert {k: v for k, v in after.items() if k.endswith(f"/{TILE_B.col}")} == b_before
    a_keys = {k for k in data_keys(after, "refl") if k.endswith(f"/{TILE_A.col}")}
    assert a_keys == {f"utm30/refl/c/1/9/0/{TILE_A.row}/{TILE_A.col}"}
    np.testing.assert_array_equal(
        store.read_tile(TILE_A, 2021)["refl"].values, new_a["refl"].values
    )

    # xarray reads the zone straight from S3 with its consolidated metadata.
    ds = xr.open_zarr(store.url, group="utm30", consolidated=True, chunks=None, storage_options=s3)
    assert ds.odc.crs == "EPSG:32630"
    ys, xs = TILE_B.pixel_window()
    np.testing.assert_array_equal(
        ds["refl"].sel(year=2021, doy=7).isel(y=ys, x=xs).values, b["refl"].isel(doy=0).values
    )

    store.delete_tile(TILE_A, 2021)
    assert not store.region_status(TILE_A, 2021).committed
    assert not [k for k in store.io.list_keys("utm30") if k.endswith(f"/{TILE_A.col}")]
    assert store.region_status(TILE_B, 2021).complete


def test_s3_failed_rewrite_keeps_the_committed_region(s3) -> None:
    import dask.array as da

    store = ZoneStore(_root(), "cube", cube_schema(), s3)
    store.write_tile(TILE_B, 2021, cube_data(2, [7], TILE_B), LINEAGE)
    old = cube_data(3, [5, 9], TILE_A)
    store.write_tile(TILE_A, 2021, old, LINEAGE)
    before = snapshot(store.io)
    good = cube_data(1, [5, 10], TILE_A)

    def boom(block, block_info=None):
        if block_info[0]["chunk-location"][0] == 1:
            raise RuntimeError("injected failure")
        return block

    lazy = da.from_array(good["refl"].values, chunks=(1, 3, 64, 64)).map_blocks(
        boom, dtype=np.uint16
    )
    with pytest.raises(RuntimeError, match="injected"):
        store.write_tile(TILE_A, 2021, good.assign(refl=(good["refl"].dims, lazy)), LINEAGE)
    # Staged shards are dropped; the old region stays committed, verified and byte-identical.
    assert snapshot(store.io) == before
    assert store.region_status(TILE_A, 2021, verify=True).complete
    np.testing.assert_array_equal(store.read_tile(TILE_A, 2021)["refl"].values, old["refl"].values)

    store.write_tile(TILE_A, 2021, good, LINEAGE)  # staged, then copied into place on S3
    assert store.region_status(TILE_A, 2021, verify=True).complete
    np.testing.assert_array_equal(store.read_tile(TILE_A, 2021)["refl"].values, good["refl"].values)
    assert not store.io.list_keys("_staging")


def test_s3_two_processes_match_sequential(s3) -> None:
    root = _root()
    run_parallel_and_sequential(f"{root}/par", f"{root}/seq", s3, SAME_ZONE, rounds=1)

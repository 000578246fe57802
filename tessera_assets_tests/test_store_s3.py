"""The zone store over the real S3 protocol: a moto_server on loopback, started per module."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import s3fs
import xarray as xr

from tessera_assets.store import PartitionNotCommittedError, ZoneStore
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _moto_server_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("moto_server")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("moto_server")
    if found:
        return [found]
    return [sys.executable, "-m", "moto.server"]


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """storage_options for a fresh bucket on a moto_server bound to 127.0.0.1 (stopped after)."""
    port = _free_port()
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    proc = subprocess.Popen(
        [*_moto_server_cmd(), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        old_region = os.environ.get("AWS_DEFAULT_REGION")
        os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
        options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
        s3fs.S3FileSystem(**options, skip_instance_cache=True).mkdir(BUCKET)
        yield options
        if old_region is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = old_region
    finally:
        proc.terminate()
        proc.wait(timeout=10)


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


def test_s3_failed_write_leaves_partition_uncommitted(s3) -> None:
    import dask.array as da

    store = ZoneStore(_root(), "cube", cube_schema(), s3)
    store.write_tile(TILE_B, 2021, cube_data(2, [7], TILE_B), LINEAGE)
    b_before = snapshot(store.io)
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
    status = store.region_status(TILE_A, 2021)
    assert not status.committed and status.in_progress
    with pytest.raises(PartitionNotCommittedError):
        store.read_tile(TILE_A, 2021)
    assert {k: v for k, v in snapshot(store.io).items() if k in b_before} == b_before

    store.write_tile(TILE_A, 2021, good, LINEAGE)
    assert store.region_status(TILE_A, 2021).complete


def test_s3_two_processes_match_sequential(s3) -> None:
    root = _root()
    run_parallel_and_sequential(f"{root}/par", f"{root}/seq", s3, SAME_ZONE, rounds=1)

"""Zone store contract (DESIGN §4): region writes, idempotent re-runs, validation, crash safety,
and the TESSERA embeddings layout."""

from __future__ import annotations

import json
import re
import threading

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr
from odc.geo.xr import xr_coords

from tessera_assets.grid import Tile, zone_geobox
from tessera_assets.products.embeddings import EmbeddingsStore, dequantise, embeddings_schema
from tessera_assets.store import (
    PartitionDataError,
    ProductSchema,
    StoreLayoutError,
    VariableSpec,
    ZoneStore,
)
from tessera_assets_tests.store_testkit import (
    BANDS,
    LINEAGE,
    TILE_A,
    TILE_B,
    TILE_OTHER_ZONE,
    cube_data,
    cube_schema,
    data_keys,
    snapshot,
)


@pytest.fixture
def store(tmp_path) -> ZoneStore:
    return ZoneStore(str(tmp_path / "data"), "cube", cube_schema())


def _read(store: ZoneStore, tile: Tile, year: int = 2021) -> xr.Dataset:
    return store.read_tile(tile, year).compute()


def _expected_keys(tile: Tile, doys: list[int], year_idx: int = 1) -> set[str]:
    keys = set()
    for d in doys:
        keys.add(f"utm30/refl/c/{year_idx}/{d - 1}/0/{tile.row}/{tile.col}")
        keys.add(f"utm30/valid/c/{year_idx}/{d - 1}/{tile.row}/{tile.col}")
    return keys


def test_region_writes_touch_only_their_own_shards(store: ZoneStore) -> None:
    a, b = cube_data(1, [5, 10, 15], TILE_A), cube_data(2, [7, 10], TILE_B)
    rec_a = store.write_tile(TILE_A, 2021, a, LINEAGE)
    store.write_tile(TILE_B, 2021, b, LINEAGE)

    for tile, data in ((TILE_A, a), (TILE_B, b)):
        got = _read(store, tile)
        assert got["doy"].values.tolist() == data["doy"].values.tolist()
        np.testing.assert_array_equal(got["refl"].values, data["refl"].values)
        np.testing.assert_array_equal(got["valid"].values, data["valid"].values)
        assert got.odc.geobox == tile.geobox
        assert got["band"].values.tolist() == BANDS

    keys = store.io.list_keys("utm30")
    written = data_keys(keys, "refl") | data_keys(keys, "valid")
    assert written == _expected_keys(TILE_A, [5, 10, 15]) | _expected_keys(TILE_B, [7, 10])
    # The record names exactly the shards it committed.
    assert set(rec_a.variables["refl"].shards) == {
        k for k in _expected_keys(TILE_A, [5, 10, 15]) if "/refl/" in k
    }
    assert rec_a.slices == {"doy": [5, 10, 15]}
    assert rec_a.manifest_digest == LINEAGE["manifest_digest"]
    assert store.list_partitions() == [(TILE_A.id, 2021), (TILE_B.id, 2021)]


def test_rerun_overwrites_exactly_its_region(store: ZoneStore) -> None:
    store.write_tile(TILE_A, 2021, cube_data(1, [5, 10], TILE_A), LINEAGE)
    store.write_tile(TILE_B, 2021, cube_data(2, [5, 10], TILE_B), LINEAGE)
    before = snapshot(store.io)

    new_a = cube_data(99, [5, 10], TILE_A)
    store.write_tile(TILE_A, 2021, new_a, {**LINEAGE, "code_version": "0.2.0"})
    after = snapshot(store.io)

    np.testing.assert_array_equal(_read(store, TILE_A)["refl"].values, new_a["refl"].values)
    changed = {k for k in after if after[k] != before.get(k)}
    a_keys = _expected_keys(TILE_A, [5, 10]) | {f"_lineage/utm30/{TILE_A.id}/2021.json"}
    assert changed == a_keys
    assert set(after) == set(before)  # no stray objects (intent record removed)


def test_rerun_with_fewer_days_leaves_no_stale_slices(store: ZoneStore) -> None:
    store.write_tile(TILE_A, 2021, cube_data(1, [5, 10, 15], TILE_A), LINEAGE)
    store.write_tile(TILE_A, 2021, cube_data(3, [10, 20], TILE_A), LINEAGE)
    keys = store.io.list_keys("utm30")
    assert data_keys(keys, "refl") | data_keys(keys, "valid") == _expected_keys(TILE_A, [10, 20])
    got = _read(store, TILE_A)
    assert got["doy"].values.tolist() == [10, 20]
    status = store.region_status(TILE_A, 2021)
    assert status.complete and not status.in_progress


def test_dict_input_and_dask_input_written_slice_by_slice(store: ZoneStore) -> None:
    """A dask cube is computed one day slice at a time, never whole."""
    refl = np.random.default_rng(4).integers(1, 100, (3, 3, 64, 64), dtype=np.uint16)
    requested: list[tuple[slice, ...]] = []
    lock = threading.Lock()

    class Recording:
        shape, dtype, ndim = refl.shape, refl.dtype, refl.ndim

        def __getitem__(self, key):
            with lock:
                requested.append(key)
            return refl[key]

    lazy = da.from_array(Recording(), chunks=(3, 3, 64, 64), asarray=True)
    valid = np.ones((3, 64, 64), np.uint8)
    store.write_tile(
        TILE_A, 2021, {"refl": lazy, "valid": valid}, LINEAGE, coords={"doy": [1, 2, 3]}
    )
    assert requested, "dask input was never read"
    days_per_read = [1 if isinstance(k[0], int) else k[0].stop - k[0].start for k in requested]
    assert max(days_per_read) == 1, requested  # (0-length reads are dask's meta probes)
    np.testing.assert_array_equal(_read(store, TILE_A)["refl"].values, refl)


def _bad_inputs():
    good = cube_data(1, [5], TILE_A)
    other_zone = cube_data(1, [5], TILE_OTHER_ZONE)
    shifted = cube_data(1, [5], TILE_B)
    yield "wrong shape", TILE_A, 2021, good.isel(x=slice(0, 32)), "x size 32"
    yield "wrong dtype", TILE_A, 2021, good.assign(refl=good["refl"].astype("int32")), "dtype int32"
    yield "tile from another zone", TILE_A, 2021, other_zone, "another zone"
    yield "another tile's coords", TILE_A, 2021, shifted, "coordinates"
    yield "missing variable", TILE_A, 2021, good.drop_vars("valid"), "missing ['valid']"
    yield "unknown variable", TILE_A, 2021, good.assign(extra=good["valid"]), "unknown ['extra']"
    yield "year off the axis", TILE_A, 2030, good, "not on the store's year axis"
    yield (
        "day off the axis",
        TILE_A,
        2021,
        good.assign_coords(doy=[400]),
        "not in the store's doy axis",
    )
    yield "wrong tile size", Tile(30, 417, 2825, 128), 2021, good, "laid out for 64 px tiles"
    yield (
        "wrong band names",
        TILE_A,
        2021,
        good.assign_coords(band=["a", "b", "c"]),
        "band coordinate",
    )


@pytest.mark.parametrize(("case", "tile", "year", "data", "message"), list(_bad_inputs()))
def test_invalid_partitions_rejected_before_any_write(
    store: ZoneStore, case, tile, year, data, message
) -> None:
    with pytest.raises(PartitionDataError, match=re.escape(message)):
        store.write_tile(tile, year, data, LINEAGE)
    assert store.io.list_keys("") == [], f"{case}: something was written"
    # ...and on a store that already holds a partition, nothing changes either.
    store.write_tile(TILE_B, 2021, cube_data(2, [5], TILE_B), LINEAGE)
    before = snapshot(store.io)
    with pytest.raises(PartitionDataError):
        store.write_tile(tile, year, data, LINEAGE)
    assert snapshot(store.io) == before


def test_lineage_requires_provenance(store: ZoneStore) -> None:
    with pytest.raises(ValueError, match="manifest_digest"):
        store.write_tile(
            TILE_A, 2021, cube_data(1, [5]), {"code_version": "x", "config_digest": "y"}
        )
    assert store.io.list_keys("") == []
    with pytest.raises(PartitionDataError, match="set by the store"):
        store.write_tile(TILE_A, 2021, cube_data(1, [5]), {**LINEAGE, "written_at": "yesterday"})
    assert store.io.list_keys("") == []
    record = store.write_tile(TILE_A, 2021, cube_data(1, [5]), {**LINEAGE, "run_id": "r1"})
    assert store.read_lineage(TILE_A, 2021).model_extra == {"run_id": "r1"} == record.model_extra


def _failing_cube(seed: int, doys: list[int], fail_at: int) -> xr.Dataset:
    """Like cube_data, but computing day ``fail_at`` raises (a crash mid-write)."""
    ds = cube_data(seed, doys, TILE_A)

    def boom(block, block_info=None):
        if block_info[0]["chunk-location"][0] == fail_at:
            raise RuntimeError("injected failure")
        return block

    lazy = da.from_array(ds["refl"].values, chunks=(1, 3, 64, 64)).map_blocks(boom, dtype=np.uint16)
    return ds.assign(refl=(ds["refl"].dims, lazy))


def test_failed_rewrite_keeps_the_old_region_and_rerun_repairs(store: ZoneStore) -> None:
    store.write_tile(TILE_B, 2021, cube_data(2, [5, 10], TILE_B), LINEAGE)
    first = cube_data(1, [5, 10, 15], TILE_A)
    store.write_tile(TILE_A, 2021, first, LINEAGE)
    before = snapshot(store.io)

    with pytest.raises(RuntimeError, match="injected"):
        store.write_tile(TILE_A, 2021, _failing_cube(7, [10, 20, 30], fail_at=1), LINEAGE)

    # The rewrite failed while staging: the committed region (both tiles) is byte-identical,
    # still committed and verified, and no staged shard or intent is left behind.
    assert snapshot(store.io) == before
    status = store.region_status(TILE_A, 2021, verify=True)
    assert status.committed and not status.in_progress and status.complete
    np.testing.assert_array_equal(_read(store, TILE_A)["refl"].values, first["refl"].values)
    assert store.region_status(TILE_B, 2021).complete

    # The re-run writes fewer days than either earlier attempt; nothing stale may survive.
    good = cube_data(8, [20], TILE_A)
    store.write_tile(TILE_A, 2021, good, LINEAGE)
    keys = store.io.list_keys("utm30")
    a_data = {
        k
        for k in data_keys(keys, "refl") | data_keys(keys, "valid")
        if k.endswith(f"/{TILE_A.col}")
    }
    assert a_data == _expected_keys(TILE_A, [20])
    np.testing.assert_array_equal(_read(store, TILE_A)["refl"].values, good["refl"].values)
    assert store.region_status(TILE_A, 2021).complete
    assert not store.io.list_keys(f"_lineage/utm30/{TILE_A.id}/2021.intent.json")


def test_region_status_and_delete(store: ZoneStore) -> None:
    store.write_tile(TILE_A, 2021, cube_data(1, [5, 10], TILE_A), LINEAGE)
    store.write_tile(TILE_B, 2021, cube_data(2, [5], TILE_B), LINEAGE)
    status = store.region_status(TILE_A, 2021)
    assert status.complete and status.missing == {}
    assert len(status.expected["refl"]) == 2

    # A shard lost after commit shows up as missing.
    lost = status.expected["valid"][0]
    store.io.delete_many([lost])
    status = store.region_status(TILE_A, 2021)
    assert status.committed and not status.complete and status.missing == {"valid": [lost]}

    b_before = {k: v for k, v in snapshot(store.io).items() if k.endswith(f"/{TILE_B.col}")}
    store.delete_tile(TILE_A, 2021)
    status = store.region_status(TILE_A, 2021)
    assert not status.committed and status.present == {"refl": [], "valid": []}
    keys = store.io.list_keys("")
    assert not [k for k in keys if TILE_A.id in k or k.endswith(f"/{TILE_A.col}")]
    assert {k: v for k, v in snapshot(store.io).items() if k.endswith(f"/{TILE_B.col}")} == b_before
    assert store.list_partitions() == [(TILE_B.id, 2021)]


def test_uncommitted_read_and_unwritten_fill(store: ZoneStore) -> None:
    store.ensure_zone(30)
    ds = store.read_tile(TILE_A, 2021, ["valid"], require_committed=False)
    assert ds.sizes["doy"] == 366 and int(ds["valid"].max()) == 0


def test_existing_store_with_other_layout_is_refused(tmp_path) -> None:
    root = str(tmp_path)
    ZoneStore(root, "cube", cube_schema()).write_tile(TILE_A, 2021, cube_data(1, [5]), LINEAGE)

    cases = {
        "tile_size": cube_schema(tile_size=128),
        "years": cube_schema(years=(2019, 2020, 2021)),
        "tessera:product": cube_schema().model_copy(
            update={"attrs": {"tessera:product": "x"}}
        ),
    }
    for expected, schema in cases.items():
        with pytest.raises(StoreLayoutError, match=expected):
            ZoneStore(root, "cube", schema).ensure_zone(30)

    wider = cube_schema()
    variables = (wider.variables[0].model_copy(update={"dtype": "uint32"}), wider.variables[1])
    with pytest.raises(StoreLayoutError, match="uint32"):
        ZoneStore(root, "cube", wider.model_copy(update={"variables": variables})).ensure_zone(30)
    # A new zone in the same store is still checked against the root attributes.
    with pytest.raises(StoreLayoutError, match="tessera:product"):
        ZoneStore(root, "cube", cases["tessera:product"]).ensure_zone(31)


def test_zone_is_readable_with_xarray_and_odc(store: ZoneStore) -> None:
    store.write_tile(TILE_A, 2021, cube_data(1, [5], TILE_A), LINEAGE)
    store.ensure_zone(31)
    ds = xr.open_zarr(store.url, group="utm30", consolidated=True, chunks=None)
    assert ds.odc.crs == "EPSG:32630"
    assert ds.odc.geobox == zone_geobox(30)
    ys, xs = TILE_A.pixel_window()
    window = ds.isel(y=ys, x=xs)
    expected = xr_coords(TILE_A.geobox)
    np.testing.assert_array_equal(window["x"].values, expected["x"].values)
    np.testing.assert_array_equal(window["y"].values, expected["y"].values)
    assert window.odc.geobox == TILE_A.geobox
    np.testing.assert_array_equal(
        window["refl"].sel(year=2021, doy=5).values, cube_data(1, [5])["refl"].isel(doy=0).values
    )
    # The root lists both zones (consolidated), and the lineage folder is not a zarr node.
    root = zarr.open_group(store.url, mode="r")
    assert sorted(root.group_keys()) == ["utm30", "utm31"]


def test_memory_filesystem_roundtrip() -> None:
    store = ZoneStore("memory://tests-store", "cube", cube_schema())
    data = cube_data(5, [3, 4], TILE_A)
    store.write_tile(TILE_A, 2022, data, LINEAGE)
    got = store.read_tile(TILE_A, 2022).compute()
    np.testing.assert_array_equal(got["refl"].values, data["refl"].values)
    assert store.region_status(TILE_A, 2022).complete
    store.delete_tile(TILE_A, 2022)
    assert not data_keys(store.io.list_keys("utm30"), "refl")


def test_schema_validation_messages() -> None:
    with pytest.raises(ValueError, match="valid resolutions"):
        cube_schema().model_copy(update={}).model_validate(
            {**cube_schema().model_dump(), "resolution": 30.0}
        )
    with pytest.raises(ValueError, match="dims must be"):
        ProductSchema(
            variables=(VariableSpec(name="v", dims=("y", "x"), dtype="uint8", fill_value=0),),
            years=(2020,),
            tile_size=64,
        )
    with pytest.raises(ValueError, match="multiple of 32"):
        cube_schema(tile_size=48)


# ----------------------------------------------------------------------------------------------
# TESSERA embeddings layout
# ----------------------------------------------------------------------------------------------


def _emb_store(root: str, **kw) -> EmbeddingsStore:
    schema = embeddings_schema(
        [2024, 2025],
        64,
        model_name="tessera-v2-small",
        build_version="tessera_assets-store-1",
        model_sha256="ab" * 32,
        model_family="v2-small",
        demo_weights=True,
        **kw,
    )
    return EmbeddingsStore(root, schema)


def _emb_partition(seed: int):
    rng = np.random.default_rng(seed)
    emb = rng.integers(-127, 128, (128, 64, 64), dtype=np.int8)
    scales = rng.uniform(0.002, 0.02, (64, 64)).astype(np.float32)
    scales[:8, :8] = np.nan  # water
    counts = rng.integers(0, 50, (2, 64, 64), dtype=np.uint16)
    return emb, scales, counts


def test_tessera_layout_arrays_and_attrs(tmp_path) -> None:
    store = _emb_store(str(tmp_path), depths=(16,))
    emb, scales, counts = _emb_partition(1)
    store.write_embeddings(
        TILE_A,
        2025,
        embeddings=emb,
        scales=scales,
        s2_obs_count=counts[0],
        s1_obs_count=counts[1],
        lineage={**LINEAGE, "model_sha256": "ab" * 32},
    )
    group = zarr.open_group(store.url, path="utm30", mode="r", use_consolidated=True)
    e, s = group["embeddings"], group["scales"]
    h, w = 1_840_000, 100_000
    assert (e.shape, e.dtype, e.chunks, e.shards) == (
        (2, 128, h, w),
        np.int8,
        (1, 128, 32, 32),
        (1, 128, 64, 64),
    )
    assert (s.shape, s.dtype, s.chunks, s.shards) == (
        (2, h, w),
        np.float32,
        (1, 32, 32),
        (1, 64, 64),
    )
    assert e.fill_value == 0 and np.isposinf(s.fill_value)
    assert e.metadata.dimension_names == ("time", "band", "y", "x")
    assert s.metadata.dimension_names == ("time", "y", "x")
    assert group["embeddings_d16"].shards == (1, 16, 64, 64)
    assert group["embeddings_d16"].metadata.dimension_names == ("time", "band_d16", "y", "x")
    for name in ("s2_obs_count", "s1_obs_count"):
        assert group[name].dtype == np.uint16 and group[name].shards == (1, 64, 64)
    assert group["time"][:].tolist() == [2024, 2025] and group["time"].dtype == np.int32
    assert group["band"][:].tolist() == list(range(128)) and group["band"].dtype == np.int32
    assert group["x"].dtype == np.float64 and group["y"][0] > group["y"][1]
    codec = e.metadata.codecs[0].codecs[1]  # sharding -> [bytes, blosc]
    assert codec.cname.value == "zstd"

    zattrs = dict(group.attrs)
    assert zattrs["proj:code"] == "EPSG:32630"
    assert zattrs["spatial:transform"] == [10.0, 0.0, 0.0, 0.0, -10.0, 9_400_000.0]
    assert zattrs["spatial:dimensions"] == ["y", "x"] and zattrs["spatial:registration"] == "pixel"
    assert zattrs["spatial:shape"] == [h, w]
    assert zattrs["spatial:bbox"] == [0.0, -9_000_000.0, 1_000_000.0, 9_400_000.0]
    assert [c["name"] for c in zattrs["zarr_conventions"]] == ["spatial", "proj"]
    root = zarr.open_group(store.url, mode="r")
    rattrs = dict(root.attrs)
    assert rattrs["geoemb:model"] == "tessera-v2-small"
    assert rattrs["geoemb:dimensions"] == 128
    assert rattrs["geoemb:build_version"] == "tessera_assets-store-1"
    assert rattrs["geoemb:depths"] == [
        {"dimensions": 16, "array": "embeddings_d16"},
        {"dimensions": 128, "array": "embeddings"},
    ]
    assert rattrs["tessera:demo_weights"] is True
    assert rattrs["tessera:model_sha256"] == "ab" * 32
    assert rattrs["zarr_conventions"][0]["name"] == "geoemb:"

    ds = xr.open_zarr(store.url, group="utm30", consolidated=True, chunks=None)
    assert ds.odc.crs == "EPSG:32630"
    window = ds.isel(y=TILE_A.pixel_window()[0], x=TILE_A.pixel_window()[1]).sel(time=2025)
    assert window.odc.geobox == TILE_A.geobox
    np.testing.assert_array_equal(window["embeddings"].values, emb)
    np.testing.assert_array_equal(window["embeddings_d16"].values, emb[:16])
    np.testing.assert_array_equal(window["scales"].values, scales)  # NaN where water
    # Unwritten pixels (another year; the neighbouring tile) read as +inf / 0.
    assert np.isposinf(
        ds["scales"]
        .sel(time=2024)
        .isel(y=TILE_A.pixel_window()[0], x=TILE_A.pixel_window()[1])
        .values
    ).all()
    ys, xs = TILE_B.pixel_window()
    assert np.isposinf(ds["scales"].sel(time=2025).isel(y=ys, x=xs).values).all()
    assert int(abs(ds["embeddings"].sel(time=2025).isel(y=ys, x=xs)).max()) == 0

    deq = store.read_dequantised(TILE_A, 2025).values
    np.testing.assert_array_equal(deq, dequantise(emb, scales))
    assert np.isnan(deq[:, :8, :8]).all() and np.isfinite(deq[:, 8:, 8:]).all()
    lineage = json.loads(store.io.get(f"_lineage/utm30/{TILE_A.id}/2025.json"))
    assert lineage["model_sha256"] == "ab" * 32
    assert lineage["variables"]["embeddings"]["shards"] == [
        f"utm30/embeddings/c/1/0/{TILE_A.row}/{TILE_A.col}"
    ]


def test_build_version_may_change_between_writers(tmp_path) -> None:
    """geoemb:build_version is informational: a newer code version still writes to the store
    (first writer's value kept); the model identity is not."""
    _emb_store(str(tmp_path)).ensure_zone(30)
    newer = embeddings_schema(
        [2024, 2025],
        64,
        model_name="tessera-v2-small",
        build_version="tessera_assets-store-2",
        model_sha256="ab" * 32,
        model_family="v2-small",
        demo_weights=True,
    )
    store = EmbeddingsStore(str(tmp_path), newer)
    store.ensure_zone(30)
    store.ensure_zone(31)
    root = zarr.open_group(store.url, mode="r")
    assert root.attrs["geoemb:build_version"] == "tessera_assets-store-1"
    assert sorted(root.group_keys()) == ["utm30", "utm31"]
    real = newer.model_copy(update={"attrs": {**newer.attrs, "tessera:demo_weights": False}})
    with pytest.raises(StoreLayoutError, match="demo_weights"):
        EmbeddingsStore(str(tmp_path), real).ensure_zone(30)


def test_tessera_store_refuses_other_model(tmp_path) -> None:
    _emb_store(str(tmp_path)).ensure_zone(30)
    other = embeddings_schema(
        [2024, 2025], 64, model_name="tessera-v1.1", build_version="tessera_assets-store-1"
    )
    with pytest.raises(StoreLayoutError, match="geoemb:model"):
        EmbeddingsStore(str(tmp_path), other).ensure_zone(30)

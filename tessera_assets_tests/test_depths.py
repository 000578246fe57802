"""v2 matryoshka depths (geotessera spec zarr-matryoshka-depths.md): v2 stores carry
``embeddings_d4``/``embeddings_d16`` byte-exact prefixes, written before ``embeddings``, and
geotessera 0.11 reads them with ``depth=``; v1 stores carry none."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import zarr
from dagster import build_output_context
from pyproj import Transformer

from tessera_assets.config import PipelineSettings
from tessera_assets.defs.io_managers import ZoneStoreIOManager
from tessera_assets.defs.partitions import partition_key
from tessera_assets.defs.resources import PipelineResource
from tessera_assets.products import attributes as attr
from tessera_assets.products.depths import (
    SPEC_DEPTHS,
    family_depths,
    prefix_mismatches,
    with_prefixes,
)
from tessera_assets.products.registry import ModelStamp, open_store
from tessera_assets.store import PartitionNotCommittedError
from tessera_assets_tests.store_testkit import LINEAGE, TILE_A
from tessera_assets_tests.test_geotessera_compat import _geotessera_python, _lonlat

YEAR = 2024
V2 = ModelStamp(family="v2-nano", sha256="cd" * 32, demo_weights=True)
READER = """
import json, sys
import numpy as np
from geotessera.store import GeoTesseraZarr
store, req, out = sys.argv[1:4]
req = json.load(open(req))
gt = GeoTesseraZarr(store)
res = {"depths": json.dumps({str(k): v for k, v in gt.depths.items()})}
for d in (4, 16, None):
    key = str(d or 128)
    emb, scales, _, _ = gt.read_region_quantized(tuple(req["bbox"]), req["year"], depth=d)
    res["region" + key] = emb
    res["scales" + key] = scales
    res["points" + key] = gt.sample_points([tuple(p) for p in req["points"]], req["year"], depth=d)
np.savez(out, **res)
"""


def _settings(root: Path) -> PipelineSettings:
    return PipelineSettings(root=str(root), tile_size=64, years=[YEAR, YEAR + 1])


def _partition(seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.001, 0.05, (64, 64)).astype(np.float32)
    scales[:4, :4] = np.nan
    return {
        "embeddings": rng.integers(-127, 128, (128, 64, 64), dtype=np.int8),
        "scales": scales,
        "s2_obs_count": np.ones((64, 64), np.uint16),
        "s1_obs_count": np.ones((64, 64), np.uint16),
    }


def _write_through_io_manager(settings: PipelineSettings, data: dict, family: str) -> None:
    """The production write path: the embeddings asset's output dataset → IO manager."""
    import xarray as xr

    ds = xr.Dataset(
        {k: (("band", "y", "x") if v.ndim == 3 else ("y", "x"), v) for k, v in data.items()}
    )
    ds.attrs.update(attr.provenance_attrs(**LINEAGE, model_family=family, model_sha256="cd" * 32))
    manager = ZoneStoreIOManager(
        pipeline=PipelineResource(settings_json=settings.model_dump_json()), product="embeddings"
    )
    manager.handle_output(build_output_context(partition_key=partition_key(TILE_A, YEAR)), ds)


def test_only_v2_families_get_the_spec_depths() -> None:
    assert SPEC_DEPTHS == (4, 16)
    assert family_depths("v2-nano") == family_depths("v2-large") == (4, 16)
    assert family_depths("v1.1") == family_depths("v1.0") == family_depths(None) == ()


def test_v2_store_declares_and_holds_byte_exact_prefixes(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    data = _partition()
    _write_through_io_manager(settings, data, "v2-nano")
    root = zarr.open_group(f"{tmp_path}/embeddings.zarr", mode="r")
    assert root.attrs["geoemb:depths"] == [
        {"dimensions": 4, "array": "embeddings_d4"},
        {"dimensions": 16, "array": "embeddings_d16"},
        {"dimensions": 128, "array": "embeddings"},
    ]
    reader = open_store("embeddings", settings)  # no stamp: follows the stored declaration
    assert reader.depths == [4, 16, 128]
    group = zarr.open_group(reader.url, path="utm30", mode="r")
    assert group["embeddings_d4"].chunks == (1, 4, 64, 64)  # the spec's rule, bounded by the tile
    assert group["embeddings_d16"].shards == (1, 16, 64, 64)
    ds = reader.read_tile(TILE_A, YEAR).compute()
    arrays = {k: ds[k].values for k in ("embeddings", "embeddings_d4", "embeddings_d16")}
    assert prefix_mismatches(arrays, reader.depths) == []
    np.testing.assert_array_equal(arrays["embeddings_d16"], data["embeddings"][:16])
    arrays["embeddings_d4"] = arrays["embeddings_d4"] + np.int8(1)
    assert prefix_mismatches(arrays, reader.depths) == [
        "embeddings_d4 is not the first 4 dimensions of embeddings"
    ]


def test_v1_store_has_no_depths(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _write_through_io_manager(settings, _partition(), "v1.1")
    root = zarr.open_group(f"{tmp_path}/embeddings.zarr", mode="r")
    assert "geoemb:depths" not in root.attrs
    assert sorted(open_store("embeddings", settings).read_tile(TILE_A, YEAR).data_vars) == [
        "embeddings",
        "s1_obs_count",
        "s2_obs_count",
        "scales",
    ]


def test_prefixes_are_written_before_embeddings(tmp_path: Path, monkeypatch) -> None:
    """Shards go out prefixes first, ``embeddings`` after them (an ``embeddings`` shard implies
    its prefixes); a crash while writing ``embeddings`` leaves the partition uncommitted, and
    the re-run completes it."""
    store = open_store("embeddings", _settings(tmp_path), V2)
    store.ensure_zone(TILE_A.zone)
    order: list[str] = []
    real = zarr.Array.__setitem__
    crash = [True]

    def recording(self, selection, value):
        order.append(self.path.split("/")[-1])
        if self.path.endswith("/embeddings") and crash[0]:
            raise OSError("disk gone while writing embeddings")
        return real(self, selection, value)

    monkeypatch.setattr(zarr.Array, "__setitem__", recording)
    data = with_prefixes(_partition(), store.depths)
    with pytest.raises(OSError, match="disk gone"):
        store.write_tile(TILE_A, YEAR, data, LINEAGE)
    assert order == ["embeddings_d4", "embeddings_d16", "embeddings"]
    assert not any("/embeddings/c/" in k for k in store.io.list_keys("utm30"))
    with pytest.raises(PartitionNotCommittedError):
        store.read_tile(TILE_A, YEAR)
    order.clear()
    crash[0] = False
    store.write_tile(TILE_A, YEAR, data, LINEAGE)
    assert order[:3] == ["embeddings_d4", "embeddings_d16", "embeddings"]
    assert store.read_lineage(TILE_A, YEAR) is not None


def test_geotessera_reads_the_depths_byte_exactly(tmp_path: Path) -> None:
    python = _geotessera_python()
    settings = _settings(tmp_path)
    data = _partition()
    _write_through_io_manager(settings, data, "v2-nano")
    west, south, east, north = TILE_A.bounds
    to_ll = Transformer.from_crs(TILE_A.crs, 4326, always_xy=True)
    w, s = to_ll.transform(west + 1, south + 1)
    e, n = to_ll.transform(east - 1, north - 1)
    points = [_lonlat(TILE_A, 20, 10), _lonlat(TILE_A, 50, 40)]
    req = tmp_path / "req.json"
    req.write_text(json.dumps({"year": YEAR, "bbox": [w, s, e, n], "points": points}))
    out = tmp_path / "out.npz"
    proc = subprocess.run(
        [python, "-c", READER, f"{tmp_path}/embeddings.zarr", str(req), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = dict(np.load(out))
    assert json.loads(str(got["depths"])) == {
        "4": "embeddings_d4",
        "16": "embeddings_d16",
        "128": "embeddings",
    }
    emb, scales = data["embeddings"], data["scales"]
    full = got["region128"]
    h, w_px = full.shape[:2]
    assert (h, w_px) == (64, 64), "the bbox is the tile's own window"
    np.testing.assert_array_equal(full.transpose(2, 0, 1), emb)
    for d in (4, 16):
        region = got[f"region{d}"]
        assert region.dtype == np.int8 and region.shape == (64, 64, d)
        np.testing.assert_array_equal(region.transpose(2, 0, 1), emb[:d])  # byte-exact prefix
        np.testing.assert_array_equal(got[f"scales{d}"], got["scales128"])
        np.testing.assert_array_equal(got[f"points{d}"], got["points128"][:, :d])
    np.testing.assert_array_equal(got["scales128"], scales)
    np.testing.assert_array_equal(got["points128"][0], emb[:, 20, 10] * scales[20, 10])

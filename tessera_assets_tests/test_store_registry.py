"""The product registry (name → schema, path, store), the one attribute namespace, the zone
coordinates built by odc-geo, and the one dequantisation."""

from __future__ import annotations

import numpy as np
import pytest

from tessera_assets.config import PipelineSettings
from tessera_assets.grid import zone_geobox
from tessera_assets.products import attributes as attr
from tessera_assets.products.cubes import CUBE_PRODUCTS
from tessera_assets.products.embeddings import EmbeddingsStore, dequantise
from tessera_assets.products.registry import (
    PRODUCTS,
    ModelStamp,
    manifest_url,
    open_store,
    product_schema,
    store_url,
    stored_attrs,
)
from tessera_assets.store import ZoneStore
from tessera_assets.store.documents import coordinate_values
from tessera_assets_tests.store_testkit import LINEAGE, cube_schema


def _settings(root: str) -> PipelineSettings:
    return PipelineSettings(root=root, tile_size=64, years=[2023, 2024], coarse_resolution=160.0)


@pytest.mark.parametrize("zone", [1, 30, 60])
@pytest.mark.parametrize("resolution", [10.0, 80.0])
def test_zone_coordinates_are_the_affine_pixel_centres(zone: int, resolution: float) -> None:
    """xr_coords gives exactly the values the layout has always had (pixel centres, y down)."""
    gbox = zone_geobox(zone, resolution)
    h, w = gbox.shape
    a = gbox.affine
    coords = coordinate_values(cube_schema().model_copy(update={"resolution": resolution}), zone)
    np.testing.assert_array_equal(coords["x"], a.c + (np.arange(w, dtype=np.float64) + 0.5) * a.a)
    np.testing.assert_array_equal(coords["y"], a.f + (np.arange(h, dtype=np.float64) + 0.5) * a.e)
    assert coords["x"].dtype == coords["y"].dtype == np.float64


def test_paths() -> None:
    assert store_url("s3://b/p/", "embeddings") == "s3://b/p/embeddings.zarr"
    assert manifest_url("./data/", "30U_1_2", 2024) == "./data/scene_manifest/30U_1_2/2024"
    assert (*CUBE_PRODUCTS, "embeddings", "embeddings_coarse") == PRODUCTS
    assert PRODUCTS[:3] == ("s2_cube", "s1_cube", "landsat_cube")


def test_open_store_per_product(tmp_path) -> None:
    s = _settings(str(tmp_path))
    for product in PRODUCTS:
        store = open_store(product, s)
        assert store.url == store_url(str(tmp_path), product)
        assert isinstance(store, EmbeddingsStore) == product.startswith("embeddings")
        assert isinstance(store, ZoneStore)
    assert open_store("embeddings_coarse", s).schema.resolution == 160.0
    with pytest.raises(KeyError, match="unknown product"):
        product_schema("nope", s)


def test_readers_take_the_stamp_the_store_was_created_with(tmp_path) -> None:
    s = _settings(str(tmp_path))
    stamp = ModelStamp(family="v2-nano", sha256="ab" * 32, demo_weights=True)
    writer = open_store("embeddings", s, stamp)
    writer.ensure_zone(30)
    root = stored_attrs("embeddings", s)
    assert root[attr.MODEL_FAMILY] == "v2-nano" and root[attr.DEMO_WEIGHTS] is True
    assert root[attr.GEOEMB_MODEL] == "tessera-v2-nano"
    assert ModelStamp.from_attrs(root).schema_kwargs() == stamp.schema_kwargs()
    assert open_store("embeddings", s).schema.digest == writer.schema.digest


def test_one_namespace() -> None:
    names = {k: v for k, v in vars(attr).items() if k.isupper() and isinstance(v, str)}
    assert names, "no attribute names"
    for const, value in names.items():
        prefix = "geoemb:" if const.startswith("GEOEMB_") else "tessera:"
        assert value.startswith(prefix), (const, value)


def test_lineage_round_trip() -> None:
    attrs = {**attr.provenance_attrs(**LINEAGE, provisional=np.bool_(True)), "other": 1}
    lineage = attr.lineage_from_attrs(attrs)
    assert lineage.manifest_digest == LINEAGE["manifest_digest"]
    assert lineage.model_extra == {"provisional": True}
    assert attr.lineage_attrs(lineage) == attr.provenance_attrs(**LINEAGE)
    with pytest.raises(ValueError, match="config_digest"):
        attr.lineage_from_attrs({attr.MANIFEST_DIGEST: "m", attr.CODE_VERSION: "c"})


def test_dequantise_cube_and_rows_agree() -> None:
    rng = np.random.default_rng(1)
    q = rng.integers(-127, 128, (4, 3, 5), dtype=np.int8)  # (band, y, x)
    scales = rng.uniform(0.01, 0.1, (3, 5)).astype(np.float32)
    scales[0, 0], scales[1, 2] = np.nan, np.inf
    cube = dequantise(q, scales)
    rows = dequantise(q.reshape(4, -1).T, scales.ravel())  # (pixel, band)
    np.testing.assert_array_equal(cube.reshape(4, -1).T, rows)
    assert np.isnan(cube[:, 0, 0]).all() and np.isnan(cube[:, 1, 2]).all()
    np.testing.assert_array_equal(cube[:, 2, 4], q[:, 2, 4].astype(np.float32) * scales[2, 4])
    np.testing.assert_array_equal(dequantise(q, scales, axis=0), cube)

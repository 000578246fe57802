"""Validity masks and harmonisation exactly as the model reference states (tessera-model.md §2),
with the per-scene inputs read from the plans the scene manifest records."""

from __future__ import annotations

import copy
import json

import dask.array as da
import numpy as np
import pystac
import pytest
import xarray as xr

from tessera_assets.grid import Tile
from tessera_assets.ingest.cubes import first_valid
from tessera_assets.ingest.harmonise import (
    landsat_reflectance,
    s1_backscatter_from_code,
    s1_code,
    s2_harmonise,
)
from tessera_assets.ingest.prepared_cubes import landsat_masked, landsat_scale_offset
from tessera_assets.ingest.validity import (
    landsat_has_data,
    landsat_qa_mask,
    landsat_valid,
    s1_present,
    s2_valid,
)
from tessera_assets.sources.bands import LANDSAT_BANDS, LANDSAT_QA_BITS
from tessera_assets.sources.manifest import SceneManifest, build_manifest
from tessera_assets.sources.plan_record import PlanNotRecordedError
from tessera_assets_tests.fixtures import stac_fixture_dir

TILE = Tile(zone=13, col=25, row=261, size=64)
LANDSAT_FIXTURE = "earth-search__landsat-c2-l2__LC08_L2SP_033032_20231008_02_T1.json"


def test_scl_invalid_classes() -> None:
    scl = np.arange(12, dtype=np.uint8)
    assert s2_valid(scl).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1]


def test_boa_offset_only_where_dn_reaches_it() -> None:
    dn = np.array([0, 1, 999, 1000, 1001, 5000], np.uint16)
    assert s2_harmonise(dn, 1000).tolist() == [0, 1, 999, 0, 1, 4000]
    assert s2_harmonise(dn, 0).tolist() == dn.tolist()
    assert s2_harmonise(dn, 1000).dtype == np.uint16


def test_s1_code_matches_the_formula_and_missing_rules() -> None:
    x = np.array([1.0, 0.1, 0.01, 0.0, -1.0, np.nan, np.inf, 1e-6, 1e4], np.float32)
    code = s1_code(x)
    assert code.dtype == np.int16
    # (20·log10(x)+50)·200 in float32, truncated to int16 as the official stacker stores it.
    expected = np.trunc((20.0 * np.log10(x[:3]) + 50.0) * 200.0)
    assert code[:3].tolist() == expected.astype(int).tolist()
    assert code[0] == 10000 and abs(int(code[2]) - 2000) <= 1
    assert code[3:7].tolist() == [0, 0, 0, 0]  # non-positive / non-finite → missing
    assert code[7] == 0  # (20·-6+50)·200 < 0 → clipped to 0
    assert code[8] == 26000  # (20·4+50)·200
    back = s1_backscatter_from_code(code[:3])
    # One code step is 1/200 dB, i.e. a relative error below 10**(0.005/20) - 1 ≈ 5.8e-4.
    np.testing.assert_allclose(back, x[:3], rtol=5.8e-4)


def test_landsat_qa_bits() -> None:
    qa = np.array([1, 21824, 21826, 21824 | 8, 21824 | 16, 21824 | 4, 21952], np.uint16)
    # fill, clear land, dilated cloud, cloud, shadow, cirrus, clear water
    assert landsat_valid(qa).tolist() == [0, 1, 0, 0, 0, 0, 1]


def test_landsat_reflectance_scale_offset() -> None:
    dn = np.array([0, 7273, 10909, 43636], np.uint16)
    out = landsat_reflectance(dn, 2.75e-5, -0.2)
    assert out[0] == 0
    np.testing.assert_allclose(out[1:], [0.0000075 * 10000 + 1, 1000, 10000], atol=2)


def test_first_valid_mosaic_rule() -> None:
    # Two granules, one band, 1x3 pixels.
    stack = np.array([[[[10, 11, 0]]], [[[20, 21, 22]]]], np.uint16)
    valid = np.array([[[False, True, False]], [[True, True, False]]])
    has = np.array([[[True, True, False]], [[True, True, True]]])
    out = first_valid(stack, valid, has)
    # pixel 0: first valid is granule 1; pixel 1: granule 0 valid first;
    # pixel 2: none valid, first with data is granule 1.
    assert out[0, 0].tolist() == [20, 11, 22]
    none = first_valid(stack, valid & False, has & False)
    assert none.sum() == 0


def test_landsat_qa_bits_are_defined_once_and_the_mask_follows_them() -> None:
    assert landsat_qa_mask() == landsat_qa_mask(LANDSAT_QA_BITS) == 0b11111
    qa = np.array([1, 21824, 21824 | 4, 21824 | 16], np.uint16)  # fill, clear, cirrus, shadow
    no_cirrus = {k: v for k, v in LANDSAT_QA_BITS.items() if k != "cirrus"}
    assert landsat_valid(qa, no_cirrus).tolist() == [0, 1, 1, 0]
    assert landsat_has_data(qa).tolist() == [False, True, True, True]
    assert s1_present(np.array([0.1, 0.0, -32768.0, np.nan, np.inf])).tolist() == [
        True, False, False, False, False]


# --------------------------------------------------------------------------- recorded plans


def _landsat_manifest() -> SceneManifest:
    doc = json.loads((stac_fixture_dir() / LANDSAT_FIXTURE).read_text())
    twin = copy.deepcopy(doc)
    twin["id"] = twin["id"].replace("033032", "033033")  # the next row: another scene
    items = [pystac.Item.from_dict(d) for d in (doc, twin)]
    return build_manifest(TILE, 2023, {"landsat-c2-l2": items})


def _rewrite_plan(item: pystac.Item, scale: float, offset: float) -> None:
    record = json.loads(item.properties["tessera:load_plan"])
    for band in LANDSAT_BANDS:
        record[band].update(scale=scale, offset=offset)
    item.properties["tessera:load_plan"] = json.dumps(record)


def _landsat_raw_cube(dn: int, qa: int) -> xr.Dataset:
    data = np.zeros((1, len(LANDSAT_BANDS) + 1, 1, 2), np.uint16)
    data[:, :-1] = dn
    data[:, -1] = [21824, qa]
    return xr.Dataset({"bands": (("doy", "band", "y", "x"), da.from_array(data))},
                      coords={"doy": [281], "band": [*LANDSAT_BANDS, "qa_pixel"]})


@pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning")
def test_landsat_masked_uses_the_manifests_recorded_scale_offset_and_qa_bits() -> None:
    manifest = _landsat_manifest()
    assert len(manifest.items) == 2
    assert landsat_scale_offset(manifest) == {b: (2.75e-5, -0.2) for b in LANDSAT_BANDS}
    for item in manifest.items:  # what the manifest records wins over the item's raster:bands
        _rewrite_plan(item, 1e-4, 0.0)
        item.properties["tessera:qa_bits"] = json.dumps({"fill": 0, "cloud": 3})
    out = landsat_masked(_landsat_raw_cube(dn=5000, qa=21824 | 4), manifest).compute()
    assert out["reflectance"].values[0, :, 0, 0].tolist() == [5000] * len(LANDSAT_BANDS)
    assert out["valid"].values[0, 0].tolist() == [1, 1]  # cirrus is not among the bits

    _rewrite_plan(manifest.items[1], 2e-4, 0.0)
    with pytest.raises(ValueError, match="record different scale/offset"):
        landsat_scale_offset(manifest)
    del manifest.items[0].properties["tessera:load_plan"]
    with pytest.raises(PlanNotRecordedError, match="tessera:load_plan"):
        landsat_masked(_landsat_raw_cube(dn=5000, qa=0), manifest)

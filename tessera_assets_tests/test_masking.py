"""Masks and harmonisation exactly as the model reference states (tessera-model.md §2)."""

from __future__ import annotations

import numpy as np

from tessera_assets.ingest.cubes import first_valid
from tessera_assets.ingest.masks import (
    landsat_reflectance,
    landsat_valid,
    s1_backscatter_from_code,
    s1_code,
    s2_harmonise,
    s2_valid,
)


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

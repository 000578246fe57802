"""PixelSeries validation and helpers."""

from __future__ import annotations

import numpy as np
import pytest

from tessera_assets.model import PixelSeries
from tessera_assets_tests.model.helpers import random_series


def _arrays(series: PixelSeries) -> dict[str, np.ndarray]:
    return {
        k: getattr(series, k)
        for k in ("s2_bands", "s2_mask", "s2_doy", "s1_asc", "s1_asc_doy", "s1_desc", "s1_desc_doy")
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("s2_bands", np.zeros((30, 5, 10), np.float32), "uint16"),
        ("s2_bands", np.zeros((30, 5, 9), np.uint16), r"\(T2, N, 10\)"),
        ("s2_mask", np.zeros((30, 4), np.uint8), "s2_mask must be"),
        ("s2_mask", np.full((30, 5), 2, np.uint8), "only 0"),
        ("s2_mask", np.zeros((30, 5), np.float32), "uint8 or bool"),
        ("s2_doy", np.zeros(29, np.uint16), "s2_doy must be"),
        ("s2_doy", np.full(30, 400, np.uint16), r"\[0, 366\]"),
        ("s2_doy", np.ones(30, np.float32), "integers"),
        ("s1_asc", np.zeros((12, 5, 2), np.uint16), "int16"),
        ("s1_desc", np.zeros((10, 5, 3), np.int16), r"\[VV, VH\]"),
        ("s1_asc_doy", np.ones(11, np.uint16), "s1_asc_doy"),
        ("s1_desc", [[1]], "numpy array"),
    ],
)
def test_validation_messages(field, value, message):
    arrays = _arrays(random_series(5))
    arrays[field] = value
    with pytest.raises(ValueError, match=message):
        PixelSeries(**arrays)


def test_bool_mask_and_empty_orbits_are_accepted():
    arrays = _arrays(random_series(3))
    arrays["s2_mask"] = arrays["s2_mask"].astype(bool)
    arrays["s1_asc"] = np.zeros((0, 3, 2), np.int16)
    arrays["s1_asc_doy"] = np.zeros(0, np.uint16)
    series = PixelSeries(**arrays)
    assert series.n_pixels == len(series) == 3


def test_from_npz_and_subset(tmp_path):
    series = random_series(7)
    np.savez(tmp_path / "tile.npz", **_arrays(series), extra=np.arange(3))
    loaded = PixelSeries.from_npz(tmp_path / "tile.npz")
    for k, v in _arrays(series).items():
        np.testing.assert_array_equal(getattr(loaded, k), v)
    sub = loaded.subset(np.array([5, 2]))
    assert sub.n_pixels == 2
    np.testing.assert_array_equal(sub.s2_bands, series.s2_bands[:, [5, 2]])
    np.testing.assert_array_equal(sub.s1_desc, series.s1_desc[:, [5, 2]])
    np.testing.assert_array_equal(sub.s2_doy, series.s2_doy)
    assert loaded.subset(slice(1, 4)).n_pixels == 3


def test_from_npz_reports_missing_arrays(tmp_path):
    np.savez(tmp_path / "bad.npz", s2_bands=np.zeros((1, 1, 10), np.uint16))
    with pytest.raises(ValueError, match="lacks arrays"):
        PixelSeries.from_npz(tmp_path / "bad.npz")


def test_validity_helpers():
    series = random_series(4)
    assert not series.s2_has_data()[0] and series.s2_has_data()[1:].all()
    va, vd = series.s1_valid()
    assert va.shape == (12, 4) and vd.shape == (10, 4)
    assert not va[:, 0].any() and not vd[:, 1].any()
    empty = PixelSeries.empty(3, t2=2)
    assert empty.n_pixels == 3 and not empty.s2_has_data().any()

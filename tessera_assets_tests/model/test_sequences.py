"""Sequence-building rules beyond what the golden cases pin (large N, batching, edge cases)."""

from __future__ import annotations

import numpy as np
import pytest

from tessera_assets.model import PixelSeries, build_batches, build_groups_for, embedded_pixels
from tessera_assets.model.sequences import (
    bin_v2,
    bin_v11,
    pad_pattern_v2,
    resample_indices_v11,
)
from tessera_assets_tests.model.helpers import random_series


def test_bins():
    n = np.array([0, 1, 7, 8, 9, 255, 256, 257, 999])
    assert bin_v11(n).tolist() == [8, 8, 8, 8, 16, 256, 256, 256, 256]
    assert bin_v2(n).tolist() == [0, 8, 8, 8, 16, 256, 256, 256, 256]


def test_resample_rules_documented_cases():
    # v1.1: upsampling keeps all n in order and appends evenly spaced duplicates
    assert resample_indices_v11(5, 8).tolist() == [0, 1, 2, 3, 4, 1, 2, 3]
    assert resample_indices_v11(3, 3).tolist() == [0, 1, 2]
    # downsampling takes the middle of each near-equal chunk
    assert resample_indices_v11(10, 4).tolist() == [1, 4, 7, 9]
    # v2: truncated linspace when n >= target; chunk middles when remain <= n; modulo otherwise
    assert pad_pattern_v2(10, 4).tolist() == [0, 3, 6, 9]
    assert pad_pattern_v2(5, 8).tolist() == [0, 1, 2, 3, 4, 1, 3, 4]
    assert pad_pattern_v2(2, 8).tolist() == [0, 1, 0, 1, 0, 1, 0, 1]
    for n in range(1, 300):
        for rule in (resample_indices_v11, pad_pattern_v2):
            target = int(bin_v11(np.array([n]))[0])
            idx = rule(n, target)
            assert len(idx) == target and idx.min() >= 0 and idx.max() < n
            if n <= target:
                assert idx[:n].tolist() == list(range(n))


@pytest.mark.parametrize("family", ["v1.1", "v2-nano"])
def test_batch_size_only_splits_buckets(family):
    series = random_series(300, seed=1)
    whole = list(build_groups_for(family, series, batch_size=None))
    split = list(build_groups_for(family, series, batch_size=7))
    assert all(len(g) <= 7 for g in split)
    assert len(split) > len(whole)
    cat = lambda gs, f: np.concatenate([getattr(g, f).reshape(len(g), -1) for g in gs])  # noqa: E731
    by_bins = lambda gs: sorted({g.bins for g in gs})  # noqa: E731
    assert by_bins(whole) == by_bins(split)
    for field in ("pixel_index", "s2", "s1", "s2_time_index", "s1_time_index"):
        for bins in by_bins(whole):
            a = cat([g for g in whole if g.bins == bins], field)
            b = cat([g for g in split if g.bins == bins], field)
            np.testing.assert_array_equal(a, b)


def test_v10_rng_protocol_spans_official_batches():
    """Beyond 1024 kept pixels the official code draws S2 then S1 per batch of 1024."""
    series = random_series(1100, seed=2, t2=50, ta=20, td=20)
    groups = list(build_groups_for("v1.0", series, batch_size=None, seed=7))
    assert len(groups) == 1
    g = groups[0]
    keep = np.flatnonzero(np.any(series.s2_bands != 0, axis=(0, 2)))
    np.testing.assert_array_equal(g.pixel_index, keep)

    rs = np.random.RandomState(7)
    mask = series.s2_mask.T.astype(bool)
    s1 = np.concatenate([series.s1_asc, series.s1_desc]).transpose(1, 0, 2)
    expected_s2, expected_s1 = [], []
    for start in range(0, len(keep), 1024):
        batch = keep[start : start + 1024]
        for p in batch:
            valid = np.flatnonzero(mask[p]) if mask[p].any() else np.arange(mask.shape[1])
            expected_s2.append(np.sort(rs.choice(valid, 40, replace=len(valid) < 40)))
        for p in batch:
            ok = np.any(s1[p] != 0, axis=1)
            valid = np.flatnonzero(ok) if ok.any() else np.arange(len(ok))
            expected_s1.append(np.sort(rs.choice(valid, 40, replace=len(valid) < 40)))
    np.testing.assert_array_equal(g.s2_time_index, np.stack(expected_s2))
    np.testing.assert_array_equal(g.s1_time_index, np.stack(expected_s1))

    rebatched = list(build_groups_for("v1.0", series, batch_size=300, seed=7))
    assert [len(x) for x in rebatched] == [300, 300, 300, len(keep) - 900]
    np.testing.assert_array_equal(
        np.concatenate([x.s2_time_index for x in rebatched]), g.s2_time_index
    )
    np.testing.assert_array_equal(np.concatenate([x.s1 for x in rebatched]), g.s1)


def test_v10_seed_none_is_random_and_seed_is_reproducible():
    series = random_series(20, seed=3)
    a = next(build_groups_for("v1.0", series, seed=11)).s2_time_index
    b = next(build_groups_for("v1.0", series, seed=11)).s2_time_index
    c = next(build_groups_for("v1.0", series, seed=12)).s2_time_index
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_v10_dummy_s1_for_a_missing_orbit():
    series = random_series(6, seed=4, ta=0, td=10)
    g = next(build_groups_for("v1.0", series, seed=0))
    # the empty ascending orbit becomes one zero step at DOY 180: index 0 of the merged stream,
    # descending step t becomes index 1 + t
    has_s1 = g.pixel_index >= 2
    assert np.all(g.s1_time_index[has_s1] >= 1)
    no_s1 = g.pixel_index == 1  # no valid S1: every merged step is a candidate
    idx = g.s1_time_index[no_s1]
    assert idx.min() >= 0 and idx.max() <= 10
    dummy = g.s1[no_s1][idx == 0]
    assert np.all(dummy[:, 2] == 180)
    np.testing.assert_allclose(dummy[:, :2], [[-2.9307, -1.7402]] * len(dummy), atol=1e-4)


def test_modalities_without_observations():
    series = random_series(10, seed=5)
    v11 = {
        int(p): g for g in build_groups_for("v1.1", series, official=True) for p in g.pixel_index
    }
    g = v11[1]  # no clear S2 and no S1: zero blocks of length 8
    row = list(g.pixel_index).index(1)
    assert g.bins == (8, 8)
    assert np.all(g.s2[row] == 0) and np.all(g.s1[row] == 0)
    assert np.all(g.s2_time_index[row] == -1) and np.all(g.s1_time_index[row] == -1)
    assert 0 in v11  # official v1.1 runs the nodata pixel too
    assert 0 not in {int(p) for g in build_groups_for("v1.1", series) for p in g.pixel_index}
    v2 = [int(p) for g in build_groups_for("v2", series) for p in g.pixel_index]
    assert 0 not in v2 and 1 not in v2


def test_embedded_pixels_rules():
    series = random_series(5, seed=6)
    assert embedded_pixels("v1.0", series).tolist() == [False, True, True, True, True]
    assert embedded_pixels("v1.1", series, official=True).all()
    assert embedded_pixels("v1.1", series).tolist() == [False, True, True, True, True]
    assert embedded_pixels("v2", series).tolist()[:2] == [False, False]


def test_empty_inputs():
    for family in ("v1.0", "v1.1", "v2"):
        assert list(build_batches(family, PixelSeries.empty(0, t2=3))) == []
        assert list(build_batches(family, PixelSeries.empty(4, t2=0, ta=2))) == []


def test_build_batches_yields_model_inputs():
    series = random_series(40, seed=8)
    for pix, s2, s1 in build_batches("v2-nano", series, batch_size=16):
        assert s2.dtype == s1.dtype == np.float32
        assert s2.shape[0] == s1.shape[0] == len(pix) <= 16
        assert s2.shape[2] == 11 and s1.shape[2] == 3
        assert np.all(s2[..., 10] >= 0) and np.all(s2[..., 10] <= 366)


def test_norm_sets_change_inputs():
    series = random_series(10, seed=9)
    mpc = list(build_groups_for("v1.1", series, norm="mpc", batch_size=None))
    aws = list(build_groups_for("v1.1", series, norm="aws", batch_size=None))
    assert [g.bins for g in mpc] == [g.bins for g in aws]
    for a, b in zip(mpc, aws, strict=True):
        np.testing.assert_array_equal(a.s2_time_index, b.s2_time_index)
        np.testing.assert_array_equal(a.s2[..., 10], b.s2[..., 10])
        real = a.s2_time_index >= 0
        if real.any():
            assert not np.allclose(a.s2[real][:, :10], b.s2[real][:, :10])

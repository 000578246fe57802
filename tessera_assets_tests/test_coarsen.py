"""Coarsened embeddings: exact small examples, NaN/+inf handling, renormalisation, clamps,
factor validation, and a coarse store partition end to end."""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import pytest
import zarr

from tessera_assets.model.families import V1_CLAMP, V2_CLAMP, clamp_for_family
from tessera_assets.products import coarse as coarsen_mod
from tessera_assets.products.coarse import (
    coarse_embeddings_schema,
    coarsen_embeddings,
    coarsen_factor,
    coarsen_levels,
    coarsen_partition,
)
from tessera_assets.products.embeddings import EmbeddingsStore, dequantise, embeddings_schema
from tessera_assets_tests.store_testkit import LINEAGE, TILE_A

NAN, INF = np.float32("nan"), np.float32("inf")


def test_hand_computed_block() -> None:
    """Two valid pixels x1 = 127·0.01·e1 = (1.27, 0) and x2 = 127·0.03·e2 = (0, 3.81), two water.

    mean = (0.635, 1.905) points along (1, 3); its norm is rescaled to the mean norm
    (1.27 + 3.81) / 2 = 2.54, giving v = 2.54·(1, 3)/√10 = (0.80322, 2.40966);
    scale = 2.40966 / 127 = 0.0189737 and q = (rint(42.33), 127) = (42, 127).
    """
    emb = np.array([[[127, 0], [5, 5]], [[0, 127], [5, 5]]], dtype=np.int8)  # (B=2, 2, 2)
    scales = np.array([[0.01, 0.03], [NAN, NAN]], dtype=np.float32)
    q, s, n = coarsen_embeddings(emb, scales, 2)
    assert q.shape == (2, 1, 1) and q.dtype == np.int8
    assert q[:, 0, 0].tolist() == [42, 127]
    assert s.dtype == np.float32
    assert s[0, 0] == pytest.approx(2.54 * 3 / math.sqrt(10) / 127, rel=1e-6)
    assert n.tolist() == [[2]]
    deq = q[:, 0, 0] * s[0, 0]
    assert float(np.linalg.norm(deq)) == pytest.approx(2.54, rel=1e-2)


def test_validity_semantics_per_block() -> None:
    """Identical valid vectors survive exactly; no valid pixel → NaN (or +inf if never written)."""
    vec = np.array([127, -64], dtype=np.int8)
    emb = np.zeros((2, 2, 8), dtype=np.int8)
    emb[:, :, 0:2] = vec[:, None, None]
    emb[:, 0, 2:4] = 100  # one valid pixel in a block of water
    scales = np.full((2, 8), 0.5, dtype=np.float32)
    scales[0, 3] = scales[1, 2:4] = NAN
    scales[:, 4:6] = NAN  # all water
    scales[:, 6:8] = INF  # never written
    scales[0, 6] = NAN  # unwritten mixed with water: not embedded
    q, s, n = coarsen_embeddings(emb, scales, 2)
    assert q[:, 0, 0].tolist() == [127, -64] and s[0, 0] == np.float32(0.5)
    assert q[:, 0, 1].tolist() == [127, 127] and n[0, 1] == 1
    assert s[0, 1] == pytest.approx(100 * 0.5 / 127)
    assert np.isnan(s[0, 2]) and n[0, 2] == 0 and q[:, 0, 2].tolist() == [0, 0]
    assert np.isnan(s[0, 3]) and n[0, 3] == 0
    q2, s2, _ = coarsen_embeddings(emb[:, :, 6:8], np.full((2, 2), INF, np.float32), 2)
    assert np.isposinf(s2[0, 0]) and q2[:, 0, 0].tolist() == [0, 0]


def test_renormalisation_keeps_mean_norm_and_direction() -> None:
    rng = np.random.default_rng(3)
    emb = rng.integers(-127, 128, (128, 16, 16), dtype=np.int8)
    scales = rng.uniform(0.001, 0.01, (16, 16)).astype(np.float32)
    q, s, n = coarsen_embeddings(emb, scales, 4)
    x = dequantise(emb, scales).reshape(128, 4, 4, 4, 4)
    norms = np.linalg.norm(x, axis=0).mean(axis=(1, 3))
    plain = x.mean(axis=(2, 4))
    coarse = dequantise(q, s)
    got_norm = np.linalg.norm(coarse, axis=0)
    np.testing.assert_allclose(got_norm, norms, rtol=0.01)  # within quantisation error
    assert (np.linalg.norm(plain, axis=0) < 0.5 * norms).all()  # a plain mean would shrink
    cos = (coarse * plain).sum(0) / (got_norm * np.linalg.norm(plain, axis=0))
    assert cos.min() > 0.999
    assert (n == 16).all() and np.abs(q).max() == 127


def test_clamp_per_family() -> None:
    assert clamp_for_family("v1.0") == clamp_for_family("v1.1") == V1_CLAMP == (-128, 127)
    assert clamp_for_family("v2-small") == clamp_for_family("2") == V2_CLAMP == (-127, 127)
    with pytest.raises(ValueError, match="unknown model family"):
        clamp_for_family("v3")
    emb = np.array([[[127]], [[-127]], [[40]]], dtype=np.int8)
    scales = np.array([[0.2]], dtype=np.float32)
    for clamp in (127, 128, V1_CLAMP, V2_CLAMP):
        q, s, _ = coarsen_embeddings(emb, scales, 1, clamp=clamp)
        assert q[:, 0, 0].tolist() == [127, -127, 40] and s[0, 0] == np.float32(0.2)
    q, _, _ = coarsen_embeddings(emb, scales, 1, clamp=(-100, 100))
    assert q[:, 0, 0].tolist() == [100, -100, 40]  # the clamp is applied after rounding
    with pytest.raises(ValueError, match="clamp"):
        coarsen_embeddings(emb, scales, 1, clamp=64)


def test_invalid_factors_list_valid_choices() -> None:
    emb, scales = np.zeros((4, 64, 64), np.int8), np.ones((64, 64), np.float32)
    with pytest.raises(ValueError, match=r"valid factors: \[2, 4, 8, 16, 32, 64\]"):
        coarsen_embeddings(emb, scales, 3)
    with pytest.raises(ValueError, match="valid resolutions: 20, 40, 80, 160, 320, 640 m"):
        coarsen_factor(64, 30.0)
    with pytest.raises(ValueError, match="does not divide"):
        coarsen_factor(2048, 100.0)
    assert coarsen_factor(2048, 160.0) == 16
    assert coarsen_factor(4000, 100.0) == 10 and coarsen_factor(4000, 1000.0) == 100  # 40 km tiles
    with pytest.raises(ValueError, match="int8"):
        coarsen_embeddings(emb.astype(np.int16), scales, 2)


def test_dask_input_in_strips_matches_numpy(monkeypatch) -> None:
    rng = np.random.default_rng(5)
    emb = rng.integers(-127, 128, (128, 32, 32), dtype=np.int8)
    scales = rng.uniform(0.001, 0.01, (32, 32)).astype(np.float32)
    scales[5:9, 3:20] = NAN
    whole = coarsen_embeddings(emb, scales, 4)
    monkeypatch.setattr(coarsen_mod, "STRIP_BUDGET_BYTES", 128 * 4 * 32 * 8 * 3)  # 3 rows a strip
    strips = coarsen_embeddings(da.from_array(emb, chunks=(128, 8, 32)), da.from_array(scales), 4)
    for a, b in zip(whole, strips, strict=True):
        np.testing.assert_array_equal(a, b)


def test_coarse_partition_in_tessera_layout(tmp_path) -> None:
    common = dict(model_name="tessera-v2-small", build_version="b1", model_family="v2-small")
    fine = EmbeddingsStore(str(tmp_path), embeddings_schema([2024], 64, **common))
    coarse = EmbeddingsStore(
        str(tmp_path), coarse_embeddings_schema([2024], 64, 80.0, **common), "embeddings_coarse"
    )
    rng = np.random.default_rng(9)
    emb = rng.integers(-127, 128, (128, 64, 64), dtype=np.int8)
    scales = rng.uniform(0.001, 0.01, (64, 64)).astype(np.float32)
    scales[:16, :16] = NAN
    counts = np.zeros((64, 64), np.uint16)
    fine.write_embeddings(
        TILE_A,
        2024,
        embeddings=emb,
        scales=scales,
        s2_obs_count=counts,
        s1_obs_count=counts,
        lineage=LINEAGE,
    )
    record = coarsen_partition(fine, coarse, TILE_A, 2024, LINEAGE, clamp=clamp_for_family("v2"))
    assert record.source["factor"] == 8
    assert record.source["written_at"] == fine.read_lineage(TILE_A, 2024).written_at

    ds = coarse.read_tile(TILE_A, 2024).compute()
    assert ds.odc.geobox == TILE_A.geobox_at(80.0)
    want = coarsen_levels(emb, scales, [2, 2, 2], clamp=clamp_for_family("v2"))[-1]  # pyramid
    np.testing.assert_array_equal(ds["embeddings"].values, want.embeddings)
    np.testing.assert_array_equal(ds["scales"].values, want.scales)
    np.testing.assert_array_equal(ds["pixel_count"].values, want.counts)
    assert np.isnan(ds["scales"].values[:2, :2]).all()

    group = zarr.open_group(coarse.url, path="utm30", mode="r", use_consolidated=True)
    assert group["embeddings"].shards == (1, 128, 8, 8) and group["embeddings"].chunks == (
        1,
        128,
        8,
        8,
    )
    assert group["embeddings"].shape[2:] == (230_000, 12_500)
    assert group.attrs["spatial:transform"] == [80.0, 0.0, 0.0, 0.0, -80.0, 9_400_000.0]
    root = dict(zarr.open_group(coarse.url, mode="r").attrs)
    assert root["geoemb:gsd"] == 80.0 and root["tessera:resolution_m"] == 80.0
    assert root["tessera:coarsen_factor"] == 8
    with pytest.raises(ValueError, match="valid resolutions"):
        coarse_embeddings_schema([2024], 64, 100.0, **common)

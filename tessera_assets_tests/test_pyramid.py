"""The ``embeddings_coarse`` pyramid: factor-2 levels up to the configured coarsest resolution,
each pixel the renormalised, re-quantised mean of its children, one TESSERA-layout store per
level (xarray and geotessera open every level), partition-local and idempotent, and a
consistency audit that catches a tampered level."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from pyproj import Transformer

from tessera_assets.config import PipelineSettings
from tessera_assets.products.coarse import level_product, pyramid_factors, pyramid_resolutions
from tessera_assets.products.embeddings import dequantise
from tessera_assets.products.pyramid import (
    audit_pyramid,
    pyramid_datasets,
    summarise,
    write_level,
)
from tessera_assets.products.registry import ModelStamp, open_pyramid, open_store
from tessera_assets_tests.store_testkit import LINEAGE, TILE_A, TILE_B, snapshot
from tessera_assets_tests.test_geotessera_compat import _geotessera_python

YEAR = 2024
V2 = ModelStamp(family="v2-nano", sha256="cd" * 32, demo_weights=True)
CLAMP = 127
READER = """
import sys
import numpy as np
from geotessera.store import GeoTesseraZarr
url, w, s, e, n, out = sys.argv[1:7]
emb, scales, _, _ = GeoTesseraZarr(url).read_region_quantized(
    (float(w), float(s), float(e), float(n)), 2024)
np.savez(out, emb=emb, scales=scales)
"""


def _settings(root: Path) -> PipelineSettings:
    return PipelineSettings(root=str(root), tile_size=64, years=[YEAR], coarse_resolution=160.0)


def _fine(settings: PipelineSettings, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    emb = rng.integers(-127, 128, (128, 64, 64), dtype=np.int8)
    scales = rng.uniform(0.001, 0.05, (64, 64)).astype(np.float32)
    scales[:3, :5] = np.nan  # water: partly valid blocks at every level
    scales[40:, 40:] = np.nan  # a whole 20 m .. 160 m block without data
    ones = np.ones((64, 64), np.uint16)
    store = open_store("embeddings", settings, V2)
    data = {"embeddings": emb, "scales": scales, "s2_obs_count": ones, "s1_obs_count": ones}
    for depth in store.depths[:-1]:
        data[f"embeddings_d{depth}"] = emb[:depth]
    for tile in (TILE_A, TILE_B):
        store.write_tile(tile, YEAR, data, LINEAGE)
    return emb, scales


def _build(settings: PipelineSettings, tile=TILE_A) -> list:
    fine = open_store("embeddings", settings)
    levels = open_pyramid(settings, V2)
    for store, ds in zip(
        levels,
        pyramid_datasets(fine, levels, tile, YEAR, clamp=CLAMP, lineage=LINEAGE),
        strict=True,
    ):
        write_level(store, tile, YEAR, ds)
    return levels


def test_levels_are_factor_two_up_to_the_coarsest() -> None:
    assert pyramid_resolutions(64, 160.0) == [20.0, 40.0, 80.0, 160.0]
    assert pyramid_resolutions(2048, 1280.0) == [20.0 * 2**k for k in range(7)]
    assert pyramid_factors(10) == [2, 5] and pyramid_resolutions(1600, 100.0) == [20.0, 100.0]
    assert level_product(160.0, 160.0) == "embeddings_coarse"
    assert level_product(40.0, 160.0) == "embeddings_coarse_40m"
    with pytest.raises(ValueError, match="valid resolutions"):
        pyramid_resolutions(64, 30.0)


def test_every_level_opens_and_is_the_mean_of_its_children(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    emb, scales = _fine(settings)
    levels = _build(settings)
    assert [s.url.rsplit("/", 1)[1] for s in levels] == [
        "embeddings_coarse_20m.zarr",
        "embeddings_coarse_40m.zarr",
        "embeddings_coarse_80m.zarr",
        "embeddings_coarse.zarr",
    ]
    below = dequantise(emb, scales)  # (128, 64, 64), NaN where invalid
    fine_valid = np.isfinite(scales)
    for k, store in enumerate(levels, start=1):
        res = 10.0 * 2**k
        ds = xr.open_zarr(store.url, group="utm30", consolidated=True, chunks=None)
        ys, xs = TILE_A.pixel_window(res)
        window = ds.isel(y=ys, x=xs).sel(time=YEAR)
        assert window.odc.geobox == TILE_A.geobox_at(res)
        root = dict(zarr.open_group(store.url, mode="r").attrs)
        assert root["tessera:pyramid_level"] == k and len(root["tessera:pyramid"]) == 4
        assert root["geoemb:gsd"] == res
        q, s = window["embeddings"].values, window["scales"].values
        here = dequantise(q, s)
        n = 64 // 2**k
        # the mean of the valid children, rescaled to their mean norm
        kids = below.reshape(128, n, 2, n, 2).transpose(0, 1, 3, 2, 4).reshape(128, n, n, 4)
        valid = np.isfinite(kids[0])
        mean = np.nansum(kids, axis=-1) / np.maximum(valid.sum(-1), 1)
        target = np.nansum(np.linalg.norm(np.nan_to_num(kids), axis=0), -1) / np.maximum(
            valid.sum(-1), 1
        )
        norm = np.linalg.norm(mean, axis=0)
        want = mean * np.where(norm > 0, target / np.where(norm > 0, norm, 1), 1)
        has = valid.any(-1)
        assert np.array_equal(np.isfinite(s), has)
        assert np.all(np.abs(here[:, has] - want[:, has]) <= s[has] * 0.5 + 1e-6)
        # pixel_count: fine pixels under the coarse pixel
        f = 2**k
        counts = fine_valid.reshape(n, f, n, f).sum(axis=(1, 3))
        np.testing.assert_array_equal(window["pixel_count"].values, counts)
        below = here
    top = levels[-1].tile_array(TILE_A, YEAR, "scales")[:, :]
    assert top.shape == (4, 4) and np.isnan(top[3, 3]) and np.isfinite(top[2, 2])


def test_pyramid_is_partition_local_and_idempotent(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _fine(settings)
    levels = _build(settings, TILE_A)
    first = {s.product: snapshot(s.io) for s in levels}
    assert all(s.read_lineage(TILE_B, YEAR) is None for s in levels)  # only A's region
    _build(settings, TILE_A)
    again = {s.product: snapshot(s.io) for s in levels}
    assert again == first
    record = levels[1].read_lineage(TILE_A, YEAR)
    assert record.source["product"] == "embeddings_coarse_20m" and record.source["factor"] == 2
    assert (
        record.source_written_at
        == open_store("embeddings", settings).read_lineage(TILE_A, YEAR).written_at
    )


def test_audit_passes_then_catches_a_tampered_level(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _fine(settings)
    levels = _build(settings)
    fine = open_store("embeddings", settings)
    passed, text, meta = summarise(audit_pyramid(fine, levels, TILE_A, YEAR, clamp=CLAMP))
    assert passed, text
    assert meta == {
        "20m": "consistent",
        "40m": "consistent",
        "80m": "consistent",
        "160m": "consistent",
    }
    # Tamper one 40 m pixel's codes (the store's own window), keeping its commit record.
    group = zarr.open_group(levels[1].url, path="utm30", mode="r+")
    ys, xs = TILE_A.pixel_window(40.0)
    array = group["embeddings"]
    px = array[0, :, ys.start + 1, xs.start + 1]
    array[0, :, ys.start + 1, xs.start + 1] = -px
    passed, text, meta = summarise(audit_pyramid(fine, levels, TILE_A, YEAR, clamp=CLAMP))
    assert not passed
    assert meta["20m"] == "consistent"
    assert meta["40m"].startswith("1 pixels differ by up to")
    assert text.startswith("pyramid inconsistent: 40 m level: 1 pixels differ")
    # An uncommitted level is reported as such.
    levels[2].delete_tile(TILE_A, YEAR)
    _, _, meta = summarise(audit_pyramid(fine, levels, TILE_A, YEAR, clamp=CLAMP))
    assert meta["80m"] == "not committed"
    assert meta["160m"] == "the level below is not committed"


def test_geotessera_reads_a_pyramid_level(tmp_path: Path) -> None:
    python = _geotessera_python()
    settings = _settings(tmp_path)
    _fine(settings)
    levels = _build(settings)
    store = levels[1]  # 40 m
    west, south, east, north = TILE_A.bounds
    to_ll = Transformer.from_crs(TILE_A.crs, 4326, always_xy=True)
    w, s = to_ll.transform(west + 1, south + 1)
    e, n = to_ll.transform(east - 1, north - 1)
    out = tmp_path / "out.npz"
    proc = subprocess.run(
        [python, "-c", READER, store.url, *map(str, (w, s, e, n)), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(out)
    stored_q = store.tile_array(TILE_A, YEAR, "embeddings")[:, :, :]
    stored_s = store.tile_array(TILE_A, YEAR, "scales")[:, :]
    assert got["emb"].shape == (16, 16, 128)
    np.testing.assert_array_equal(got["emb"].transpose(2, 0, 1), stored_q)
    np.testing.assert_array_equal(got["scales"], stored_s)
    assert json.dumps(sorted(np.unique(np.isnan(stored_s)).tolist())) == "[false, true]"

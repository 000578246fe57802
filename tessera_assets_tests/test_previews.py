"""Previews: PCA false colour of embeddings, true-colour quicklook, PNG/markdown plumbing and
the observation histograms shown in the UI."""

from __future__ import annotations

import base64
import io

import fsspec
import numpy as np
from PIL import Image

from tessera_assets.ops.previews import (
    INLINE_MARKDOWN_LIMIT,
    histogram,
    histogram_markdown,
    inline_markdown,
    markdown_image,
    pca_rgb,
    preview_url,
    quicklook_days,
    to_png,
    true_colour,
    write_png,
)


def _two_class_tile(h: int = 40, w: int = 60, seed: int = 1):
    """Left half one embedding direction, right half another, plus noise; a NaN corner."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=128), rng.normal(size=128)
    emb = np.where(np.arange(w)[None, None, :] < w // 2, a[:, None, None], b[:, None, None])
    emb = emb + rng.normal(scale=0.05, size=(128, h, w))
    scale = np.abs(emb).max(axis=0) / 127
    q = np.clip(np.rint(emb / scale), -127, 127).astype(np.int8)
    scales = scale.astype(np.float32)
    scales[:5, :5] = np.nan
    return q, scales


def test_pca_separates_classes_and_hides_unembedded_pixels() -> None:
    q, scales = _two_class_tile()
    rgba = pca_rgb(q, scales)
    assert rgba.shape == (40, 60, 4) and rgba.dtype == np.uint8
    assert (rgba[:5, :5, 3] == 0).all() and (rgba[5:, :, 3] == 255).all()
    left = rgba[10:, 5:25, :3].reshape(-1, 3).astype(float).mean(axis=0)
    right = rgba[10:, 35:55, :3].reshape(-1, 3).astype(float).mean(axis=0)
    assert np.abs(left - right).max() > 100  # the first component splits the halves
    assert np.array_equal(rgba, pca_rgb(q, scales))  # reproducible


def test_pca_strides_large_tiles_and_copes_with_empty_ones() -> None:
    q, scales = _two_class_tile(200, 300)
    assert pca_rgb(q, scales, max_px=100).shape == (67, 100, 4)
    empty = pca_rgb(q, np.full(scales.shape, np.nan, np.float32), max_px=100)
    assert empty.shape == (67, 100, 4) and not empty.any()


def test_true_colour_is_the_median_of_clear_observations() -> None:
    t, h, w = 3, 4, 5
    red = np.full((t, h, w), 3000, np.uint16)
    red[1] = 1000  # a cloudy day (masked out below) would darken the median
    green = np.full((t, h, w), 1500, np.uint16)
    blue = np.full((t, h, w), 0, np.uint16)
    valid = np.ones((t, h, w), np.uint8)
    valid[1] = 0
    valid[:, 0, 0] = 0  # never clear
    rgba = true_colour(red, green, blue, valid)
    assert rgba.shape == (h, w, 4)
    assert rgba[0, 0, 3] == 0 and (rgba[1:, :, 3] == 255).all()
    # reflectance 0.3 = full brightness; 0.15 → 255 * 0.5 ** (1 / 1.5) = 161
    assert rgba[2, 2, 0] == 255 and rgba[2, 2, 1] == 161 and rgba[2, 2, 2] == 0


def test_png_thumbnail_and_inline_markdown() -> None:
    q, scales = _two_class_tile()
    rgba = pca_rgb(q, scales)
    png = to_png(rgba, max_px=30)
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.size == (30, 20) and img.mode == "RGBA"
    md = markdown_image(png, "pca")
    assert md.startswith("![pca](data:image/png;base64,")
    assert base64.b64decode(md.split(",", 1)[1].rstrip(")")) == png


def test_write_png_next_to_the_stores() -> None:
    url = preview_url("memory://root/", "embeddings", "32630_64_1_2", 2024)
    assert url == "memory://root/previews/embeddings/32630_64_1_2/2024.png"
    write_png(url, b"\x89PNG")
    with fsspec.open(url, "rb") as f:
        assert f.read() == b"\x89PNG"


def test_histogram_bins_and_markdown() -> None:
    counts = np.array([0, 0, 1, 4, 5, 12, 100, 366])
    hist = histogram(counts)
    assert hist == {"0": 2, "1-4": 2, "5-9": 1, "10-19": 1, "20-39": 0, "40-79": 0,
                    "80-159": 1, "160-366": 1}
    md = histogram_markdown({"S2 clear": hist, "S1 valid": histogram(np.zeros(3))})
    lines = md.splitlines()
    assert lines[0] == "| observations | S2 clear | S1 valid |"
    assert lines[2].startswith("| 0 | ") and lines[2].endswith(" 3 |")
    assert len(lines) == 2 + len(hist)


def test_quicklook_days_prefers_clear_days() -> None:
    cloud = {10: 80.0, 20: 5.0, 30: 50.0, 40: 1.0}
    assert quicklook_days(cloud, [10, 20, 30, 40, 50], 2) == [20, 40]
    assert quicklook_days(cloud, [10, 50], 5) == [10, 50]  # 50: unknown cloud, still usable
    assert quicklook_days(cloud, [], 3) == []


def test_inline_thumbnail_fits_the_ui_limit_even_for_noisy_tiles() -> None:
    # A noisy 160 px tile: a 96 px PNG of it is ~10 kB, far above what the UI shows in place.
    rng = np.random.default_rng(1)
    q = rng.integers(-127, 128, (128, 160, 160), dtype=np.int16).astype(np.int8)
    rgba = pca_rgb(q, np.ones((160, 160), np.float32))
    assert len(markdown_image(to_png(rgba, 96), "pca")) > INLINE_MARKDOWN_LIMIT
    md = inline_markdown(rgba, "pca", 96)
    assert len(md) < INLINE_MARKDOWN_LIMIT and md.startswith("![pca](data:image/png;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(md.split(",", 1)[1].rstrip(")"))))
    assert 8 <= max(img.size) <= 96
    # A smooth tile keeps more pixels than the noisy one.
    smooth = inline_markdown(pca_rgb(*_two_class_tile()), "pca", 96)
    assert len(smooth) < INLINE_MARKDOWN_LIMIT

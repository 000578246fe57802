"""Small PNG previews of a partition, for people looking at it in the Dagster UI.

- :func:`pca_rgb`: a false-colour image of the embeddings (their first three principal
  components as red, green and blue), which shows at a glance whether fields, forest and
  water separate and whether a tile is striped, blank or noisy.
- :func:`true_colour`: a cloud-free-ish quicklook of the masked Sentinel-2 cube (per-pixel
  median of the clear observations of a few days), to compare the embeddings with.

Both return RGBA uint8 (alpha 0 where there is nothing to show) and work on a strided copy of at
most ``max_px`` pixels a side, so a 2048 px tile costs a few hundred milliseconds. Only numpy and
Pillow: no plotting stack in the pipeline. :func:`publish_preview` writes one next to the stores.

The Dagster UI renders a markdown metadata value in place only while it is shorter than
:data:`INLINE_MARKDOWN_LIMIT` (1,000) characters; a longer one hides behind "[Show Markdown]".
So the inline copy (:func:`inline_markdown`) is a palette PNG shrunk until its data URI fits
(typically 32–64 px); the full-size PNG is the ``preview`` path beside the stores.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Iterable
from typing import Any

import fsspec
import numpy as np
import pystac
import xarray as xr
from PIL import Image

TRUE_COLOUR_MAX_REFLECTANCE = 0.3
"""Reflectance shown as full brightness (typical for land quicklooks)."""
PCA_SAMPLE = 20_000


def _stride(n: int, max_px: int) -> int:
    return max(1, -(-n // max_px))


def pca_rgb(embeddings: np.ndarray, scales: np.ndarray, *, max_px: int = 512,
            seed: int = 0) -> np.ndarray:
    """(B, H, W) int8 embeddings and (H, W) scales → (h, w, 4) uint8 false colour.

    Components are fitted on at most :data:`PCA_SAMPLE` embedded pixels (a fixed seed, so the
    image is reproducible), their signs fixed so the largest loading is positive, and each
    channel stretched between its 2nd and 98th percentile. Pixels without a finite scale are
    transparent."""
    if embeddings.ndim != 3 or scales.shape != embeddings.shape[1:]:
        raise ValueError(f"expected (B, H, W) and (H, W), got {embeddings.shape}, {scales.shape}")
    k = _stride(max(scales.shape), max_px)
    emb = np.asarray(embeddings[:, ::k, ::k], dtype=np.float32)
    sc = np.asarray(scales[::k, ::k], dtype=np.float32)
    h, w = sc.shape
    valid = np.isfinite(sc)
    out = np.zeros((h, w, 4), np.uint8)
    if valid.sum() < 3:
        return out
    x = (emb[:, valid] * sc[valid][None]).T  # (N, B)
    rng = np.random.default_rng(seed)
    sample = x if len(x) <= PCA_SAMPLE else x[rng.choice(len(x), PCA_SAMPLE, replace=False)]
    mean = sample.mean(axis=0, dtype=np.float64)
    centred = sample - mean
    # Eigenvectors of the 128 x 128 covariance: cheap and robust even for near-degenerate
    # tiles (an SVD of the N x 128 sample can take seconds on those).
    _, vecs = np.linalg.eigh(centred.T @ centred)
    comps = vecs[:, ::-1][:, :3].T
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    comps = comps * np.where(signs == 0, 1, signs)[:, None]
    proj = (x - mean) @ comps.T  # (N, <=3)
    rgb = np.zeros((len(x), 3), np.float32)
    for c in range(proj.shape[1]):
        lo, hi = np.percentile(proj[:, c], [2, 98])
        rgb[:, c] = np.clip((proj[:, c] - lo) / max(hi - lo, 1e-12), 0, 1)
    out[valid, :3] = np.round(rgb * 255).astype(np.uint8)
    out[valid, 3] = 255
    return out


def true_colour(red: np.ndarray, green: np.ndarray, blue: np.ndarray, valid: np.ndarray, *,
                max_px: int = 512, dn_scale: float = 10_000.0) -> np.ndarray:
    """(T, H, W) harmonised DN of B04/B03/B02 and the (T, H, W) clear mask → (h, w, 4) uint8.

    Each pixel is the median of its clear observations (reflectance = DN / ``dn_scale``),
    scaled so :data:`TRUE_COLOUR_MAX_REFLECTANCE` is full brightness, with a 1/1.5 gamma.
    Pixels never clear are transparent."""
    bands = [np.asarray(b) for b in (red, green, blue)]
    if any(b.shape != valid.shape for b in bands) or valid.ndim != 3:
        raise ValueError("red, green, blue and valid must all be (T, H, W)")
    k = _stride(max(valid.shape[1:]), max_px)
    ok = np.asarray(valid[:, ::k, ::k]).astype(bool)
    h, w = ok.shape[1:]
    out = np.zeros((h, w, 4), np.uint8)
    seen = ok.any(axis=0)
    for c, band in enumerate(bands):
        refl = np.where(ok, band[:, ::k, ::k].astype(np.float32) / dn_scale, np.nan)
        with warnings.catch_warnings():  # pixels never clear: NaN, shown transparent
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(refl, axis=0) if ok.shape[0] else np.full((h, w), np.nan)
        level = np.clip(np.nan_to_num(med, nan=0.0) / TRUE_COLOUR_MAX_REFLECTANCE, 0, 1)
        out[..., c] = np.round(255 * level ** (1 / 1.5)).astype(np.uint8)
    out[..., 3] = np.where(seen, 255, 0).astype(np.uint8)
    return out


def to_png(rgba: np.ndarray, max_px: int | None = None) -> bytes:
    """PNG bytes of an RGBA image, shrunk (nearest neighbour) to ``max_px`` a side if given."""
    img = Image.fromarray(np.ascontiguousarray(rgba), mode="RGBA")
    if max_px and max(img.size) > max_px:
        ratio = max_px / max(img.size)
        img = img.resize((max(1, round(img.width * ratio)), max(1, round(img.height * ratio))),
                         Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


INLINE_MARKDOWN_LIMIT = 1000
"""Longest markdown metadata value the Dagster UI shows in place (characters, exclusive)."""


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown with the PNG inlined as a data URI (shown in place only while it is shorter
    than :data:`INLINE_MARKDOWN_LIMIT`: see :func:`inline_markdown`)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def palette_png(rgba: np.ndarray, px: int, colors: int) -> bytes:
    """A ``px``-a-side, ``colors``-colour palette PNG (box-averaged: smaller than nearest
    neighbour on noisy images); transparent pixels become black."""
    img = Image.fromarray(np.ascontiguousarray(rgba), mode="RGBA")
    ratio = min(1.0, px / max(img.size))
    size = (max(1, round(img.width * ratio)), max(1, round(img.height * ratio)))
    small = img.resize(size, Image.Resampling.BOX) if size != img.size else img
    rgb = Image.new("RGB", small.size)
    rgb.paste(small, mask=small.getchannel("A"))
    buf = io.BytesIO()
    rgb.quantize(colors=colors).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def inline_markdown(rgba: np.ndarray, alt: str, max_px: int,
                    limit: int = INLINE_MARKDOWN_LIMIT) -> str:
    """The largest markdown thumbnail (at most ``max_px`` a side) shorter than ``limit``
    characters, so the UI shows it in place; a text note when not even 8 px fits."""
    px = max_px
    while px >= 8:
        for colors in (32, 16, 8):
            md = markdown_image(palette_png(rgba, px, colors), alt)
            if len(md) < limit:
                return md
        px = int(px * 0.8)
    return f"({alt}: too detailed to inline; open the preview path)"


def preview_url(root: str, asset: str, tile_id: str, year: int) -> str:
    """``{root}/previews/{asset}/{tile}/{year}.png``: next to the stores, one per partition."""
    return f"{root.rstrip('/')}/previews/{asset}/{tile_id}/{year}.png"


def write_png(url: str, png: bytes, storage_options: dict[str, Any] | None = None) -> str:
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as f:
        f.write(png)
    return url


def publish_preview(rgba: np.ndarray, root: str, asset: str, tile_id: str, year: int, *,
                    max_px: int, inline_px: int, alt: str,
                    storage_options: dict[str, Any] | None = None) -> tuple[str, str]:
    """Write the partition's preview at :func:`preview_url` and return it with a markdown
    thumbnail of at most ``inline_px`` a side that the UI shows in place
    (:func:`inline_markdown`)."""
    url = write_png(preview_url(root, asset, tile_id, year), to_png(rgba, max_px),
                    storage_options)
    return url, inline_markdown(rgba, alt, inline_px)


def s2_quicklook(masked: xr.Dataset, s2_items: Iterable[pystac.Item], n_days: int,
                 max_px: int) -> np.ndarray | None:
    """True colour of the ``n_days`` least cloudy days of a masked S2 cube (cloud cover from
    the items' ``eo:cloud_cover``); None when the cube has no day."""
    cloud: dict[int, float] = {}
    for it in s2_items:
        day = int(it.properties["tessera:doy"])
        cover = it.properties.get("eo:cloud_cover")
        cloud[day] = min(cloud.get(day, 100.0), float(cover) if cover is not None else 100.0)
    days = quicklook_days(cloud, [int(d) for d in masked["doy"].values], n_days)
    if not days:
        return None
    sub = masked.sel(doy=days)
    rgb = sub["bands"].sel(band=["B04", "B03", "B02"]).values  # (T, 3, H, W)
    return true_colour(rgb[:, 0], rgb[:, 1], rgb[:, 2], sub["valid"].values, max_px=max_px)


# ------------------------------------------------------------------------------ helpers


OBS_BINS = (0, 1, 5, 10, 20, 40, 80, 160, 367)
"""Histogram edges of per-pixel observation counts (last bin: 160 up to a full year)."""


def histogram(counts: np.ndarray, bins: tuple[int, ...] = OBS_BINS) -> dict[str, int]:
    """Pixels per observation-count bin, labelled ``"0"``, ``"1-4"``, … ``"160-366"``."""
    hist, edges = np.histogram(np.asarray(counts).ravel(), bins=bins)
    return {(str(lo) if hi - lo == 1 else f"{lo}-{hi - 1}"): int(n)
            for lo, hi, n in zip(edges[:-1].astype(int), edges[1:].astype(int), hist, strict=True)}


def histogram_markdown(columns: dict[str, dict[str, int]], width: int = 20) -> str:
    """A markdown table of one or more histograms with the same bins, with text bars."""
    names = list(columns)
    bins = list(next(iter(columns.values())))
    peak = max([1, *(v for h in columns.values() for v in h.values())])
    lines = ["| observations | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names)]
    for b in bins:
        cells = [f"{'█' * round(width * columns[n][b] / peak)} {columns[n][b]}" for n in names]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def quicklook_days(cloud_by_day: dict[int, float], available: list[int], n: int) -> list[int]:
    """The ``n`` least cloudy of the ``available`` days (unknown cloud cover counts as 100 %),
    in day order."""
    ranked = sorted(available, key=lambda d: (cloud_by_day.get(d, 100.0), d))
    return sorted(ranked[:n])

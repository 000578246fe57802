"""Materialisation metadata of the assets (docs/operations.md).

Every partition records what was measured beside what the planner expected (so prices can be
recalibrated from real runs), scene counts, observation histograms and previews. The keys are
read by the checks, ``tessera-assets status`` and people in the UI; they are built here so the
asset bodies stay a few lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr
from dagster import AssetExecutionContext, MetadataValue

from tessera_assets.config import PipelineSettings
from tessera_assets.inference.tasks import ModelInfo, TileEmbedding
from tessera_assets.ops.previews import histogram, histogram_markdown, publish_preview
from tessera_assets.sources.decisions import item_datetime
from tessera_assets.sources.manifest import SceneManifest


def seconds_since(started: float, digits: int = 3) -> float:
    return round(time.perf_counter() - started, digits)


def manifest_metadata(manifest: SceneManifest, catalog_url: str) -> dict[str, Any]:
    """Scene counts per sensor, what was left out and the acquisition span."""
    counts = manifest.counts()
    times = [item_datetime(it) for it in manifest.items]
    return {
        "digest": manifest.digest(),
        "scenes_s2": counts["s2"], "scenes_s1": counts["s1"],
        "scenes_landsat": counts["landsat"],
        "skipped": len(manifest.skipped), "duplicates": len(manifest.duplicates),
        "catalog": catalog_url,
        "first_scene": min(times).isoformat() if times else "",
        "last_scene": max(times).isoformat() if times else "",
    }


def cube_metadata(ds: xr.Dataset, started: float, estimate: dict[str, float]) -> dict[str, Any]:
    """Acquisition days, shape and output size of a raw cube, beside the planner's estimate."""
    return {
        "acquisition_days": int(ds.sizes["doy"]),
        "days_of_year": MetadataValue.json([int(d) for d in ds["doy"].values]),
        "shape": MetadataValue.json({k: int(v) for k, v in ds.sizes.items()}),
        # The cube is built lazily and computed while the IO manager writes it: the step's
        # duration in the UI is its runtime; graph_seconds only covers building the graph.
        "graph_seconds": seconds_since(started),
        "bytes_written": int(ds.nbytes),
        "estimate_bytes": int(estimate["bytes"]),
        "estimate_input_bytes": int(estimate["input_bytes"]),
        "estimate_cpu_seconds": round(estimate["seconds"], 2),
    }


def prepared_metadata(ds: xr.Dataset) -> dict[str, Any]:
    """Acquisition days and output size of a masked / calibrated cube."""
    return {"acquisition_days": int(ds.sizes["doy"]), "bytes_written": int(ds.nbytes)}


def preview_metadata(context: AssetExecutionContext, settings: PipelineSettings, asset: str,
                     tile_id: str, year: int, make_rgba: Callable[[int], np.ndarray | None],
                     alt: str) -> dict[str, Any]:
    """Write the partition's PNG preview and return its path and an inline thumbnail. A
    preview never fails the asset: problems are logged and the metadata left out."""
    p = settings.previews
    if not p.enabled:
        return {}
    try:
        rgba = make_rgba(p.max_px)
        if rgba is None:
            return {}
        url, inline = publish_preview(rgba, settings.root, asset, tile_id, year,
                                      max_px=p.max_px, inline_px=p.inline_px, alt=alt,
                                      storage_options=settings.storage_options)
    except Exception as exc:
        context.log.warning("no %s preview for %s %d: %s", asset, tile_id, year, exc)
        return {}
    return {"preview": MetadataValue.path(url), "preview_image": MetadataValue.md(inline)}


def model_metadata(info: ModelInfo, demo_label: str) -> dict[str, Any]:
    """Which weights made the embeddings; demo weights are labelled as such."""
    return {
        "model": f"{info.family}{' (DEMO WEIGHTS)' if info.is_demo else ''}",
        "model_sha256": info.sha256,
        "model_is_demo": info.is_demo,
        "weights_note": demo_label if info.is_demo else "official checkpoint",
    }


def embedding_metadata(result: TileEmbedding, ds: xr.Dataset, seconds: float,
                       estimate: dict[str, float]) -> dict[str, Any]:
    """Coverage, throughput and output size beside the planner's estimate."""
    finite = np.isfinite(result.scales)
    return {
        "pixels": int(finite.size),
        "pixels_embedded": int(finite.sum()),
        "valid_fraction": float(finite.mean()),
        "seconds": round(seconds, 2),
        "estimate_seconds": round(estimate["seconds"], 2),
        "bytes_written": int(ds.nbytes),
        "estimate_bytes": int(estimate["bytes"]),
        "pixels_per_second": round(float(finite.sum()) / max(seconds, 1e-9), 1),
        "ray_workers": MetadataValue.json(result.workers),
    }


def observation_metadata(n_s2: np.ndarray, n_s1: np.ndarray) -> dict[str, Any]:
    """Per-pixel observation counts: clear fraction, medians and histograms (JSON + a
    markdown table)."""
    hist = {"S2 clear": histogram(n_s2), "S1 valid": histogram(n_s1)}
    return {
        "s2_clear_fraction": float((n_s2 > 0).mean()),
        "median_s2_clear_obs": float(np.median(n_s2)),
        "median_s1_obs": float(np.median(n_s1)),
        "s2_clear_obs_histogram": MetadataValue.json(hist["S2 clear"]),
        "s1_obs_histogram": MetadataValue.json(hist["S1 valid"]),
        "observation_histogram": MetadataValue.md(histogram_markdown(hist)),
    }


def coarse_metadata(ds: xr.Dataset, resolution_m: float, factor: int) -> dict[str, Any]:
    """Resolution, shape, coverage and output size of a coarse partition."""
    scales = np.asarray(ds["scales"].values)
    return {
        "resolution_m": resolution_m, "factor": factor,
        "shape": MetadataValue.json(list(scales.shape)),
        "valid_fraction": float(np.isfinite(scales).mean()),
        "bytes_written": int(ds.nbytes),
    }

"""Materialisation metadata of the assets (docs/operations.md).

Every partition records what was measured beside what the planner expected (so prices can be
recalibrated from real runs: the estimate ledger), scene counts, observation histograms and
previews, plus the catalog conventions of Dagster: ``dagster/uri`` (where the store is),
``dagster/column_schema`` and ``dagster/row_count`` (the manifest's table) and a readable label
of the opaque tile id. Numbers carry their unit in the key (``*_seconds``, ``*_bytes``,
``*_usd``); the ``estimate_vs_actual`` table shows them side by side with units. The keys are
read by the checks, ``tessera-assets status`` and people in the UI; they are built here so the
asset bodies stay a few lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import stac_geoparquet.arrow as sgpa
import xarray as xr
from dagster import (
    AssetExecutionContext,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
)

from tessera_assets.config import PipelineSettings
from tessera_assets.grid import Tile
from tessera_assets.inference.tasks import ModelInfo, TileEmbedding
from tessera_assets.ops import ledger
from tessera_assets.ops.aoi_registry import AoiRegistry
from tessera_assets.ops.planner import device_of, effective_planner, planning_family, throughput
from tessera_assets.ops.previews import histogram, histogram_markdown, publish_preview
from tessera_assets.sources.decisions import item_datetime
from tessera_assets.sources.manifest import SceneManifest

URI = "dagster/uri"


def seconds_since(started: float, digits: int = 3) -> float:
    return round(time.perf_counter() - started, digits)


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.2f} {unit}"
        n /= 1000
    return f"{n} B"  # unreachable


def human_seconds(s: float) -> str:
    return f"{s:,.2f} s" if s < 120 else f"{s / 60:,.1f} min ({s:,.0f} s)"


def tile_label(settings: PipelineSettings, tile_id: str) -> str:
    """``UTM 30N, 51.995°N 0.996°W (AOI demo)``: where an opaque tile id is."""
    tile = Tile.parse(tile_id)
    lon, lat = tile.geobox.extent.centroid.to_crs(4326).coords[0]
    where = (f"UTM {tile.zone}N, {abs(lat):.3f}°{'N' if lat >= 0 else 'S'} "
             f"{abs(lon):.3f}°{'E' if lon >= 0 else 'W'}")
    try:
        names = [r.name for r in AoiRegistry(settings.root, settings.storage_options).list()
                 if tile_id in r.tiles]
    except Exception:  # the label is a courtesy: an unreadable registry only drops the names
        names = []
    return f"{where} ({'AOI ' + ', '.join(names) if names else 'no registered AOI'})"


def partition_labels(settings: PipelineSettings, asset: str, tile_id: str, year: int,
                     uri: str) -> dict[str, Any]:
    """What every asset's partition shows: the store's URI and a readable tile label."""
    return {URI: MetadataValue.path(uri), "tile": f"{tile_id} {year}",
            "tile_label": tile_label(settings, tile_id)}


def manifest_table(manifest: SceneManifest) -> dict[str, Any]:
    """``dagster/column_schema`` and ``dagster/row_count`` of the stored stac-geoparquet."""
    if manifest.items:
        schema = sgpa.parse_stac_items_to_arrow(
            [it.to_dict(transform_hrefs=False) for it in manifest.items]).schema
    else:
        schema = pa.schema([])
    columns = [TableColumn(f.name, str(f.type)) for f in schema]
    return {"dagster/column_schema": TableSchema(columns=columns),
            "dagster/row_count": len(manifest.items)}


def manifest_metadata(manifest: SceneManifest, catalog_url: str) -> dict[str, Any]:
    """Scene counts per sensor, what was left out and the acquisition span."""
    counts = manifest.counts()
    times = [item_datetime(it) for it in manifest.items]
    return {
        **manifest_table(manifest),
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
        "estimate_vs_actual": estimate_table([
            ("output size", human_bytes(estimate["bytes"]), human_bytes(ds.nbytes)),
            ("archive bytes read", human_bytes(estimate["input_bytes"]), "not measured"),
            ("CPU time", human_seconds(estimate["seconds"]),
             "the step's duration (computed while the IO manager writes)"),
        ]),
    }


def estimate_table(rows: list[tuple[str, str, str]]) -> MetadataValue:
    """Estimate and actual side by side, with units (a UI table, in this row order)."""
    schema = TableSchema(columns=[TableColumn("quantity", "string"),
                                  TableColumn("estimate", "string"),
                                  TableColumn("actual", "string")])
    return MetadataValue.table(
        [TableRecord({"quantity": q, "estimate": e, "actual": a}) for q, e, a in rows],
        schema=schema)


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
    """Coverage, throughput and output size (the estimate beside them: :func:`ledger_metadata`)."""
    finite = np.isfinite(result.scales)
    return {
        "pixels": int(finite.size),
        "pixels_embedded": int(finite.sum()),
        "valid_fraction": float(finite.mean()),
        "seconds": round(seconds, 2),
        "bytes_written": int(ds.nbytes),
        "pixels_per_second": round(float(finite.sum()) / max(seconds, 1e-9), 1),
        "ray_workers": MetadataValue.json(result.workers),
    }


def device_seconds(wall_seconds: float, device: str, workers: int, cpus_per_worker: float
                   ) -> float:
    """Wall seconds of ``workers`` actors in the unit of ``planner.px_per_s``: GPU-seconds,
    or CPU core-seconds (each actor runs ``cpus_per_worker`` torch threads)."""
    return wall_seconds * max(workers, 1) * (1.0 if device == "gpu" else cpus_per_worker)


def ledger_metadata(context: AssetExecutionContext, settings: PipelineSettings, tile_id: str,
                    year: int, info: ModelInfo, result: TileEmbedding, ds: xr.Dataset,
                    seconds: float, estimate: dict[str, float]) -> dict[str, Any]:
    """Record the partition's estimate (on the device the actors report) and measurement in
    the estimate ledger, and show both side by side with the ledger's totals so far."""
    device = device_of(info.device)
    planner = effective_planner(settings, device)
    actual_s = device_seconds(seconds, device, len(result.workers),
                              settings.inference.cpus_per_worker)
    entry = ledger.LedgerEntry(
        asset="embeddings", tile=tile_id, year=year, family=planning_family(settings.inference),
        device=device, pixels=int(result.scales.size),
        estimate_seconds=float(estimate["seconds"]), actual_seconds=actual_s,
        estimate_bytes=int(estimate["bytes"]), actual_bytes=int(ds.nbytes),
        estimate_usd=ledger.device_cost(estimate["seconds"], device, planner),
        actual_usd=ledger.device_cost(actual_s, device, planner),
        rate_px_per_s=throughput(planner, planning_family(settings.inference)),
        recorded_at=datetime.now(UTC).isoformat(timespec="seconds"), run_id=context.run.run_id)
    try:
        ledger.record(settings.root, entry, settings.storage_options)
        totals = ledger.totals(ledger.read_entries(settings.root, settings.storage_options,
                                                   "embeddings"))
    except OSError as exc:  # the ledger informs; it never fails a partition
        context.log.warning("estimate ledger not updated: %s", exc)
        totals = {}
    unit = "GPU-s" if device == "gpu" else "CPU core-s"
    meta: dict[str, Any] = {
        "device": device,
        "estimate_seconds": round(entry.estimate_seconds, 2),
        "actual_device_seconds": round(actual_s, 2),
        "estimate_bytes": entry.estimate_bytes,
        "estimate_usd": round(entry.estimate_usd, 6),
        "actual_usd": round(entry.actual_usd, 6),
        "estimate_error": round(entry.seconds_error, 3),
        "estimate_vs_actual": estimate_table([
            (f"inference ({unit})", human_seconds(entry.estimate_seconds),
             human_seconds(actual_s)),
            ("output size", human_bytes(entry.estimate_bytes), human_bytes(entry.actual_bytes)),
            ("compute cost", f"${entry.estimate_usd:,.6f}", f"${entry.actual_usd:,.6f}"),
        ]),
    }
    if totals:
        meta["ledger"] = MetadataValue.json({k: (round(v, 6) if isinstance(v, float) else v)
                                             for k, v in totals.items()})
    return meta


def observation_metadata(n_s2: np.ndarray, n_s1: np.ndarray) -> dict[str, Any]:
    """Per-pixel observation counts: clear fraction, medians and histograms (JSON + a
    markdown table)."""
    hist = {"S2 clear": histogram(n_s2), "S1 valid": histogram(n_s1)}
    return {
        "s2_clear_fraction": float((n_s2 > 0).mean()),
        "median_s2_clear_obs": float(np.median(n_s2)),
        "median_s1_obs": float(np.median(n_s1)),
        "s2_clear_obs_histogram": histogram_table(hist["S2 clear"]),
        "s1_obs_histogram": histogram_table(hist["S1 valid"]),
        "observation_histogram": MetadataValue.md(histogram_markdown(hist)),
    }


def read_metadata(bytes_read: int, region_bytes: int) -> dict[str, Any]:
    """Bytes the inference actors fetched from the masked cubes against the stored size of the
    region they read: 1.0 is every stored chunk read once (plus shard indexes)."""
    return {
        "input_bytes_read": MetadataValue.int(int(bytes_read)),
        "input_region_bytes": MetadataValue.int(int(region_bytes)),
        "read_amplification": round(bytes_read / region_bytes, 3) if region_bytes else 0.0,
    }


def histogram_table(hist: dict[str, int]) -> MetadataValue:
    """A histogram as a UI table in bin order (a JSON object would be shown sorted as text,
    "10-19" before "5-9")."""
    schema = TableSchema(columns=[TableColumn("observations", "string"),
                                  TableColumn("pixels", "int")])
    return MetadataValue.table([TableRecord({"observations": b, "pixels": n})
                                for b, n in hist.items()], schema=schema)


def coarse_metadata(ds: xr.Dataset, resolution_m: float, factor: int) -> dict[str, Any]:
    """Resolution, shape, coverage and output size of a coarse partition."""
    scales = np.asarray(ds["scales"].values)
    return {
        "resolution_m": resolution_m, "factor": factor,
        "shape": MetadataValue.json(list(scales.shape)),
        "valid_fraction": float(np.isfinite(scales).mean()),
        "bytes_written": int(ds.nbytes),
    }

"""The nine software-defined assets (DESIGN §1). Each body calls domain functions; the IO
managers put every tile-year into its own region of the product's Zarr store.

Operations additions (docs/operations.md): every partition records the planner's estimate beside
the measured runtime and bytes; ``scene_manifest`` refuses to start a backfill whose estimated
cost is above ``planner.budget_usd``; the embeddings carry a ``provisional`` flag until their
year is complete, a clear-observation histogram and a PCA false-colour preview; ``s2_masked``
a true-colour quicklook. Every asset downstream of ``scene_manifest`` follows it through the
``eager`` automation condition (the automation sensor is on by default).
"""


import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import xarray as xr
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from tessera_assets import __version__
from tessera_assets.catalog.backends import Catalog
from tessera_assets.config import PipelineSettings
from tessera_assets.defs.partitions import tile_year, tile_year_partitions
from tessera_assets.defs.resources import CatalogResource, PipelineResource, RayResource
from tessera_assets.inference.ray_pool import assemble_tile
from tessera_assets.inference.strips import observation_counts, strip_tasks
from tessera_assets.ingest.cog_reading import ReadConfig
from tessera_assets.ingest.cubes import landsat_cube as _landsat_cube
from tessera_assets.ingest.cubes import s1_cube as _s1_cube
from tessera_assets.ingest.cubes import s2_cube as _s2_cube
from tessera_assets.ingest.prepared_cubes import landsat_masked as _landsat_masked
from tessera_assets.ingest.prepared_cubes import s1_calibrated as _s1_calibrated
from tessera_assets.ingest.prepared_cubes import s2_masked as _s2_masked
from tessera_assets.ops.planner import (
    asset_estimates,
    estimate_tile_year,
    plan_tile_years,
    planning_family,
)
from tessera_assets.ops.previews import (
    histogram,
    histogram_markdown,
    markdown_image,
    pca_rgb,
    preview_url,
    quicklook_days,
    to_png,
    true_colour,
    write_png,
)
from tessera_assets.ops.scene_watch import last_scene_day, provisional_status
from tessera_assets.products.coarse import clamp_for_family, coarsen_embeddings
from tessera_assets.sources.manifest import SceneManifest, build_manifest, search_tile
from tessera_assets.sources.profiles import item_datetime
from tessera_assets.store.lineage import lineage_key
from tessera_assets.store.objects import ObjectIO
from tessera_assets.store.schema import zone_group_name

DEMO_LABEL = "DEMO WEIGHTS: seeded random weights in the official checkpoint format, not a trained TESSERA model"
GROUP_INGEST = "ingest"
GROUP_PREPARE = "prepare"
GROUP_EMBED = "embed"


def _lineage(ds: xr.Dataset, manifest: SceneManifest, settings_digest: str, **extra) -> xr.Dataset:
    ds.attrs.update(
        {
            "tessera:manifest_digest": manifest.digest(),
            "tessera:code_version": __version__,
            "tessera:config_digest": settings_digest,
            **{f"tessera:{k}": v for k, v in extra.items()},
        }
    )
    return ds


EAGER = AutomationCondition.eager()
"""Downstream assets follow a re-built upstream partition (evaluated by the automation sensor)."""
BACKFILL_TAG = "dagster/backfill"


def _cube_metadata(ds: xr.Dataset, started: float, estimate: dict[str, float]) -> dict:
    return {
        "acquisition_days": int(ds.sizes["doy"]),
        "days_of_year": MetadataValue.json([int(d) for d in ds["doy"].values]),
        "shape": MetadataValue.json({k: int(v) for k, v in ds.sizes.items()}),
        # The cube is built lazily and computed while the IO manager writes it: the step's
        # duration in the UI is its runtime; graph_seconds only covers building the graph.
        "graph_seconds": round(time.perf_counter() - started, 3),
        "bytes_written": int(ds.nbytes),
        "estimate_bytes": int(estimate["bytes"]),
        "estimate_input_bytes": int(estimate["input_bytes"]),
        "estimate_cpu_seconds": round(estimate["seconds"], 2),
    }


def _estimates(settings: PipelineSettings, manifest: SceneManifest) -> dict[str, dict[str, float]]:
    counts = manifest.counts()
    days = {sensor: len(manifest.days(sensor)) for sensor in counts}
    return asset_estimates(counts, days, settings.tile_size, settings.planner,
                           planning_family(settings.inference))


def backfill_keys(context: AssetExecutionContext) -> tuple[str | None, list[str] | None]:
    """The run's backfill id and the ``scene_manifest`` partition keys it targets
    (``(None, None)`` outside a backfill; keys ``None`` when they cannot be read)."""
    backfill_id = context.run.tags.get(BACKFILL_TAG)
    if not backfill_id:
        return None, None
    try:
        backfill = context.instance.get_backfill(backfill_id)
        if backfill is None:
            return backfill_id, None
        if backfill.is_asset_backfill:
            data = backfill.asset_backfill_data or backfill.get_asset_backfill_data(
                context.repository_def.asset_graph)
            subset = data.target_subset.get_partitions_subset(AssetKey("scene_manifest"))
            keys = [str(k) for k in subset.get_partition_keys()]
        else:
            keys = [str(k) for k in backfill.partition_names or []]
        return backfill_id, keys
    except Exception as exc:  # internal API: never let it break a run, but say so
        context.log.warning("budget guard could not read backfill %s: %s", backfill_id, exc)
        return backfill_id, None


def backfill_plan(settings: PipelineSettings, catalog: Catalog, backfill_id: str,
                  keys: list[str]) -> dict[str, Any]:
    """The whole backfill priced once (scenes counted for all its tile-years) and kept at
    ``{root}/_budget/{backfill_id}.json``, so every partition gets the same verdict."""
    io = ObjectIO(f"{settings.root.rstrip('/')}/_budget", settings.storage_options)
    cached = io.get_json(f"{backfill_id}.json")
    if cached is not None:
        return cached
    tile_years: dict[str, list[int]] = {}
    for key in keys:
        tile, year = key.split("|")
        tile_years.setdefault(tile, []).append(int(year))
    plan = plan_tile_years(catalog, tile_years, settings)
    doc = {"backfill": backfill_id, "tile_years": len(plan.parts),
           "cost_usd": plan.total.cost_usd, "summary": plan.summary(),
           "priced_at": datetime.now(UTC).isoformat(timespec="seconds")}
    io.put_json(f"{backfill_id}.json", doc)
    return doc


def budget_guard(context: AssetExecutionContext, settings: PipelineSettings,
                 manifest: SceneManifest, catalog: Catalog) -> dict[str, Any]:
    """Fail before anything is written when the run's scope costs more than
    ``planner.budget_usd``: the whole backfill (priced once, from the catalog) in a backfill,
    else this partition. If the backfill cannot be read, this partition's cost times its
    size, or the partition alone, is used — and logged. Returns the estimate as metadata."""
    est = estimate_tile_year(manifest.counts(), settings.tile_size, settings.planner,
                             planning_family(settings.inference))
    budget = settings.planner.budget_usd
    meta: dict[str, Any] = {
        "estimate_cost_usd": round(est.cost_usd, 4),
        "estimate_input_bytes": int(est.input_bytes),
        "estimate_cpu_hours": round(est.cpu_hours, 4),
        "estimate_gpu_hours": round(est.gpu_hours, 4),
        "budget_usd": budget if budget is not None else "none",
    }
    if budget is None:
        return meta
    backfill_id, keys = backfill_keys(context)
    if backfill_id is None:
        scope, n, cost = "this run", 1, est.cost_usd
    elif keys:
        doc = backfill_plan(settings, catalog, backfill_id, keys)
        scope, n, cost = f"backfill {backfill_id}", int(doc["tile_years"]), doc["cost_usd"]
    else:
        scope, n, cost = f"backfill {backfill_id} (size unknown)", 1, est.cost_usd
    meta.update(budget_scope=f"{scope}: {n} tile-year(s)",
                budget_scope_estimate_usd=round(cost, 2))
    if cost > budget:
        raise Failure(
            description=(f"budget guard: {scope} is estimated at ${cost:,.2f} for {n} "
                         f"tile-year(s), above planner.budget_usd ${budget:,.2f}; nothing was "
                         "written (tessera-assets plan shows the numbers)"),
            metadata=meta, allow_retries=False)
    return meta


def _provisional(settings: PipelineSettings, manifest: SceneManifest, year: int
                 ) -> tuple[bool, str]:
    w = settings.scene_watch
    return provisional_status(year, last_scene_day(manifest.items), datetime.now(UTC).date(),
                              grace_days=w.provisional_grace_days,
                              end_gap_days=w.provisional_end_gap_days)


def _preview(context: AssetExecutionContext, settings: PipelineSettings, asset_name: str,
             tile_id: str, year: int, make_rgba, alt: str) -> dict[str, Any]:
    """Write ``{root}/previews/{asset}/{tile}/{year}.png`` and return its metadata (path +
    an inline thumbnail). A preview never fails the asset: problems are logged."""
    p = settings.previews
    if not p.enabled:
        return {}
    try:
        rgba = make_rgba(p.max_px)
        if rgba is None:
            return {}
        url = write_png(preview_url(settings.root, asset_name, tile_id, year),
                        to_png(rgba, p.max_px), settings.storage_options)
        inline = markdown_image(to_png(rgba, p.inline_px), alt)
    except Exception as exc:
        context.log.warning("no %s preview for %s %d: %s", asset_name, tile_id, year, exc)
        return {}
    return {"preview": MetadataValue.path(url), "preview_image": MetadataValue.md(inline)}


def _quicklook(ds: xr.Dataset, manifest: SceneManifest, n_days: int, max_px: int):
    """True colour of the least cloudy S2 days (by the items' eo:cloud_cover)."""
    cloud: dict[int, float] = {}
    for it in manifest.sensor_items("s2"):
        day = int(it.properties["tessera:doy"])
        cover = it.properties.get("eo:cloud_cover")
        cloud[day] = min(cloud.get(day, 100.0), float(cover) if cover is not None else 100.0)
    days = quicklook_days(cloud, [int(d) for d in ds["doy"].values], n_days)
    if not days:
        return None
    sub = ds.sel(doy=days)
    rgb = sub["bands"].sel(band=["B04", "B03", "B02"]).values  # (T, 3, H, W)
    return true_colour(rgb[:, 0], rgb[:, 1], rgb[:, 2], sub["valid"].values, max_px=max_px)


def _fine_record(settings: PipelineSettings, tile, year: int) -> dict[str, Any]:
    """The fine embeddings' committed lineage record of the partition (empty if none)."""
    io = ObjectIO(f"{settings.root.rstrip('/')}/embeddings.zarr", settings.storage_options)
    return io.get_json(lineage_key(zone_group_name(tile.zone), tile.id, int(year))) or {}


def build_assets(years: list[int]) -> list[AssetsDefinition]:
    partitions = tile_year_partitions(years)

    @asset(
        partitions_def=partitions, io_manager_key="manifest_io_manager", group_name=GROUP_INGEST,
        code_version=__version__, kinds={"stac", "parquet"},
    )
    def scene_manifest(
        context: AssetExecutionContext, pipeline: PipelineResource, catalog: CatalogResource
    ) -> Output[SceneManifest]:
        """STAC items chosen for the tile-year (the lineage root), stored as stac-geoparquet.
        Refuses (budget guard) when the run's backfill is priced above planner.budget_usd."""
        t0 = time.perf_counter()
        settings = pipeline.settings
        tile, year = tile_year(context.partition_key)
        cat = catalog.get()
        c = settings.catalog
        results = search_tile(cat, tile, year, c.collections())
        manifest = build_manifest(tile, year, results, max_s2_cloud_cover=c.max_s2_cloud_cover,
                                  catalog={"preset": c.preset, "kind": c.kind, "url": c.url})
        counts = manifest.counts()
        estimate = budget_guard(context, settings, manifest, cat)
        context.log.info("tile %s %d: %s scenes, %d skipped, %d duplicates", tile.id, year,
                         counts, len(manifest.skipped), len(manifest.duplicates))
        times = [item_datetime(it) for it in manifest.items]
        provisional, reason = _provisional(settings, manifest, year)
        return Output(
            manifest,
            metadata={
                "digest": manifest.digest(),
                "scenes_s2": counts["s2"], "scenes_s1": counts["s1"],
                "scenes_landsat": counts["landsat"],
                "skipped": len(manifest.skipped), "duplicates": len(manifest.duplicates),
                "catalog": c.url,
                "first_scene": min(times).isoformat() if times else "",
                "last_scene": max(times).isoformat() if times else "",
                "provisional": provisional, "provisional_reason": reason,
                "seconds": round(time.perf_counter() - t0, 3),
                **estimate,
            },
        )

    def _cube_asset(name: str, builder, description: str):
        @asset(
            name=name, partitions_def=partitions, io_manager_key=f"{name}_io_manager",
            group_name=GROUP_INGEST, code_version=__version__, description=description,
            kinds={"zarr", "odc-stac"}, automation_condition=EAGER,
        )
        def _cube(context: AssetExecutionContext, pipeline: PipelineResource,
                  scene_manifest: SceneManifest) -> Output[xr.Dataset]:
            t0 = time.perf_counter()
            tile, _ = tile_year(context.partition_key)
            read = ReadConfig.from_settings(pipeline.settings.catalog)
            ds = _lineage(builder(scene_manifest, tile, read=read), scene_manifest,
                          pipeline.settings.digest())
            estimate = _estimates(pipeline.settings, scene_manifest)[name]
            return Output(ds, metadata=_cube_metadata(ds, t0, estimate))

        return _cube

    s2_cube = _cube_asset("s2_cube", _s2_cube,
                          "Sentinel-2 L2A DN + SCL on the tile's 10 m grid, one slice per day.")
    s1_cube = _cube_asset("s1_cube", _s1_cube,
                          "Sentinel-1 RTC gamma0 per orbit direction and polarisation.")
    landsat_cube = _cube_asset("landsat_cube", _landsat_cube,
                               "Landsat C2 L2 SR DN + QA_PIXEL on the 10 m grid.")

    @asset(partitions_def=partitions, io_manager_key="s2_masked_io_manager",
           group_name=GROUP_PREPARE, code_version=__version__, kinds={"zarr"},
           automation_condition=EAGER)
    def s2_masked(context: AssetExecutionContext, pipeline: PipelineResource,
                  s2_cube: xr.Dataset, scene_manifest: SceneManifest) -> Output[xr.Dataset]:
        """Harmonised S2 DN (BOA offset removed by baseline) and the SCL clear mask, with a
        true-colour quicklook of the least cloudy days."""
        settings = pipeline.settings
        tile, year = tile_year(context.partition_key)
        ds = _lineage(_s2_masked(s2_cube, scene_manifest), scene_manifest, settings.digest())
        preview = _preview(
            context, settings, "s2_masked", tile.id, year,
            lambda px: _quicklook(ds, scene_manifest, settings.previews.quicklook_days, px),
            f"true colour {tile.id} {year}")
        return Output(ds, metadata={"acquisition_days": int(ds.sizes["doy"]),
                                    "boa_offsets": MetadataValue.json(ds.attrs["boa_offsets"]),
                                    "bytes_written": int(ds.nbytes), **preview})

    @asset(partitions_def=partitions, io_manager_key="s1_calibrated_io_manager",
           group_name=GROUP_PREPARE, code_version=__version__, kinds={"zarr"},
           automation_condition=EAGER)
    def s1_calibrated(context: AssetExecutionContext, pipeline: PipelineResource,
                      s1_cube: xr.Dataset, scene_manifest: SceneManifest) -> Output[xr.Dataset]:
        """S1 backscatter as the models' int16 dB code (20·log10 + 50)·200, 0 = missing."""
        ds = _lineage(_s1_calibrated(s1_cube), scene_manifest, pipeline.settings.digest())
        return Output(ds, metadata={"acquisition_days": int(ds.sizes["doy"]),
                                    "bytes_written": int(ds.nbytes)})

    @asset(partitions_def=partitions, io_manager_key="landsat_masked_io_manager",
           group_name=GROUP_PREPARE, code_version=__version__, kinds={"zarr"},
           automation_condition=EAGER)
    def landsat_masked(context: AssetExecutionContext, pipeline: PipelineResource,
                       landsat_cube: xr.Dataset,
                       scene_manifest: SceneManifest) -> Output[xr.Dataset]:
        """Landsat surface reflectance ×10000 and the QA_PIXEL clear mask. No released TESSERA
        family consumes Landsat (tessera-model.md §5): it is kept as an analysis product."""
        ds = _lineage(_landsat_masked(landsat_cube, scene_manifest), scene_manifest,
                      pipeline.settings.digest())
        return Output(ds, metadata={"acquisition_days": int(ds.sizes["doy"]),
                                    "bytes_written": int(ds.nbytes)})

    @asset(partitions_def=partitions, io_manager_key="embeddings_io_manager",
           group_name=GROUP_EMBED, code_version=__version__, kinds={"zarr", "ray", "pytorch"},
           automation_condition=EAGER)
    def embeddings(context: AssetExecutionContext, pipeline: PipelineResource, ray: RayResource,
                   s2_masked: xr.Dataset, s1_calibrated: xr.Dataset,
                   scene_manifest: SceneManifest) -> Output[xr.Dataset]:
        """TESSERA embeddings: int8 (band, y, x) + float32 scale per pixel (NaN = not embedded),
        computed by the Ray actor pool, in the published TESSERA Zarr layout. Provisional
        (metadata + lineage) until the year is complete."""
        settings = pipeline.settings
        tile, year = tile_year(context.partition_key)
        engine = ray.engine()
        info = engine.info
        assert info is not None
        if info.is_demo:
            context.log.warning(DEMO_LABEL)
        height, width = tile.geobox.shape
        t0 = time.perf_counter()
        done = [0]

        def progress(rows: int) -> None:
            done[0] += rows
            context.log.info("embedded %d/%d rows of %s", done[0], height, tile.id)

        tasks = strip_tasks(s2_masked, s1_calibrated, scene_manifest,
                            settings.inference.strip_rows)
        result = assemble_tile(engine.embed(tasks, progress), height, width)
        seconds = time.perf_counter() - t0
        n_s2, n_s1 = observation_counts(s2_masked, s1_calibrated)
        provisional, reason = _provisional(settings, scene_manifest, year)
        ds = xr.Dataset(
            {
                "embeddings": (("band", "y", "x"), result.codes),
                "scales": (("y", "x"), result.scales),
                "s2_obs_count": (("y", "x"), n_s2),
                "s1_obs_count": (("y", "x"), n_s1),
            },
            coords={k: s2_masked.coords[k] for k in ("y", "x", "spatial_ref")
                    if k in s2_masked.coords},
        )
        _lineage(ds, scene_manifest, settings.digest(), model_family=info.family,
                 model_sha256=info.sha256, model_source=info.source,
                 model_is_demo=info.is_demo, provisional=provisional,
                 provisional_reason=reason)
        finite = np.isfinite(result.scales)
        estimate = _estimates(settings, scene_manifest)["embeddings"]
        hist = {"S2 clear": histogram(n_s2), "S1 valid": histogram(n_s1)}
        preview = _preview(context, settings, "embeddings", tile.id, year,
                           lambda px: pca_rgb(result.codes, result.scales, max_px=px),
                           f"PCA false colour {tile.id} {year}")
        if provisional:
            context.log.info("embeddings %s %d are provisional: %s", tile.id, year, reason)
        return Output(
            ds,
            metadata={
                "model": f"{info.family}{' (DEMO WEIGHTS)' if info.is_demo else ''}",
                "model_sha256": info.sha256,
                "model_is_demo": info.is_demo,
                "weights_note": DEMO_LABEL if info.is_demo else "official checkpoint",
                "pixels": int(finite.size),
                "pixels_embedded": int(finite.sum()),
                "valid_fraction": float(finite.mean()),
                "s2_clear_fraction": float((n_s2 > 0).mean()),
                "seconds": round(seconds, 2),
                "estimate_seconds": round(estimate["seconds"], 2),
                "bytes_written": int(ds.nbytes),
                "estimate_bytes": int(estimate["bytes"]),
                "pixels_per_second": round(float(finite.sum()) / max(seconds, 1e-9), 1),
                "ray_workers": MetadataValue.json(result.workers),
                "manifest_digest": scene_manifest.digest(),
                "median_s2_clear_obs": float(np.median(n_s2)),
                "median_s1_obs": float(np.median(n_s1)),
                "s2_clear_obs_histogram": MetadataValue.json(hist["S2 clear"]),
                "s1_obs_histogram": MetadataValue.json(hist["S1 valid"]),
                "observation_histogram": MetadataValue.md(histogram_markdown(hist)),
                "provisional": provisional,
                "provisional_reason": reason,
                **preview,
            },
        )

    @asset(partitions_def=partitions, io_manager_key="embeddings_coarse_io_manager",
           group_name=GROUP_EMBED, code_version=__version__, kinds={"zarr"},
           automation_condition=EAGER)
    def embeddings_coarse(context: AssetExecutionContext, pipeline: PipelineResource,
                          embeddings: xr.Dataset) -> Output[xr.Dataset]:
        """Block mean of the dequantised embeddings at the configured resolution, renormalised
        and re-quantised with the family's clamp, in the same TESSERA layout. Inherits the
        fine partition's provisional flag."""
        t0 = time.perf_counter()
        settings = pipeline.settings
        tile, year = tile_year(context.partition_key)
        factor = settings.coarse_factor
        attrs = embeddings.attrs
        family = str(attrs.get("tessera_assets:model_family") or "v2")
        result = coarsen_embeddings(embeddings["embeddings"].data, embeddings["scales"].data,
                                    factor, clamp=clamp_for_family(family))
        fine = _fine_record(settings, tile, year)
        provisional = bool(fine.get("provisional", year >= datetime.now(UTC).year))
        ds = xr.Dataset({
            "embeddings": (("band", "y", "x"), result.embeddings),
            "scales": (("y", "x"), result.scales),
            "pixel_count": (("y", "x"), result.counts),
        })
        ds.attrs.update({
            "tessera:manifest_digest": attrs["tessera:manifest_digest"],
            "tessera:code_version": __version__,
            "tessera:config_digest": settings.digest(),
            "tessera:model_sha256": attrs.get("tessera_assets:model_sha256"),
            "tessera:model_family": family,
            "tessera:model_is_demo": bool(attrs.get("tessera_assets:demo_weights")),
            "tessera:source_written_at": str(fine.get("written_at", "")),
            "tessera:provisional": provisional,
        })
        return Output(ds, metadata={
            "resolution_m": settings.coarse_resolution, "factor": factor,
            "shape": MetadataValue.json(list(result.scales.shape)),
            "valid_fraction": float(np.isfinite(result.scales).mean()),
            "provisional": provisional,
            "seconds": round(time.perf_counter() - t0, 3),
            "bytes_written": int(ds.nbytes),
        })

    return [scene_manifest, s2_cube, s1_cube, landsat_cube, s2_masked, s1_calibrated,
            landsat_masked, embeddings, embeddings_coarse]


__all__ = ["backfill_keys", "backfill_plan", "budget_guard", "build_assets"]

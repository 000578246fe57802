"""The nine software-defined assets (DESIGN §1). Each body calls domain functions; the IO
managers put every tile-year into its own region of the product's Zarr store."""


import time
from datetime import datetime, timedelta

import numpy as np
import xarray as xr
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MetadataValue,
    Output,
    asset,
)

from tessera_assets import __version__
from tessera_assets.calibration import landsat_masked as _landsat_masked
from tessera_assets.calibration import s1_calibrated as _s1_calibrated
from tessera_assets.calibration import s2_masked as _s2_masked
from tessera_assets.coarsen import clamp_for_family, coarsen_embeddings
from tessera_assets.defs.partitions import tile_year, tile_year_partitions
from tessera_assets.defs.resources import CatalogResource, PipelineResource, RayResource
from tessera_assets.inference import assemble_tile
from tessera_assets.ingest import landsat_cube as _landsat_cube
from tessera_assets.ingest import s1_cube as _s1_cube
from tessera_assets.ingest import s2_cube as _s2_cube
from tessera_assets.manifest import SceneManifest, build_manifest
from tessera_assets.pixel_series import observation_counts, strip_tasks

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


def _cube_metadata(ds: xr.Dataset, started: float) -> dict:
    return {
        "acquisition_days": int(ds.sizes["doy"]),
        "days_of_year": MetadataValue.json([int(d) for d in ds["doy"].values]),
        "shape": MetadataValue.json({k: int(v) for k, v in ds.sizes.items()}),
        "graph_seconds": round(time.perf_counter() - started, 3),
    }


def build_assets(years: list[int]) -> list[AssetsDefinition]:
    partitions = tile_year_partitions(years)

    @asset(
        partitions_def=partitions, io_manager_key="manifest_io_manager", group_name=GROUP_INGEST,
        code_version=__version__, kinds={"stac", "parquet"},
    )
    def scene_manifest(
        context: AssetExecutionContext, pipeline: PipelineResource, catalog: CatalogResource
    ) -> Output[SceneManifest]:
        """STAC items chosen for the tile-year (the lineage root), stored as stac-geoparquet."""
        settings = pipeline.settings
        tile, year = tile_year(context.partition_key)
        cat = catalog.get()
        # One day of margin each side: an item's solar day can differ from its UTC date.
        start = datetime(year, 1, 1) - timedelta(days=1)
        end = datetime(year, 12, 31, 23, 59, 59) + timedelta(days=1)
        bbox = tile.bbox_lonlat()
        c = settings.catalog
        results = {
            coll: cat.search(collections=[coll], bbox=bbox, start=start, end=end)
            for coll in (c.s2_collection, c.s1_collection, c.landsat_collection)
        }
        manifest = build_manifest(tile, year, results, max_s2_cloud_cover=c.max_s2_cloud_cover)
        counts = manifest.counts()
        context.log.info("tile %s %d: %s scenes, %d skipped, %d duplicates", tile.id, year,
                         counts, len(manifest.skipped), len(manifest.duplicates))
        return Output(
            manifest,
            metadata={
                "digest": manifest.digest(),
                "scenes_s2": counts["s2"], "scenes_s1": counts["s1"],
                "scenes_landsat": counts["landsat"],
                "skipped": len(manifest.skipped), "duplicates": len(manifest.duplicates),
                "catalog": c.url,
            },
        )

    def _cube_asset(name: str, builder, description: str):
        @asset(
            name=name, partitions_def=partitions, io_manager_key=f"{name}_io_manager",
            group_name=GROUP_INGEST, code_version=__version__, description=description,
            kinds={"zarr", "odc-stac"},
        )
        def _cube(context: AssetExecutionContext, pipeline: PipelineResource,
                  scene_manifest: SceneManifest) -> Output[xr.Dataset]:
            t0 = time.perf_counter()
            tile, _ = tile_year(context.partition_key)
            ds = _lineage(builder(scene_manifest, tile), scene_manifest,
                          pipeline.settings.digest())
            return Output(ds, metadata=_cube_metadata(ds, t0))

        return _cube

    s2_cube = _cube_asset("s2_cube", _s2_cube,
                          "Sentinel-2 L2A DN + SCL on the tile's 10 m grid, one slice per day.")
    s1_cube = _cube_asset("s1_cube", _s1_cube,
                          "Sentinel-1 RTC gamma0 per orbit direction and polarisation.")
    landsat_cube = _cube_asset("landsat_cube", _landsat_cube,
                               "Landsat C2 L2 SR DN + QA_PIXEL on the 10 m grid.")

    @asset(partitions_def=partitions, io_manager_key="s2_masked_io_manager",
           group_name=GROUP_PREPARE, code_version=__version__, kinds={"zarr"})
    def s2_masked(context: AssetExecutionContext, pipeline: PipelineResource,
                  s2_cube: xr.Dataset, scene_manifest: SceneManifest) -> Output[xr.Dataset]:
        """Harmonised S2 DN (BOA offset removed by baseline) and the SCL clear mask."""
        ds = _lineage(_s2_masked(s2_cube, scene_manifest), scene_manifest,
                      pipeline.settings.digest())
        return Output(ds, metadata={"acquisition_days": int(ds.sizes["doy"]),
                                    "boa_offsets": MetadataValue.json(ds.attrs["boa_offsets"])})

    @asset(partitions_def=partitions, io_manager_key="s1_calibrated_io_manager",
           group_name=GROUP_PREPARE, code_version=__version__, kinds={"zarr"})
    def s1_calibrated(context: AssetExecutionContext, pipeline: PipelineResource,
                      s1_cube: xr.Dataset, scene_manifest: SceneManifest) -> Output[xr.Dataset]:
        """S1 backscatter as the models' int16 dB code (20·log10 + 50)·200, 0 = missing."""
        ds = _lineage(_s1_calibrated(s1_cube), scene_manifest, pipeline.settings.digest())
        return Output(ds, metadata={"acquisition_days": int(ds.sizes["doy"])})

    @asset(partitions_def=partitions, io_manager_key="landsat_masked_io_manager",
           group_name=GROUP_PREPARE, code_version=__version__, kinds={"zarr"})
    def landsat_masked(context: AssetExecutionContext, pipeline: PipelineResource,
                       landsat_cube: xr.Dataset,
                       scene_manifest: SceneManifest) -> Output[xr.Dataset]:
        """Landsat surface reflectance ×10000 and the QA_PIXEL clear mask. No released TESSERA
        family consumes Landsat (tessera-model.md §5): it is kept as an analysis product."""
        ds = _lineage(_landsat_masked(landsat_cube, scene_manifest), scene_manifest,
                      pipeline.settings.digest())
        return Output(ds, metadata={"acquisition_days": int(ds.sizes["doy"])})

    @asset(partitions_def=partitions, io_manager_key="embeddings_io_manager",
           group_name=GROUP_EMBED, code_version=__version__, kinds={"zarr", "ray", "pytorch"})
    def embeddings(context: AssetExecutionContext, pipeline: PipelineResource, ray: RayResource,
                   s2_masked: xr.Dataset, s1_calibrated: xr.Dataset,
                   scene_manifest: SceneManifest) -> Output[xr.Dataset]:
        """TESSERA embeddings: int8 (band, y, x) + float32 scale per pixel (NaN = not embedded),
        computed by the Ray actor pool, in the published TESSERA Zarr layout."""
        settings = pipeline.settings
        tile, _ = tile_year(context.partition_key)
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
                 model_is_demo=info.is_demo)
        finite = np.isfinite(result.scales)
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
                "seconds": round(seconds, 2),
                "pixels_per_second": round(float(finite.sum()) / max(seconds, 1e-9), 1),
                "ray_workers": MetadataValue.json(result.workers),
                "manifest_digest": scene_manifest.digest(),
                "median_s2_clear_obs": float(np.median(n_s2)),
                "median_s1_obs": float(np.median(n_s1)),
            },
        )

    @asset(partitions_def=partitions, io_manager_key="embeddings_coarse_io_manager",
           group_name=GROUP_EMBED, code_version=__version__, kinds={"zarr"})
    def embeddings_coarse(context: AssetExecutionContext, pipeline: PipelineResource,
                          embeddings: xr.Dataset) -> Output[xr.Dataset]:
        """Block mean of the dequantised embeddings at the configured resolution, renormalised
        and re-quantised with the family's clamp, in the same TESSERA layout."""
        settings = pipeline.settings
        factor = settings.coarse_factor
        attrs = embeddings.attrs
        family = str(attrs.get("tessera_assets:model_family") or "v2")
        result = coarsen_embeddings(embeddings["embeddings"].data, embeddings["scales"].data,
                                    factor, clamp=clamp_for_family(family))
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
            "tessera:source_written_at": str(attrs.get("tessera:written_at", "")),
        })
        return Output(ds, metadata={
            "resolution_m": settings.coarse_resolution, "factor": factor,
            "shape": MetadataValue.json(list(result.scales.shape)),
            "valid_fraction": float(np.isfinite(result.scales).mean()),
        })

    return [scene_manifest, s2_cube, s1_cube, landsat_cube, s2_masked, s1_calibrated,
            landsat_masked, embeddings, embeddings_coarse]


__all__ = ["build_assets"]

"""``s2_masked``, ``s1_calibrated``, ``landsat_masked``: validity masks and harmonised values,
exactly as the model family expects them (DESIGN §1). ``s2_masked`` adds a true-colour
quicklook for people comparing the embeddings with the scene."""

# No ``from __future__ import annotations``: Dagster checks the ``context`` annotation as a class.

import xarray as xr
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MetadataValue,
    MultiPartitionsDefinition,
    Output,
    asset,
)

from tessera_assets.defs.conventions import (
    EAGER,
    GROUP_PREPARE,
    OWNERS,
    automation_for,
    code_version,
    with_lineage,
)
from tessera_assets.defs.metadata import partition_labels, prepared_metadata, preview_metadata
from tessera_assets.defs.partitions import tile_year
from tessera_assets.defs.resources import PipelineResource
from tessera_assets.ingest import prepared_cubes
from tessera_assets.ops.previews import s2_quicklook
from tessera_assets.products.registry import store_url
from tessera_assets.sources.manifest import SceneManifest


def build_prepared_assets(partitions: MultiPartitionsDefinition) -> list[AssetsDefinition]:
    common = {"partitions_def": partitions, "group_name": GROUP_PREPARE, "owners": OWNERS,
              "kinds": {"zarr"}, "automation_condition": EAGER}
    version = code_version(__name__, "tessera_assets.ingest.prepared_cubes",
                           "tessera_assets.ingest.harmonise", "tessera_assets.ingest.validity")

    def labels(context: AssetExecutionContext, settings, asset: str) -> dict:
        tile, year = tile_year(context.partition_key)
        return partition_labels(settings, asset, tile.id, year, store_url(settings.root, asset))

    @asset(io_manager_key="s2_masked_io_manager", code_version=version, **common)
    def s2_masked(context: AssetExecutionContext, pipeline: PipelineResource,
                  s2_cube: xr.Dataset, scene_manifest: SceneManifest) -> Output[xr.Dataset]:
        """Harmonised S2 DN (BOA offset removed by baseline) and the SCL clear mask, with a
        true-colour quicklook of the least cloudy days."""
        settings = pipeline.settings
        tile, year = tile_year(context.partition_key)
        ds = with_lineage(prepared_cubes.s2_masked(s2_cube, scene_manifest),
                          scene_manifest.digest(), settings.digest())
        preview = preview_metadata(
            context, settings, "s2_masked", tile.id, year,
            lambda px: s2_quicklook(ds, scene_manifest.sensor_items("s2"),
                                    settings.previews.quicklook_days, px),
            f"true colour {tile.id} {year}")
        return Output(ds, metadata={**prepared_metadata(ds),
                                    "boa_offsets": MetadataValue.json(ds.attrs["boa_offsets"]),
                                    **labels(context, settings, "s2_masked"), **preview})

    @asset(io_manager_key="s1_calibrated_io_manager", code_version=version, **common)
    def s1_calibrated(context: AssetExecutionContext, pipeline: PipelineResource,
                      s1_cube: xr.Dataset, scene_manifest: SceneManifest) -> Output[xr.Dataset]:
        """S1 backscatter as the models' int16 dB code (20·log10 + 50)·200, 0 = missing."""
        ds = with_lineage(prepared_cubes.s1_calibrated(s1_cube), scene_manifest.digest(),
                          pipeline.settings.digest())
        return Output(ds, metadata={**prepared_metadata(ds),
                                    **labels(context, pipeline.settings, "s1_calibrated")})

    @asset(io_manager_key="landsat_masked_io_manager", code_version=version,
           **{**common, "automation_condition": automation_for("landsat_masked")})
    def landsat_masked(context: AssetExecutionContext, pipeline: PipelineResource,
                       landsat_cube: xr.Dataset,
                       scene_manifest: SceneManifest) -> Output[xr.Dataset]:
        """Landsat surface reflectance ×10000 and the QA_PIXEL clear mask. No released TESSERA
        family consumes Landsat (tessera-model.md §5): it is kept as an analysis product."""
        ds = with_lineage(prepared_cubes.landsat_masked(landsat_cube, scene_manifest),
                          scene_manifest.digest(), pipeline.settings.digest())
        return Output(ds, metadata={**prepared_metadata(ds),
                                    **labels(context, pipeline.settings, "landsat_masked")})

    return [s2_masked, s1_calibrated, landsat_masked]

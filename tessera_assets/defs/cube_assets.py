"""``s2_cube``, ``s1_cube``, ``landsat_cube``: raw observations on the tile's 10 m grid, one
slice per acquisition day (DESIGN §1). One factory, since the three differ only in the builder."""

# No ``from __future__ import annotations``: Dagster checks the ``context`` annotation as a class.

import time
from collections.abc import Callable

import xarray as xr
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MultiPartitionsDefinition,
    Output,
    asset,
)

from tessera_assets.defs.conventions import (
    GROUP_INGEST,
    OWNERS,
    automation_for,
    code_version,
    with_lineage,
)
from tessera_assets.defs.metadata import cube_metadata, partition_labels
from tessera_assets.defs.partitions import tile_year
from tessera_assets.defs.resources import PipelineResource
from tessera_assets.ingest.cog_reading import ReadConfig
from tessera_assets.ingest.cubes import landsat_cube, s1_cube, s2_cube
from tessera_assets.ops.planner import manifest_estimates
from tessera_assets.products.registry import store_url
from tessera_assets.sources.manifest import SceneManifest

CUBES: dict[str, tuple[Callable[..., xr.Dataset], str]] = {
    "s2_cube": (s2_cube, "Sentinel-2 L2A DN + SCL on the tile's 10 m grid, one slice per day."),
    "s1_cube": (s1_cube, "Sentinel-1 RTC gamma0 per orbit direction and polarisation."),
    "landsat_cube": (landsat_cube, "Landsat C2 L2 SR DN + QA_PIXEL on the 10 m grid."),
}


def _cube_asset(name: str, builder: Callable[..., xr.Dataset], description: str,
                partitions: MultiPartitionsDefinition) -> AssetsDefinition:
    @asset(
        name=name, partitions_def=partitions, io_manager_key=f"{name}_io_manager",
        group_name=GROUP_INGEST, description=description, owners=OWNERS,
        code_version=code_version(__name__, "tessera_assets.ingest.cubes",
                                  "tessera_assets.ingest.cog_reading",
                                  "tessera_assets.ingest.granule_read",
                                  "tessera_assets.ingest.upsample"),
        kinds={"zarr", "rasterio"}, automation_condition=automation_for(name),
    )
    def _cube(context: AssetExecutionContext, pipeline: PipelineResource,
              scene_manifest: SceneManifest) -> Output[xr.Dataset]:
        t0 = time.perf_counter()
        settings = pipeline.settings
        tile, year = tile_year(context.partition_key)
        read = ReadConfig.from_settings(settings.catalog.for_sensor(name.split("_")[0]))
        ds = with_lineage(builder(scene_manifest, tile, read=read), scene_manifest.digest(),
                          settings.digest())
        estimate = manifest_estimates(scene_manifest, settings)[name]
        return Output(ds, metadata={
            **cube_metadata(ds, t0, estimate),
            **partition_labels(settings, name, tile.id, year, store_url(settings.root, name))})

    return _cube


def build_cube_assets(partitions: MultiPartitionsDefinition) -> list[AssetsDefinition]:
    return [_cube_asset(name, builder, description, partitions)
            for name, (builder, description) in CUBES.items()]

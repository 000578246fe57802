"""The Dagster code location: assets, checks, sensors, IO managers, resources and jobs.

``defs`` is built from the settings named by ``$TESSERA_CONFIG`` (plus ``TESSERA_*``
variables); :func:`build_definitions` builds the same graph for explicit settings (tests, CLI).
"""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job

from tessera_assets.config import PipelineSettings
from tessera_assets.defs.assets import build_assets
from tessera_assets.defs.checks import build_checks
from tessera_assets.defs.io_managers import CubeIOManager, EmbeddingsIOManager, ManifestIOManager
from tessera_assets.defs.partitions import tile_year_partitions
from tessera_assets.defs.resources import CatalogResource, PipelineResource, RayResource
from tessera_assets.defs.sensors import build_sensors
from tessera_assets.products.cubes import CUBE_PRODUCTS

PIPELINE_JOB = "tessera_pipeline"


def build_definitions(settings: PipelineSettings | None = None) -> Definitions:
    settings = settings or PipelineSettings.load()
    pipeline = PipelineResource(settings_json=settings.model_dump_json())
    assets = build_assets(settings.years)
    resources = {
        "pipeline": pipeline,
        "catalog": CatalogResource(pipeline=pipeline),
        "ray": RayResource(pipeline=pipeline),
        "manifest_io_manager": ManifestIOManager(pipeline=pipeline),
        "embeddings_io_manager": EmbeddingsIOManager(pipeline=pipeline),
        "embeddings_coarse_io_manager": EmbeddingsIOManager(
            pipeline=pipeline, product="embeddings_coarse", coarse=True),
        **{f"{p}_io_manager": CubeIOManager(pipeline=pipeline, product=p) for p in CUBE_PRODUCTS},
    }
    job = define_asset_job(PIPELINE_JOB, selection=AssetSelection.all(),
                           description="every asset of one tile × year partition, with its checks")
    return Definitions(assets=assets, asset_checks=build_checks(tile_year_partitions(settings.years)),
                       resources=resources, jobs=[job], sensors=build_sensors(settings))


defs = build_definitions()

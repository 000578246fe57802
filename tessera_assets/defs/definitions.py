"""The ``Definitions`` of the code location: assets, checks, sensors, IO managers, resources
and the one job, all built from one :class:`~tessera_assets.config.PipelineSettings`."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    define_asset_job,
    in_process_executor,
    multiprocess_executor,
)

from tessera_assets.config import PipelineSettings
from tessera_assets.defs.assets import build_assets
from tessera_assets.defs.checks import build_checks
from tessera_assets.defs.io_managers import ManifestIOManager, ZoneStoreIOManager
from tessera_assets.defs.partitions import tile_year_partitions
from tessera_assets.defs.resources import CatalogResource, InferenceResource, PipelineResource
from tessera_assets.defs.sensors import build_sensors
from tessera_assets.products.registry import PRODUCTS

PIPELINE_JOB = "tessera_pipeline"


def build_resources(settings: PipelineSettings) -> dict[str, object]:
    """The pipeline settings, catalog, inference service and one IO manager per product."""
    pipeline = PipelineResource(settings_json=settings.model_dump_json())
    return {
        "pipeline": pipeline,
        "catalog": CatalogResource(pipeline=pipeline),
        "inference": InferenceResource(pipeline=pipeline),
        "manifest_io_manager": ManifestIOManager(pipeline=pipeline),
        **{f"{p}_io_manager": ZoneStoreIOManager(pipeline=pipeline, product=p) for p in PRODUCTS},
    }


def build_definitions(settings: PipelineSettings | None = None) -> Definitions:
    """Everything for ``settings`` (default: ``$TESSERA_CONFIG`` plus ``TESSERA_*``)."""
    settings = settings or PipelineSettings.load()
    job = define_asset_job(PIPELINE_JOB, selection=AssetSelection.all(),
                           description="every asset of one tile × year partition, with its checks")
    return Definitions(assets=build_assets(settings.years),
                       asset_checks=build_checks(tile_year_partitions(settings.years)),
                       resources=build_resources(settings), jobs=[job],
                       sensors=build_sensors(settings),
                       executor=(in_process_executor if settings.executor == "in_process"
                                 else multiprocess_executor))

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

from tessera_assets.config import PipelineSettings, runtime_secrets, secret_options
from tessera_assets.defs.assets import build_assets
from tessera_assets.defs.checks import build_checks
from tessera_assets.defs.coverage_checks import build_coverage_checks
from tessera_assets.defs.io_managers import ManifestIOManager, ZoneStoreIOManager
from tessera_assets.defs.partitions import tile_year_partitions
from tessera_assets.defs.qa_checks import build_qa_checks
from tessera_assets.defs.resources import CatalogResource, InferenceResource, PipelineResource
from tessera_assets.defs.sensors import build_sensors
from tessera_assets.products.registry import PRODUCTS

PIPELINE_JOB = "tessera_pipeline"


def build_resources(settings: PipelineSettings) -> dict[str, object]:
    """The pipeline settings, catalog, inference service and one IO manager per product.

    The settings go into the resource (and so into every run's job snapshot) without their
    credentials; each run reads those where it executes, and building refuses credentials
    that a run could not find there."""
    check_secrets_at_run_time(settings)
    pipeline = PipelineResource(settings_json=settings.model_dump_json())
    return {
        "pipeline": pipeline,
        "catalog": CatalogResource(pipeline=pipeline),
        "inference": InferenceResource(pipeline=pipeline),
        "manifest_io_manager": ManifestIOManager(pipeline=pipeline),
        **{f"{p}_io_manager": ZoneStoreIOManager(pipeline=pipeline, product=p) for p in PRODUCTS},
    }


def _paths(options: dict[str, object], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for k, v in options.items():
        out |= _paths(v, (*prefix, k)) if isinstance(v, dict) else {(*prefix, k)}
    return out


def check_secrets_at_run_time(settings: PipelineSettings) -> None:
    """Every credential in ``settings.storage_options`` must be one a run can read itself."""
    given = _paths(secret_options(settings.storage_options))
    found = _paths(runtime_secrets())
    lost = sorted(given - found)
    if lost:
        dotted = ".".join(lost[0])
        raise ValueError(
            f"storage_options.{dotted} is a credential and is never written into the Dagster "
            f"instance: give it at run time as TESSERA_STORAGE_OPTIONS__"
            f"{'__'.join(lost[0]).upper()}, in the file named by TESSERA_SECRETS_FILE, or in "
            "the settings file named by TESSERA_CONFIG")


def build_definitions(settings: PipelineSettings | None = None) -> Definitions:
    """Everything for ``settings`` (default: ``$TESSERA_CONFIG`` plus ``TESSERA_*``)."""
    settings = settings or PipelineSettings.load()
    job = define_asset_job(PIPELINE_JOB, selection=AssetSelection.all(),
                           description="every asset of one tile × year partition, with its checks")
    return Definitions(assets=build_assets(settings.years),
                       asset_checks=[
                           *build_checks(tile_year_partitions(settings.years)),
                           *build_coverage_checks(tile_year_partitions(settings.years)),
                           *build_qa_checks(tile_year_partitions(settings.years))],
                       resources=build_resources(settings), jobs=[job],
                       sensors=build_sensors(settings),
                       executor=(in_process_executor if settings.executor == "in_process"
                                 else multiprocess_executor))

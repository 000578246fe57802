"""Resources: the pipeline settings, the scene catalog and the shared inference service.

Each is a thin wrapper that builds a domain object from configuration; the domain code never
reaches for them itself (DESIGN §2)."""

from __future__ import annotations

from functools import cached_property

from dagster import ConfigurableResource, DagsterRunStatus, InitResourceContext
from pydantic import PrivateAttr

from tessera_assets.catalog.factory import catalog_from_settings
from tessera_assets.config import PipelineSettings
from tessera_assets.defs.partitions import tile_year_ids
from tessera_assets.inference.service import InferenceService
from tessera_assets.ops.partition_lease import LeaseRecord, PartitionLease
from tessera_assets.ops.preflight import PreflightError, check_catalogs, preflight

PARTITION_TAG = "dagster/partition"
MODEL_ASSETS = frozenset({"embeddings", "embeddings_coarse"})
IN_PROGRESS = frozenset({DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED,
                         DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
                         DagsterRunStatus.CANCELING})


class PipelineResource(ConfigurableResource):
    """Pipeline settings: inline JSON (``settings_json``), else a JSON file (``config_path``,
    else ``$TESSERA_CONFIG``), with ``TESSERA_*`` environment variables applied.

    ``settings_json`` never holds credentials (the settings drop them when serialised), so
    none reaches the Dagster instance's job snapshots; they are read where the run executes
    (:meth:`~tessera_assets.config.PipelineSettings.with_runtime_secrets`).

    At the start of a partitioned run it checks the settings (:mod:`tessera_assets.ops.
    preflight`) and takes the partition's lease (:mod:`tessera_assets.ops.partition_lease`),
    so a run that cannot finish, or a second writer of the same tile-year, stops before any
    work."""

    config_path: str = ""
    settings_json: str = ""
    _run_id: str | None = PrivateAttr(default=None)

    @cached_property
    def settings(self) -> PipelineSettings:
        if self.settings_json:
            return PipelineSettings.model_validate_json(self.settings_json).with_runtime_secrets(
                self.config_path or None)
        return PipelineSettings.load(self.config_path or None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        run = context.run
        if run is None or PARTITION_TAG not in run.tags:
            return  # sensors, unpartitioned runs: nothing to check or lock
        self._run_id = run.run_id
        if run.run_id in _HELD:  # another copy of this resource (nested in the IO managers)
            lease, copies = _HELD[run.run_id]
            _HELD[run.run_id] = (lease, copies + 1)
            return
        selection = run.asset_selection  # empty or None: the whole job
        needs_model = not selection or any(k.to_user_string() in MODEL_ASSETS for k in selection)
        preflight(self.settings, needs_model=needs_model)
        tile_id, year = tile_year_ids(run.tags[PARTITION_TAG])
        instance = context.instance

        def alive(rec: LeaseRecord) -> bool | None:
            holder = instance.get_run_by_id(rec.owner) if instance is not None else None
            return None if holder is None else holder.status in IN_PROGRESS

        lease = PartitionLease(self.settings.root, tile_id, year, run.run_id,
                               storage_options=self.settings.storage_options,
                               alive=alive).acquire()
        _HELD[run.run_id] = (lease, 1)
        names = [k.to_user_string() for k in selection] if selection else None
        try:  # catalogs and credentials of the sensors this run reads (issue 10.7)
            for warning in check_catalogs(self.settings, names):
                context.log.warning(warning)
        except PreflightError:
            _HELD.pop(run.run_id, None)
            lease.release()
            raise

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._run_id is None or self._run_id not in _HELD:
            return
        lease, copies = _HELD.pop(self._run_id)
        if copies > 1:
            _HELD[self._run_id] = (lease, copies - 1)
        elif self.settings.executor == "in_process":
            # With one process per step a step's end is not the run's: the lease then stays
            # until the run has finished (``alive``) or stopped renewing (expiry).
            lease.release()


_HELD: dict[str, tuple[PartitionLease, int]] = {}
"""The partition lease of each run executing in this process, and how many copies of the
resource share it (Dagster sets up one per resource that nests it)."""


class CatalogResource(ConfigurableResource):
    """The STAC source named by the settings (stac-geoparquet through rustac, or a STAC API)."""

    pipeline: PipelineResource

    def get(self):
        return catalog_from_settings(self.pipeline.settings.catalog)


class InferenceResource(ConfigurableResource):
    """The run's handle on the shared inference actors of the long-lived Ray cluster
    (docs/adr/005-shared-inference-service.md): the run attaches, never starts Ray, and
    leaves the actors (and their loaded model) to the next run."""

    pipeline: PipelineResource
    _service: InferenceService | None = PrivateAttr(default=None)

    def service(self) -> InferenceService:
        if self._service is None:
            self._service = InferenceService(self.pipeline.settings.inference).connect()
        return self._service

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._service is not None:
            self._service.detach()
            self._service = None

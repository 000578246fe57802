"""Resources: the pipeline settings, the scene catalog and the shared inference service.

Each is a thin wrapper that builds a domain object from configuration; the domain code never
reaches for them itself (DESIGN §2)."""

from __future__ import annotations

from functools import cached_property

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from tessera_assets.catalog.factory import catalog_from_settings
from tessera_assets.config import PipelineSettings
from tessera_assets.inference.service import InferenceService


class PipelineResource(ConfigurableResource):
    """Pipeline settings: inline JSON (``settings_json``), else a JSON file (``config_path``,
    else ``$TESSERA_CONFIG``), with ``TESSERA_*`` environment variables applied."""

    config_path: str = ""
    settings_json: str = ""

    @cached_property
    def settings(self) -> PipelineSettings:
        if self.settings_json:
            return PipelineSettings.model_validate_json(self.settings_json)
        return PipelineSettings.load(self.config_path or None)


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

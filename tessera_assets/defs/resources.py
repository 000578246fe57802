"""Resources: the pipeline settings, the scene catalog and the Ray inference engine.

Each is a thin wrapper that builds a domain object from configuration; the domain code never
reaches for them itself (DESIGN §2)."""

from __future__ import annotations

from functools import cached_property

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from tessera_assets.catalog.backends import catalog_from_settings
from tessera_assets.config import PipelineSettings
from tessera_assets.inference.ray_pool import RayEmbeddingEngine


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


class RayResource(ConfigurableResource):
    """A Ray actor pool holding the model for the duration of one run (local Ray by default,
    a ``ray://`` address from the settings for a cluster)."""

    pipeline: PipelineResource
    _engine: RayEmbeddingEngine | None = PrivateAttr(default=None)

    def engine(self) -> RayEmbeddingEngine:
        if self._engine is None:
            self._engine = RayEmbeddingEngine(self.pipeline.settings.inference).start()
        return self._engine

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None

"""Building the catalog a configuration names: a preset's authentication, rate hints,
timeouts and retries, with credentials checked before any work starts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tessera_assets.catalog.base import Catalog, CatalogError
from tessera_assets.catalog.geoparquet import GeoparquetCatalog
from tessera_assets.catalog.presets import PresetError, RateHints, get_preset, preset_for_url
from tessera_assets.catalog.signing import check_credentials, search_headers
from tessera_assets.catalog.stac_api import StacApiCatalog

if TYPE_CHECKING:
    from tessera_assets.catalog.settings import CatalogSettings


def catalog_from_config(kind: str, url_or_path: str | Path, **options: Any) -> Catalog:
    """Build a catalog from settings: ``kind`` is ``geoparquet``, ``stac-api`` or ``auto``
    (an http(s) URL means a STAC API, anything else stac-geoparquet files).

    A STAC API URL that is a known preset's endpoint gets that preset's request headers
    (the Earthdata token for CMR) and rate-limit hints unless ``options`` set them."""
    kind = kind.lower().replace("_", "-")
    target = str(url_or_path)
    if kind == "auto":
        kind = "stac-api" if target.startswith(("http://", "https://")) else "geoparquet"
    if kind == "geoparquet":
        return GeoparquetCatalog(target, **options)
    if kind in ("stac-api", "stac"):
        preset = preset_for_url(target)
        if preset is not None:
            headers = {**search_headers(preset), **options.pop("headers", {})}
            options = {"page_size": preset.rate.page_size,
                       "requests_per_second": preset.rate.requests_per_second,
                       **options, "headers": headers}
        return StacApiCatalog(target, **options)
    raise CatalogError(f"unknown catalog kind {kind!r}: expected 'geoparquet', 'stac-api' or 'auto'")


def catalog_from_settings(
    settings: CatalogSettings, *, environ: Mapping[str, str] | None = None, **options: Any
) -> Catalog:
    """The catalog a :class:`~tessera_assets.config.CatalogSettings` describes: its preset's
    authentication and rate hints, the configured timeouts and retries. Fails here, before
    any work, when the preset's optional package or credentials are missing."""
    preset = get_preset(settings.preset) if settings.preset else None
    if preset is not None:
        try:
            check_credentials(preset, environ)
        except PresetError as err:
            raise CatalogError(str(err)) from err
    if settings.kind == "geoparquet":
        return GeoparquetCatalog(settings.url, **options)
    preset = preset or preset_for_url(settings.url)
    hints = preset.rate if preset else RateHints()
    params: dict[str, Any] = {
        "headers": search_headers(preset, environ),
        "timeout": settings.search_timeout_s,
        "max_retries": settings.search_retries,
        "page_size": hints.page_size,
        "requests_per_second": settings.requests_per_second or hints.requests_per_second,
    }
    params.update(options)
    return StacApiCatalog(settings.url, **params)

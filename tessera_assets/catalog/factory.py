"""Building the catalog a configuration names: a preset's authentication, rate hints,
timeouts and retries, with credentials checked before any work starts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tessera_assets.catalog.base import Catalog, CatalogError
from tessera_assets.catalog.geoparquet import GeoparquetCatalog
from tessera_assets.catalog.presets import PresetError, RateHints, preset_for_url
from tessera_assets.catalog.routed import RoutedCatalog
from tessera_assets.catalog.signing import check_credentials, search_headers
from tessera_assets.catalog.stac_api import StacApiCatalog
from tessera_assets.sources.bands import SENSORS

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
    any work, when the preset's optional package or credentials are missing.

    Sensors with catalogs of their own (``catalog.s1`` ...) get a :class:`RoutedCatalog`
    that sends each collection to the catalog of its sensor."""
    by_source: dict[str, tuple[CatalogSettings, list[str]]] = {}
    for sensor in SENSORS:
        flat = settings.for_sensor(sensor)
        coll = getattr(flat, f"{sensor}_collection")
        if coll:
            by_source.setdefault(_key(flat), (flat, []))[1].append(coll)
    if len(by_source) <= 1:
        return single_catalog(settings if not by_source else next(iter(by_source.values()))[0],
                              environ=environ, **options)
    routes: dict[str, Catalog] = {}
    sources: dict[str, str] = {}
    for flat, collections in by_source.values():
        catalog = single_catalog(flat, environ=environ, **options)
        for coll in collections:
            if coll in routes:
                raise CatalogError(f"collection {coll!r} is configured for two sensors on "
                                   "different catalogs")
            routes[coll], sources[coll] = catalog, flat.source()
    return RoutedCatalog(routes, sources)


def _key(flat: CatalogSettings) -> str:
    return repr((flat.kind, flat.url, flat.preset, flat.auth, sorted(flat.credentials_env.items())))


def single_catalog(
    settings: CatalogSettings, *, environ: Mapping[str, str] | None = None, **options: Any
) -> Catalog:
    """One catalog from flat settings (no sensor catalogs of its own)."""
    preset = settings.resolved_preset()
    env = settings.credentials_environ(environ)
    if preset is not None and settings.preset:
        try:
            check_credentials(preset, env)
        except PresetError as err:
            raise CatalogError(str(err)) from err
    if settings.kind == "geoparquet":
        return GeoparquetCatalog(settings.url, **options)
    hints = preset.rate if preset else RateHints()
    params: dict[str, Any] = {
        "headers": search_headers(preset, env),
        "timeout": settings.search_timeout_s,
        "max_retries": settings.search_retries,
        "page_size": hints.page_size,
        "requests_per_second": settings.requests_per_second or hints.requests_per_second,
    }
    params.update(options)
    return StacApiCatalog(settings.url, **params)

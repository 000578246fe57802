"""Checks of the configured catalogs before any work (issue 10.7): each sensor's collection
exists (a STAC API's ``GET /collections/{id}``, a stac-geoparquet folder's ``collection``
column) and the credentials its searches and reads need are there. A run that cannot read a
sensor then fails in its first second, not at that sensor's cube after other products were
written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tessera_assets.catalog.base import CatalogError
from tessera_assets.catalog.factory import single_catalog
from tessera_assets.catalog.geoparquet import geoparquet_collections
from tessera_assets.catalog.presets import CatalogPreset, PresetError
from tessera_assets.catalog.settings import CatalogSettings
from tessera_assets.catalog.signing import check_credentials
from tessera_assets.sources.bands import SENSORS, Sensor


def check_sensor_catalog(
    settings: CatalogSettings, sensor: Sensor, environ: Mapping[str, str] | None = None
) -> None:
    """Raise :class:`CatalogError` (one line: the sensor, the catalog, the fix) when the
    sensor's catalog lacks its collection or its credentials are missing."""
    flat = settings.for_sensor(sensor)
    collection = getattr(flat, f"{sensor}_collection")
    if not collection:
        return  # a sensor without a collection has no scenes: nothing to check
    where = f"{sensor} catalog {flat.source()}"
    preset = flat.resolved_preset()
    env = flat.credentials_environ(environ)
    if preset is not None and flat.preset:
        try:
            check_credentials(preset, env)
        except PresetError as err:
            raise CatalogError(f"{where}: {err}") from None
        if flat.auth != "none":  # a mirror that needs no credentials
            _check_aws(preset, sensor, where)
    if flat.kind == "geoparquet":
        known: list[str] | None = geoparquet_collections(flat.url)
        found = collection in known
    else:
        known, found = None, single_catalog(flat, environ=environ).has_collection(collection)
    if not found:
        listed = f" (it has {known})" if known is not None else ""
        raise CatalogError(
            f"{where} has no collection {collection!r}{listed}; set "
            f"catalog.{sensor}_collection (or catalog.{sensor}.collection)"
        )


def _check_aws(preset: CatalogPreset, sensor: Sensor, where: str) -> None:
    """Requester-pays ``s3://`` hrefs need AWS credentials (botocore's usual chain)."""
    if sensor not in preset.aws_credentials_for:
        return
    import botocore.session

    if botocore.session.get_session().get_credentials() is None:
        raise CatalogError(
            f"{where}: its {sensor} assets are in a requester-pays S3 bucket and no AWS "
            "credentials were found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
            f"AWS_PROFILE), or set catalog.{sensor}_collection to null"
        )


def check_catalogs(
    settings: CatalogSettings,
    sensors: Iterable[Sensor] = SENSORS,
    environ: Mapping[str, str] | None = None,
) -> None:
    """:func:`check_sensor_catalog` for each of ``sensors``."""
    for sensor in sensors:
        check_sensor_catalog(settings, sensor, environ)

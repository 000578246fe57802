"""Catalog presets (DESIGN §6): everything needed to use one real catalog, by name.

A preset names the endpoint, the collection that serves each sensor, how searches and reads
authenticate, and hints about rate limits. Settings pick a preset (``catalog.preset``) and
may override any part of it. Credentials never live here or in settings: they are read from
the environment when a catalog or a read is set up (:mod:`tessera_assets.catalog.signing`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tessera_assets.sources.bands import Sensor

Auth = Literal["none", "planetary-computer", "earthdata-token", "cdse-s3"]

EARTHDATA_TOKEN_ENV = "EARTHDATA_TOKEN"
CDSE_KEY_ENV, CDSE_SECRET_ENV = "CDSE_S3_ACCESS_KEY", "CDSE_S3_SECRET_KEY"
CDSE_S3_ENDPOINT = "eodata.dataspace.copernicus.eu"


class PresetError(ValueError):
    """An unknown preset, or one that cannot be used as configured (missing extra or
    credentials); the message says what to do."""


@dataclass(frozen=True)
class RateHints:
    """What the provider tolerates; used to size pages and pace requests, and documented."""

    requests_per_second: float | None = None
    page_size: int = 100
    max_concurrent_reads: int | None = None
    note: str = ""


@dataclass(frozen=True)
class CatalogPreset:
    """One real catalog: endpoint, collection per sensor, authentication, read settings."""

    name: str
    title: str
    kind: Literal["stac-api", "geoparquet"]
    url: str
    collections: Mapping[Sensor, str]
    """The collection each sensor is searched in; a sensor missing here has no scenes."""
    alternatives: Mapping[Sensor, tuple[str, ...]] = field(default_factory=dict)
    """Other collections of the same catalog that the profiles also understand."""
    auth: Auth = "none"
    aws: Mapping[str, Any] | None = None
    """rasterio ``AWSSession`` arguments for ``s3://`` hrefs (requester pays, endpoint)."""
    rate: RateHints = field(default_factory=RateHints)
    egress: str = ""
    aws_credentials_for: tuple[Sensor, ...] = ()
    """Sensors whose hrefs are ``s3://`` in a requester-pays bucket: reads need AWS
    credentials (checked before any work)."""

    def env_needed(self) -> tuple[str, ...]:
        return {"earthdata-token": (EARTHDATA_TOKEN_ENV,),
                "cdse-s3": (CDSE_KEY_ENV, CDSE_SECRET_ENV)}.get(self.auth, ())


PRESETS: dict[str, CatalogPreset] = {
    p.name: p
    for p in (
        CatalogPreset(
            name="earth-search",
            title="Element 84 Earth Search v1 (AWS Open Data)",
            kind="stac-api",
            url="https://earth-search.aws.element84.com/v1",
            collections={"s2": "sentinel-2-c1-l2a", "landsat": "landsat-c2-l2"},
            alternatives={"s2": ("sentinel-2-l2a",)},
            aws={"requester_pays": True},
            aws_credentials_for=("landsat",),
            rate=RateHints(requests_per_second=5.0, page_size=100, note=(
                "no published limit; be gentle, 429s are retried with Retry-After")),
            egress=("Sentinel-2 COGs are public in us-west-2 (free in-region, internet egress "
                    "is paid by AWS Open Data); Landsat hrefs are s3://usgs-landsat, "
                    "requester-pays: AWS credentials needed and the reader pays egress"),
        ),
        CatalogPreset(
            name="planetary-computer",
            title="Microsoft Planetary Computer",
            kind="stac-api",
            url="https://planetarycomputer.microsoft.com/api/stac/v1",
            collections={"s2": "sentinel-2-l2a", "s1": "sentinel-1-rtc",
                         "landsat": "landsat-c2-l2"},
            auth="planetary-computer",
            rate=RateHints(requests_per_second=5.0, page_size=100, note=(
                "searches and SAS token requests are rate limited (429); a subscription "
                "key (PC_SDK_SUBSCRIPTION_KEY) raises the limits")),
            egress=("Azure Blob Storage in West Europe; reads need short-lived SAS tokens, "
                    "signed at read time (never stored in manifests)"),
        ),
        CatalogPreset(
            name="cdse",
            title="Copernicus Data Space Ecosystem STAC",
            kind="stac-api",
            url="https://stac.dataspace.copernicus.eu/v1",
            collections={"s2": "sentinel-2-l2a"},
            auth="cdse-s3",
            aws={"endpoint_url": CDSE_S3_ENDPOINT},
            rate=RateHints(requests_per_second=2.0, page_size=100, max_concurrent_reads=4,
                           note="S3 access has per-user quotas (connections and volume)"),
            egress=("JPEG 2000 (not COG) on s3://eodata with CDSE S3 keys; whole-tile "
                    "reads are slower than COG windows"),
        ),
        CatalogPreset(
            name="nasa-cmr-opera",
            title="NASA CMR-STAC (ASF): OPERA RTC-S1",
            kind="stac-api",
            url="https://cmr.earthdata.nasa.gov/stac/ASF",
            collections={"s1": "OPERA_L2_RTC-S1_V1_1"},
            auth="earthdata-token",
            rate=RateHints(requests_per_second=2.0, page_size=100, note=(
                "CMR throttles heavy clients; one burst (~30 km) per item means many items")),
            egress=("GeoTIFFs behind Earthdata Login (https datapool, redirected to S3); "
                    "in-region s3:// access needs temporary S3 credentials from ASF"),
        ),
        CatalogPreset(
            name="demo",
            title="Embedded demo archive (stac-geoparquet through rustac)",
            kind="geoparquet",
            url="./data/demo/catalog",
            collections={"s2": "sentinel-2-c1-l2a", "s1": "sentinel-1-rtc",
                         "landsat": "landsat-c2-l2"},
        ),
    )
}


@dataclass(frozen=True)
class CatalogRecipe:
    """A catalog per sensor, by preset name: how production combines archives (one preset
    cannot, since each archive serves only some sensors well)."""

    name: str
    title: str
    sensors: Mapping[Sensor, str]
    """The preset each sensor is searched and read with; a sensor missing here has no scenes."""


RECIPES: dict[str, CatalogRecipe] = {
    r.name: r
    for r in (
        CatalogRecipe(
            name="earth-search-opera",
            title=("Reference pipelines' production recipe: Sentinel-2 C1 L2A from Earth "
                   "Search, Sentinel-1 OPERA RTC-S1 from NASA CMR (ASF)"),
            sensors={"s2": "earth-search", "s1": "nasa-cmr-opera"},
        ),
    )
}


def get_preset(name: str) -> CatalogPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise PresetError(f"unknown catalog preset {name!r}; known: {sorted(PRESETS)} "
                          f"(recipes, a catalog per sensor: {sorted(RECIPES)})") from None


def preset_for_url(url: str) -> CatalogPreset | None:
    """The preset whose endpoint this is (trailing slashes and scheme case ignored)."""
    norm = url.rstrip("/").lower()
    for preset in PRESETS.values():
        if preset.kind == "stac-api" and preset.url.rstrip("/").lower() == norm:
            return preset
    return None

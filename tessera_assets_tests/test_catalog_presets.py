"""Catalog presets: settings resolve per-sensor collections from a preset, each preset's
authentication reaches searches and reads (never manifests), and missing optional packages or
credentials fail clearly before any work starts."""

from __future__ import annotations

import json
from pathlib import Path

import pystac
import pytest
from pydantic import ValidationError

from tessera_assets.catalog.base import CatalogError
from tessera_assets.catalog.factory import catalog_from_config, catalog_from_settings
from tessera_assets.catalog.geoparquet import GeoparquetCatalog
from tessera_assets.catalog.presets import PRESETS, get_preset, preset_for_url
from tessera_assets.catalog.signing import (
    forget_tokens,
    href_options,
    is_earthdata,
    needs_signing,
    read_aws_session,
    search_headers,
    signed,
)
from tessera_assets.catalog.stac_api import StacApiCatalog
from tessera_assets.config import CatalogSettings, PipelineSettings
from tessera_assets.ingest.cog_reading import ReadConfig, configure_reads
from tessera_assets.sources.profiles import profile_for
from tessera_assets_tests.fixtures import stac_fixture_dir

TOKEN = "edl-token-for-tests"
pytestmark = pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning")


def test_every_preset_collection_has_a_profile_of_its_sensor() -> None:
    assert set(PRESETS) == {"earth-search", "planetary-computer", "cdse", "nasa-cmr-opera", "demo"}
    for preset in PRESETS.values():
        assert preset.collections, preset.name
        for sensor, coll in preset.collections.items():
            assert profile_for(coll).sensor == sensor, (preset.name, coll)
        for sensor, colls in preset.alternatives.items():
            assert all(profile_for(c).sensor == sensor for c in colls)
        if preset.kind == "stac-api":
            assert preset.url.startswith("https://") and preset_for_url(preset.url + "/") is preset
            assert preset.rate.page_size > 0 and preset.rate.requests_per_second
    assert preset_for_url("http://127.0.0.1:9999/") is None


def test_settings_resolve_collections_from_the_preset() -> None:
    es = CatalogSettings(preset="earth-search")
    assert (es.kind, es.url) == ("stac-api", "https://earth-search.aws.element84.com/v1")
    assert es.collections() == {"s2": "sentinel-2-c1-l2a", "landsat": "landsat-c2-l2"}
    assert es.s1_collection is None
    legacy = CatalogSettings(preset="earth-search", s2_collection="sentinel-2-l2a")
    assert legacy.collections()["s2"] == "sentinel-2-l2a"
    pc = CatalogSettings.model_validate({"preset": "planetary-computer", "s1_collection": None})
    assert pc.collections() == {"s2": "sentinel-2-l2a", "landsat": "landsat-c2-l2"}
    opera = CatalogSettings(preset="nasa-cmr-opera", url="https://cmr.uat.earthdata.nasa.gov/stac/ASF")
    assert opera.url.startswith("https://cmr.uat") and opera.collections() == {"s1": "OPERA_L2_RTC-S1_V1_1"}
    assert CatalogSettings.model_validate_json(opera.model_dump_json()) == opera
    plain = CatalogSettings()  # no preset: the demo archive, as before
    assert plain.collections() == {"s2": "sentinel-2-c1-l2a", "s1": "sentinel-1-rtc",
                                   "landsat": "landsat-c2-l2"}
    assert plain.on_unreadable == "fail"
    with pytest.raises(ValidationError, match=r"unknown catalog preset 'earthsearch'.*earth-search"):
        CatalogSettings(preset="earthsearch")
    with pytest.raises(ValidationError, match="on_unreadable"):
        CatalogSettings(on_unreadable="ignore")  # type: ignore[arg-type]


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TESSERA_CONFIG", raising=False)
    monkeypatch.setenv("TESSERA_CATALOG_PRESET", "planetary-computer")
    monkeypatch.setenv("TESSERA_CATALOG_ON_UNREADABLE", "skip")
    settings = PipelineSettings.load()
    assert settings.catalog.preset == "planetary-computer"
    assert settings.catalog.url == "https://planetarycomputer.microsoft.com/api/stac/v1"
    assert settings.catalog.on_unreadable == "skip"
    assert settings.catalog.collections()["s1"] == "sentinel-1-rtc"


def test_catalog_from_settings_applies_auth_and_hints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
    cat = catalog_from_settings(CatalogSettings(preset="nasa-cmr-opera", search_retries=2,
                                                search_timeout_s=7))
    assert isinstance(cat, StacApiCatalog)
    assert cat.headers == {"Authorization": f"Bearer {TOKEN}"}
    assert (cat.max_retries, cat.timeout, cat.page_size) == (2, 7, 100)
    assert cat._pacer is not None and cat._pacer.interval == pytest.approx(0.5)
    es = catalog_from_settings(CatalogSettings(preset="earth-search", requests_per_second=20))
    assert isinstance(es, StacApiCatalog) and es.headers == {}
    assert es._pacer is not None and es._pacer.interval == pytest.approx(0.05)
    # A bare URL of a known catalog gets the same headers (the resource's old code path).
    plain = catalog_from_config("stac-api", "https://cmr.earthdata.nasa.gov/stac/ASF/")
    assert isinstance(plain, StacApiCatalog) and plain.headers["Authorization"].endswith(TOKEN)


def test_missing_credentials_fail_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EARTHDATA_TOKEN", raising=False)
    monkeypatch.delenv("CDSE_S3_ACCESS_KEY", raising=False)
    with pytest.raises(CatalogError, match="EARTHDATA_TOKEN, which is not set"):
        catalog_from_settings(CatalogSettings(preset="nasa-cmr-opera"))
    with pytest.raises(CatalogError, match="CDSE_S3_ACCESS_KEY, CDSE_S3_SECRET_KEY"):
        catalog_from_settings(CatalogSettings(preset="cdse"))
    # Planetary Computer needs no package nor credentials: SAS tokens are requested at read
    # time (tessera_assets_tests/test_bounded_waits.py).
    assert isinstance(catalog_from_settings(CatalogSettings(preset="planetary-computer")),
                      StacApiCatalog)
    assert search_headers(get_preset("nasa-cmr-opera"), {}) == {}


def test_planetary_computer_hrefs_are_signed_at_read_time(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    from tessera_assets_tests.test_bounded_waits import token_endpoint

    doc = json.loads((stac_fixture_dir() / "planetary-computer__sentinel-2-l2a__S2B_MSIL2A_20250312T014549_R074_T53NKG_20250312T041213.json").read_text())
    item = pystac.Item.from_dict(doc)
    es = pystac.Item.from_dict(json.loads((stac_fixture_dir() / "earth-search__sentinel-2-c1-l2a__S2B_T20EPT_20250731T131905_L2A.json").read_text()))
    assert needs_signing(item.assets["B04"].href) and not needs_signing(es.assets["red"].href)
    forget_tokens()
    with token_endpoint() as (url, asked):
        monkeypatch.setenv("PC_SDK_SAS_URL", url)
        ready, same = signed([item, es])
    forget_tokens()
    assert same is es  # nothing to sign: untouched
    assert ready is not item and ready.assets["B04"].href.endswith("sig=fake")
    assert item.assets["B04"].href == doc["assets"]["B04"]["href"]  # the manifest's stays unsigned
    assert not needs_signing(ready.assets["B04"].href)
    assert asked  # tokens were requested, once per container
    cat = catalog_from_settings(CatalogSettings(preset="planetary-computer"))
    assert isinstance(cat, StacApiCatalog) and cat.modifier is None  # searches stay unsigned


def test_read_config_per_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
    monkeypatch.setenv("CDSE_S3_ACCESS_KEY", "key")
    monkeypatch.setenv("CDSE_S3_SECRET_KEY", "s3cr3t-value")
    base = ReadConfig.from_settings(CatalogSettings(read_retries=3, read_retry_delay_s=0.5,
                                                    read_timeout_s=20, on_unreadable="skip"))
    opts = base.gdal_options()
    assert opts["GDAL_HTTP_MAX_RETRY"] == "3" and opts["GDAL_HTTP_RETRY_DELAY"] == "0.5"
    assert opts["GDAL_HTTP_TIMEOUT"] == "20" and opts["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert {".tif", ".TIF", ".jp2"} <= set(opts["CPL_VSIL_CURL_ALLOWED_EXTENSIONS"].split(","))
    assert base.on_unreadable == "skip" and base.aws is None and base.extra == {}
    opera = ReadConfig.from_settings(CatalogSettings(preset="nasa-cmr-opera"))
    assert opera.gdal_options()["GDAL_HTTP_HEADERS"] == f"Authorization: Bearer {TOKEN}"
    assert opera.redacted()["gdal"]["GDAL_HTTP_HEADERS"] == "***"
    cdse = ReadConfig.from_settings(CatalogSettings(preset="cdse"))
    assert cdse.gdal_options()["AWS_S3_ENDPOINT"] == "eodata.dataspace.copernicus.eu"
    assert cdse.aws == {"endpoint_url": "eodata.dataspace.copernicus.eu",
                        "aws_access_key_id": "key", "aws_secret_access_key": "s3cr3t-value"}
    assert cdse.redacted()["aws"]["aws_secret_access_key"] == "***"
    assert "s3cr3t" not in json.dumps(cdse.redacted()) and TOKEN not in json.dumps(opera.redacted())
    es = ReadConfig.from_settings(CatalogSettings(preset="earth-search"))
    assert es.aws == {"requester_pays": True} == read_aws_session(get_preset("earth-search"))
    asf = "https://datapool.asf.alaska.edu/RTC/OPERA-S1/x_VV.tif"
    assert is_earthdata(asf) and not is_earthdata("https://sentinel-cogs.s3.amazonaws.com/a.tif")
    assert href_options([asf]) == {"GDAL_HTTP_HEADERS": f"Authorization: Bearer {TOKEN}"}
    assert href_options(["https://example.com/a.tif"]) == {}


def test_configure_reads_reaches_odc_stac() -> None:
    """odc-stac ignores GDAL_HTTP_* environment variables; configure_rio is what counts."""
    from odc.loader._rio import capture_rio_env  # what odc-stac hands its reader threads

    cfg = ReadConfig(max_retry=3, retry_delay_s=0.25, timeout_s=9)
    configure_reads(cfg)
    env = capture_rio_env()
    assert (env["GDAL_HTTP_MAX_RETRY"], env["GDAL_HTTP_RETRY_DELAY"]) == ("3", "0.25")
    assert env["GDAL_HTTP_TIMEOUT"] == "9" and env["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    configure_reads(ReadConfig())
    assert capture_rio_env()["GDAL_HTTP_MAX_RETRY"] == "5"


def test_demo_preset_is_the_geoparquet_archive(tmp_path: Path) -> None:
    import stac_geoparquet.arrow as sga

    doc = json.loads((stac_fixture_dir() / "earth-search__sentinel-2-c1-l2a__S2B_T20EPT_20250731T131905_L2A.json").read_text())
    sga.to_parquet(sga.parse_stac_items_to_arrow([doc]), tmp_path / "c1.parquet")
    cat = catalog_from_settings(CatalogSettings(preset="demo", url=str(tmp_path)),
                                extension_directory=tmp_path / "ext")
    assert isinstance(cat, GeoparquetCatalog) and cat.collections == ["sentinel-2-c1-l2a"]
    found = cat.search(collections=["sentinel-2-c1-l2a", None], bbox=(-60, -61, -59, -60),
                       start="2025-07-01", end="2025-08-01")
    assert [i.id for i in found] == [doc["id"]]
    assert cat.search(collections=[None], bbox=(-60, -61, -59, -60), start="2025-07-01",
                      end="2025-08-01") == []


# --------------------------------------------------------------------------- preflight (10.7)


@pytest.fixture(scope="module")
def es_mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Earth Search fixture items as a stac-geoparquet folder (a mirror of the preset)."""
    from tessera_assets_tests.stacapi.archive import build_archive

    root = tmp_path_factory.mktemp("es-mirror")
    return build_archive(root, root.as_uri(), locations=[]).parquet["earth-search"]


def _no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_preflight_checks_collections_and_credentials_of_the_sensors_a_run_reads(
    es_mirror: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tessera_assets.ops.preflight import PreflightError, check_catalogs

    _no_aws(monkeypatch, tmp_path)
    settings = PipelineSettings(
        root=str(tmp_path), catalog={"preset": "earth-search", "kind": "geoparquet",
                                     "url": str(es_mirror)})
    # Landsat from Earth Search is requester pays: without AWS credentials a Landsat-only
    # run stops before any work ...
    with pytest.raises(PreflightError, match=r"landsat catalog earth-search@.*requester-pays"):
        check_catalogs(settings, ["landsat_cube"])
    # ... and the embeddings path never fails for it: the whole job warns, S2 runs pass.
    (warning,) = check_catalogs(settings, None)
    assert "no AWS credentials" in warning and "embeddings path goes on" in warning
    assert check_catalogs(settings, ["s2_cube", "s2_masked", "embeddings"]) == []
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert check_catalogs(settings, ["landsat_cube"]) == []
    # A collection the catalog does not have is named, with what it has.
    wrong = settings.model_copy(update={"catalog": settings.catalog.model_copy(
        update={"s2_collection": "sentinel-2-l1c"})})
    with pytest.raises(PreflightError, match=r"no collection 'sentinel-2-l1c' \(it has \["):
        check_catalogs(wrong, ["s2_cube"])
    # A mirror of a preset that needs credentials needs none.
    monkeypatch.delenv("EARTHDATA_TOKEN", raising=False)
    opera = PipelineSettings(root=str(tmp_path), catalog={
        "preset": "earth-search-opera", "s2": {"kind": "geoparquet", "url": str(es_mirror)},
        "s1": {"kind": "geoparquet", "url": str(es_mirror), "auth": "none"}})
    with pytest.raises(PreflightError, match=r"s1 catalog nasa-cmr-opera@.* no collection"):
        check_catalogs(opera, ["s1_cube"])  # no token asked for; the collection is checked
    assert check_catalogs(opera, ["s2_cube"]) == []


def test_a_run_stops_at_its_start_when_a_collection_is_missing(
    es_mirror: Path, tmp_path: Path
) -> None:
    """Through Dagster: the run's resource checks the catalogs once it holds the partition,
    and a missing collection fails the run before any step starts (its lease released)."""
    from dagster import AssetKey, DagsterInstance

    from tessera_assets_tests.test_cli_errors import TILE, _failure_text, _run

    root = tmp_path / "data"
    settings = PipelineSettings(root=str(root), tile_size=64, years=[2024], catalog={
        "kind": "geoparquet", "url": str(es_mirror), "s2_collection": "sentinel-2-l1c",
        "s1_collection": None, "landsat_collection": None})
    result = _run(settings, DagsterInstance.ephemeral(), [AssetKey("scene_manifest")])
    assert not result.success
    assert "s2 catalog" in _failure_text(result) and "no collection 'sentinel-2-l1c'" in \
        _failure_text(result)
    assert not any(e.is_step_start for e in result.all_events)
    assert not [p for p in root.rglob("*") if p.is_file()], TILE  # nothing written, lease gone

"""``tessera-assets catalog export`` (issue 10.9): a search of several catalogs (S2 from one
loopback STAC API, OPERA from another) over an AOI and years, written as stac-geoparquet and
read back through the geoparquet backend with bbox searches; and a STAC API's collections are
checked with ``GET /collections/{id}`` (issue 10.7)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tessera_assets.catalog.base import CatalogError
from tessera_assets.catalog.checks import check_sensor_catalog
from tessera_assets.catalog.duckdb_extensions import duckdb_extension_directory
from tessera_assets.catalog.geoparquet import GeoparquetCatalog
from tessera_assets.catalog.stac_api import StacApiCatalog
from tessera_assets.config import CONFIG_ENV, PipelineSettings
from tessera_assets_tests.stacapi.archive import LOCATIONS, build_archive
from tessera_assets_tests.stacapi.servers import stac_apis

C1 = "sentinel-2-c1-l2a"
OPERA = "OPERA_L2_RTC-S1_V1_1"
AOI = "-106,40,-92,43"  # Colorado (S2, Earth Search) to Iowa (OPERA, CMR)
LOC = {loc.name: loc for loc in LOCATIONS}
pytestmark = [
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning"),
]


@pytest.fixture(scope="module")
def apis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    work = tmp_path_factory.mktemp("export")
    archive = build_archive(work, work.as_uri(), locations=[])
    folders = {"es": archive.parquet["earth-search"], "cmr": archive.parquet["asf"]}
    with stac_apis(folders, duckdb_extension_directory(work / "ext"), work) as urls:
        yield urls


def _settings(apis: dict[str, str], root: Path) -> PipelineSettings:
    return PipelineSettings(
        root=str(root),
        years=[2023, 2024],
        catalog={
            "preset": "earth-search-opera",
            "requests_per_second": 50,
            "s2": {"url": apis["es"], "auth": "none"},
            "s1": {"url": apis["cmr"], "auth": "none"},
        },
    )


def test_export_of_two_catalogs_reads_back_through_geoparquet(
    apis: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from tessera_assets.cli.main import main

    settings = _settings(apis, tmp_path / "data")
    monkeypatch.setenv(CONFIG_ENV, str(settings.save(tmp_path / "tessera.json")))
    out = tmp_path / "export"
    assert main(["catalog", "export", "--aoi", AOI, "--years", "2023-2024", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"from earth-search@{apis['es']}" in printed
    assert f"from nasa-cmr-opera@{apis['cmr']}" in printed
    assert sorted(p.name for p in out.iterdir()) == [f"{OPERA}.parquet", f"{C1}.parquet"]
    # stac-geoparquet's writer: GeoParquet metadata on the geometry column.
    assert b"geo" in pq.read_schema(out / f"{C1}.parquet").metadata
    back = GeoparquetCatalog(out, extension_directory=tmp_path / "ext")
    assert back.collections == sorted([C1, OPERA])
    api = StacApiCatalog(apis["es"], backoff=0.05, max_backoff=0.1)
    for loc, coll, url in (("colorado", C1, apis["es"]), ("iowa", OPERA, apis["cmr"])):
        box = LOC[loc].tile.bbox_lonlat()
        args = dict(collections=[coll], bbox=box, start="2023-01-01", end="2024-12-31")
        want = StacApiCatalog(url, backoff=0.05, max_backoff=0.1).search(**args)
        got = back.search(**args)
        assert want and [i.id for i in got] == [i.id for i in want], loc
        assert got[0].assets.keys() == want[0].assets.keys()
    far = LOC["austria"].tile.bbox_lonlat()  # outside the AOI: nothing was exported there
    assert back.search(collections=[C1], bbox=far, start="2023-01-01", end="2025-12-31") == []
    assert (
        api.search(
            collections=[C1],
            bbox=LOC["colorado"].tile.bbox_lonlat(),
            start="2025-01-01",
            end="2025-12-31",
        )
        == []
    )


def test_stac_api_collections_are_checked(apis: dict[str, str], tmp_path: Path) -> None:
    api = StacApiCatalog(apis["es"], backoff=0.05, max_backoff=0.1)
    assert api.has_collection(C1) and not api.has_collection("sentinel-2-l1c")
    settings = _settings(apis, tmp_path).catalog
    check_sensor_catalog(settings, "s2")
    check_sensor_catalog(settings, "s1")
    wrong = settings.model_validate(
        {
            **settings.model_dump(),
            "s1": {"url": apis["es"], "auth": "none", "preset": "nasa-cmr-opera"},
        }
    )
    with pytest.raises(
        CatalogError,
        match=rf"s1 catalog nasa-cmr-opera@{apis['es']} has no "
        rf"collection '{OPERA}'",
    ):
        check_sensor_catalog(wrong, "s1")

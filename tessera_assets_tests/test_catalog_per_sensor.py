"""A catalog per sensor (issue 10.1): each sensor may name its own catalog (preset, kind, URL,
collection, credentials); the scene manifest records which catalog each item came from; the
STAC sensor watches every catalog; the production recipe (S2 from Earth Search, OPERA RTC-S1
from NASA CMR) runs end to end to embeddings from two loopback STAC APIs.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tessera_assets.catalog.factory import catalog_from_settings
from tessera_assets.catalog.geoparquet import GeoparquetCatalog
from tessera_assets.catalog.routed import RoutedCatalog
from tessera_assets.catalog.settings import CatalogSettings
from tessera_assets.config import PipelineSettings
from tessera_assets.ingest.cog_reading import ReadConfig
from tessera_assets.ops.scene_watch import TileIndex, WatchCursor, scan_new_scenes
from tessera_assets.sources.manifest import (
    CATALOG_PROPERTY,
    SceneManifest,
    build_manifest,
    search_tile,
)
from tessera_assets_tests.stacapi.archive import LOCATIONS, build_archive

ES_URL = "https://earth-search.aws.element84.com/v1"
CMR_URL = "https://cmr.earthdata.nasa.gov/stac/ASF"
OPERA = "OPERA_L2_RTC-S1_V1_1"
C1 = "sentinel-2-c1-l2a"
LOC = {loc.name: loc for loc in LOCATIONS}
pytestmark = [
    pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]


# --------------------------------------------------------------------------- settings


def test_the_recipe_names_a_catalog_per_sensor(monkeypatch: pytest.MonkeyPatch) -> None:
    c = CatalogSettings(preset="earth-search-opera")
    assert c.collections() == {"s2": C1, "s1": OPERA}  # Landsat: no scenes
    assert c.sources() == {C1: f"earth-search@{ES_URL}", OPERA: f"nasa-cmr-opera@{CMR_URL}"}
    s1 = c.for_sensor("s1")
    assert (s1.kind, s1.url, s1.preset, s1.s1_collection, s1.s2_collection) == (
        "stac-api",
        CMR_URL,
        "nasa-cmr-opera",
        OPERA,
        None,
    )
    # The OPERA catalog reads with the Earthdata token, the S2 one without.
    monkeypatch.setenv("EARTHDATA_TOKEN", "tok")
    assert "GDAL_HTTP_HEADERS" in ReadConfig.from_settings(s1).extra
    assert "GDAL_HTTP_HEADERS" not in ReadConfig.from_settings(c.for_sensor("s2")).extra


def test_a_sensor_catalog_can_point_a_preset_at_a_mirror_without_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EARTHDATA_TOKEN", raising=False)
    monkeypatch.setenv("TESSERA_CATALOG_PRESET", "earth-search-opera")
    monkeypatch.setenv("TESSERA_CATALOG__S1__URL", "http://127.0.0.1:9/stac")
    monkeypatch.setenv("TESSERA_CATALOG__S1__AUTH", "none")
    c = PipelineSettings.load().catalog
    s1 = c.for_sensor("s1")
    assert (s1.url, s1.preset, s1.s1_collection) == (
        "http://127.0.0.1:9/stac",
        "nasa-cmr-opera",
        OPERA,
    )
    preset = s1.resolved_preset()
    assert preset is not None and preset.auth == "none" and preset.url == s1.url
    catalog = catalog_from_settings(c)  # no token needed for the mirror
    assert isinstance(catalog, RoutedCatalog)
    assert catalog.sources[OPERA] == "nasa-cmr-opera@http://127.0.0.1:9/stac"
    assert "Authorization" not in catalog.route(OPERA).headers
    # The real CMR endpoint still needs the token, before any work.
    with pytest.raises(Exception, match="EARTHDATA_TOKEN"):
        catalog_from_settings(CatalogSettings(preset="earth-search-opera"))


def test_credentials_env_names_where_a_sensor_reads_its_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EARTHDATA_TOKEN", raising=False)
    monkeypatch.setenv("OPERA_TOKEN", "opera-secret")
    c = CatalogSettings.model_validate(
        {
            "preset": "earth-search-opera",
            "s1": {"credentials_env": {"EARTHDATA_TOKEN": "OPERA_TOKEN"}},
        }
    )
    catalog = catalog_from_settings(c)
    assert catalog.route(OPERA).headers == {"Authorization": "Bearer opera-secret"}
    read = ReadConfig.from_settings(c.for_sensor("s1"))
    assert read.extra["GDAL_HTTP_HEADERS"] == "Authorization: Bearer opera-secret"
    assert "opera-secret" not in json.dumps(read.redacted())


def test_settings_digest_changes_only_where_it_must() -> None:
    base = PipelineSettings()
    same = PipelineSettings(catalog={"s2": None, "s1": None, "auth": None})
    assert same.digest() == base.digest()  # single-catalog settings keep their digest
    recipe = PipelineSettings(catalog={"preset": "earth-search-opera"})
    mirror = PipelineSettings(
        catalog={
            "preset": "earth-search-opera",
            "s1": {"auth": "none", "credentials_env": {"EARTHDATA_TOKEN": "X"}},
        }
    )
    assert mirror.digest() == recipe.digest()  # how to authenticate changes no pixel
    other = PipelineSettings(
        catalog={"preset": "earth-search-opera", "s1": {"collection": "OPERA_L2_RTC-S1_V1"}}
    )
    assert other.digest() != recipe.digest()  # another collection is another input


def test_unknown_sensor_preset_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="s1: unknown catalog preset 'nope'"):
        CatalogSettings.model_validate({"s1": {"preset": "nope"}})


# --------------------------------------------------------------------------- two catalogs


def _opera_over(doc: dict[str, Any], lon: float, lat: float, when: datetime) -> dict[str, Any]:
    """An OPERA RTC-S1 item shaped like the real CMR one, moved over (lon, lat) at ``when``:
    same burst naming, assets and (absent) projection metadata, as the demo generator shifts
    its templates."""
    out = copy.deepcopy(doc)
    d = 0.35
    ring = [
        [lon - d, lat - d],
        [lon + d, lat - d],
        [lon + d, lat + d],
        [lon - d, lat + d],
        [lon - d, lat - d],
    ]
    out["geometry"] = {"type": "Polygon", "coordinates": [ring]}
    out["bbox"] = [lon - d, lat - d, lon + d, lat + d]
    old_id = doc["id"]
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    out["id"] = old_id.replace(old_id.split("_")[4], stamp, 1)  # ..._T063-133417-IW3_<time>_...
    iso = when.isoformat().replace("+00:00", "Z")
    for key in ("datetime", "start_datetime", "end_datetime"):
        if key in out["properties"]:
            out["properties"][key] = iso
    for asset in out["assets"].values():
        asset["href"] = asset["href"].replace(old_id, out["id"])
    return out


def opera_items_over_colorado(
    archive_items: dict[str, list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Three OPERA items over the Colorado S2 tile in April 2024 (the fixtures have OPERA only
    over Iowa): ascending passes at the real item's UTC time of day."""
    template = archive_items["asf"][0]
    loc = LOC["colorado"]
    first = datetime(2024, 4, 2, 0, 52, tzinfo=UTC)  # local solar time ≈ 17:50: ascending
    return [
        _opera_over(template, loc.lon, loc.lat, first + timedelta(days=12 * i)) for i in range(3)
    ]


@pytest.fixture(scope="module")
def two_archives(tmp_path_factory: pytest.TempPathFactory):
    """The Earth Search fixture items (S2 C1 over Colorado) and OPERA items over the same
    place, as two catalogs, with COGs for the Colorado tile."""
    from tessera_assets_tests.stacapi import archive as archive_mod

    root = tmp_path_factory.mktemp("two-catalogs")
    items = archive_mod.fixture_items()
    opera = opera_items_over_colorado(items)
    original = archive_mod.fixture_items
    archive_mod.fixture_items = lambda: {"earth-search": items["earth-search"], "asf": opera}
    try:
        archive = build_archive(root, root.as_uri(), locations=["colorado"])
    finally:
        archive_mod.fixture_items = original
    return archive


def _two_catalog_settings(archive, **kw: Any) -> CatalogSettings:
    return CatalogSettings.model_validate(
        {
            "kind": "geoparquet",
            "url": str(archive.parquet["earth-search"]),
            "s2_collection": C1,
            "s1_collection": None,
            "landsat_collection": None,
            "s1": {"kind": "geoparquet", "url": str(archive.parquet["asf"]), "collection": OPERA},
            **kw,
        }
    )


def test_manifest_records_the_catalog_of_each_item(two_archives, tmp_path: Path) -> None:
    c = _two_catalog_settings(two_archives)
    catalog = catalog_from_settings(c)
    assert isinstance(catalog, RoutedCatalog)
    assert all(isinstance(r, GeoparquetCatalog) for r in catalog.routes.values())
    tile = LOC["colorado"].tile
    results = search_tile(catalog, tile, 2024, c.collections())
    manifest = build_manifest(tile, 2024, results, sources=c.sources())
    counts = manifest.counts()
    assert counts["s2"] >= 5 and counts["s1"] == 3, counts
    by_sensor = {
        s: {it.properties[CATALOG_PROPERTY] for it in manifest.sensor_items(s)}
        for s in ("s2", "s1")
    }
    assert by_sensor == {
        "s2": {str(two_archives.parquet["earth-search"])},
        "s1": {str(two_archives.parquet["asf"])},
    }
    # The column survives a save; it is provenance, not part of the digest.
    url = str(tmp_path / "m")
    manifest.save(url)
    back = SceneManifest.load(url)
    assert [it.properties[CATALOG_PROPERTY] for it in back.items] == [
        it.properties[CATALOG_PROPERTY] for it in manifest.items
    ]
    plain = build_manifest(tile, 2024, search_tile(catalog, tile, 2024, c.collections()))
    assert CATALOG_PROPERTY not in plain.items[0].properties
    assert plain.digest() == manifest.digest()


def test_the_scene_sensor_watches_every_catalog(two_archives) -> None:
    c = _two_catalog_settings(two_archives)
    catalog = catalog_from_settings(c)
    tile = LOC["colorado"].tile
    index = TileIndex.build({tile.id: [2024]})
    now = datetime(2024, 5, 1, tzinfo=UTC)
    first = scan_new_scenes(
        catalog,
        index,
        c.collections(),
        WatchCursor(),
        now=now,
        years=[2024],
        lookback=timedelta(days=60),
    )
    assert {s.collection: s.source for s in first.scans} == {
        C1: str(two_archives.parquet["earth-search"]),
        OPERA: str(two_archives.parquet["asf"]),
    }
    assert all(s.bootstrap and s.items for s in first.scans) and not first.affected
    # Items the cursor has not seen, in either catalog, are news for the tile-year.
    cursor = WatchCursor.from_json(first.cursor.to_json())
    for cc in cursor.collections.values():
        cc.seen = cc.seen[1:]
    later = scan_new_scenes(
        catalog, index, c.collections(), cursor, now=now, years=[2024], lookback=timedelta(days=60)
    )
    assert {s.collection: s.new for s in later.scans} == {C1: 1, OPERA: 1}
    assert list(later.affected) == [(tile.id, 2024)] and len(later.affected[(tile.id, 2024)]) == 2


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_recipe_to_embeddings_from_two_stac_apis(two_archives, tmp_path: Path) -> None:
    """The production recipe pointed at two loopback mirrors (no credentials): S2 from the
    Earth Search one, OPERA from the CMR one, one partition through Dagster to embeddings."""
    from dagster import DagsterInstance

    from tessera_assets.catalog.duckdb_extensions import duckdb_extension_directory
    from tessera_assets.config import InferenceSettings
    from tessera_assets.defs import PIPELINE_JOB, build_definitions
    from tessera_assets.defs.partitions import TILES, partition_key
    from tessera_assets.model.demo_weights import write_demo_checkpoint
    from tessera_assets.products.registry import manifest_url, open_store
    from tessera_assets_tests.stacapi.servers import stac_apis

    tile = LOC["colorado"].tile
    model = tmp_path / "demo-v2-nano.pt"
    write_demo_checkpoint(model, family="v2-nano", seed=0)
    ext = duckdb_extension_directory(tmp_path / "duckdb-extensions")
    folders = {"es": two_archives.parquet["earth-search"], "cmr": two_archives.parquet["asf"]}
    with stac_apis(folders, ext, tmp_path) as apis:
        settings = PipelineSettings(
            root=str(tmp_path / "data"),
            tile_size=tile.size,
            years=[2024],
            coarse_resolution=160.0,
            catalog={
                "preset": "earth-search-opera",
                "requests_per_second": 50,
                "s2": {"url": apis["es"], "auth": "none"},
                "s1": {"url": apis["cmr"], "auth": "none"},
            },
            inference=InferenceSettings(
                model_source=str(model), family="v2-nano", batch_size=512, strip_rows=32
            ),
        )
        instance = DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(TILES.name, [tile.id])
        result = (
            build_definitions(settings)
            .resolve_job_def(PIPELINE_JOB)
            .execute_in_process(
                partition_key=partition_key(tile, 2024), instance=instance, raise_on_error=False
            )
        )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    manifest = SceneManifest.load(manifest_url(settings.root, tile.id, 2024))
    sources = {
        s: {it.properties[CATALOG_PROPERTY] for it in manifest.sensor_items(s)}
        for s in ("s2", "s1")
    }
    assert sources == {
        "s2": {f"earth-search@{apis['es']}"},
        "s1": {f"nasa-cmr-opera@{apis['cmr']}"},
    }
    assert manifest.counts()["s1"] == 3 and manifest.counts()["s2"] >= 5
    emb = open_store("embeddings", settings).read_tile(tile, 2024).compute()
    assert int(emb["s2_obs_count"].values.max()) > 0 and int(emb["s1_obs_count"].values.max()) > 0
    embedded = np.isfinite(emb["scales"].values)
    assert embedded.mean() > 0.5 and emb["embeddings"].values[:, embedded].any()

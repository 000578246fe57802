"""Sensors: new scenes in the demo catalog → exactly the affected tile-years; AOI request files
→ tile partitions (or a rejection the requester can read); automation on by default; the
scene-watch domain logic (footprints, search boxes, cursor, provisional years)."""

from __future__ import annotations

import copy
import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import shapely
import stac_geoparquet.arrow as sga
from dagster import AssetKey, DagsterInstance, DefaultSensorStatus, build_sensor_context

from tessera_assets.aoi import load_aoi
from tessera_assets.catalog.geoparquet import GeoparquetCatalog
from tessera_assets.cli.aoi import register_aoi
from tessera_assets.config import PipelineSettings
from tessera_assets.defs import build_definitions
from tessera_assets.defs.conventions import OPTIONAL_PRODUCTS
from tessera_assets.defs.partitions import TILES
from tessera_assets.defs.resources import CatalogResource, PipelineResource
from tessera_assets.defs.sensors import AOI_SENSOR, AUTOMATION_SENSOR, STAC_SENSOR
from tessera_assets.demo import DemoArchive, DemoSpec, generate_demo_archive
from tessera_assets.demo.area import DEMO_EPSG, DemoPaths, demo_bounds, demo_settings
from tessera_assets.grid import Tile, tiles_for_geometry
from tessera_assets.ops.aoi_registry import AoiRegistry
from tessera_assets.ops.aoi_requests import requests_url
from tessera_assets.ops.provisional import provisional_status
from tessera_assets.ops.scene_watch import (
    CollectionCursor,
    TileIndex,
    WatchCursor,
    scan_new_scenes,
    search_boxes,
    tile_footprints,
)

OPS_TILE_SIZE = 64
OPS_AOI_UTM = (636_900.0, 5_762_300.0, 638_000.0, 5_762_800.0)
"""Two 640 m tiles side by side in the demo area (as in test_pipeline_e2e)."""
S2, S1, LANDSAT = "sentinel-2-c1-l2a", "sentinel-1-rtc", "landsat-c2-l2"


def ops_demo(tmp_path_factory: pytest.TempPathFactory, home: Path
             ) -> tuple[PipelineSettings, DemoArchive, list[Tile]]:
    """Settings over a two-month demo archive (Nov–Dec 2024, ~4 s to generate), shared by the
    operations tests of one session; ``home`` holds this caller's data root and settings."""
    tiles = tiles_for_geometry(load_aoi(list(OPS_AOI_UTM), crs=f"EPSG:{DEMO_EPSG}"),
                               OPS_TILE_SIZE)
    spec = DemoSpec(epsg=DEMO_EPSG, bounds=demo_bounds([t.bounds for t in tiles]), year=2024,
                    start=date(2024, 11, 1), end=date(2024, 12, 31))
    archive = generate_demo_archive(spec, tmp_path_factory.getbasetemp() / "ops-demo-archive")
    settings = demo_settings(DemoPaths(home), tile_size=OPS_TILE_SIZE)
    settings.catalog.url = str(archive.catalog_dir)
    return settings, archive, tiles


def _resources(settings: PipelineSettings) -> dict:
    pipeline = PipelineResource(settings_json=settings.model_dump_json())
    return {"pipeline": pipeline, "catalog": CatalogResource(pipeline=pipeline)}


def _sensor(settings: PipelineSettings, name: str):
    return next(s for s in build_definitions(settings).sensors if s.name == name)


def _tick(settings: PipelineSettings, name: str, instance: DagsterInstance,
          cursor: str | None = None):
    with build_sensor_context(instance=instance, cursor=cursor,
                              resources=_resources(settings)) as ctx:
        return _sensor(settings, name)(ctx)


def _publish(catalog: Path, name: str, items: list[dict]) -> None:
    sga.to_parquet(sga.parse_stac_items_to_arrow(items), catalog / f"{name}.parquet")


def _variant(item: dict, new_id: str, when: str, geometry: shapely.Geometry | None = None,
             **props) -> dict:
    out = copy.deepcopy(item)
    out["id"] = new_id
    out["properties"]["datetime"] = when
    out["properties"].update(props)
    if geometry is not None:
        out["geometry"] = shapely.geometry.mapping(geometry)
        out["bbox"] = list(geometry.bounds)
    return out


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("sensors")
    settings, archive, tiles = ops_demo(tmp_path_factory, home)
    catalog = home / "catalog"  # a copy: this module publishes new scenes into it
    shutil.copytree(archive.catalog_dir, catalog)
    settings.catalog.url = str(catalog)
    settings.catalog.max_s2_cloud_cover = 80.0
    return settings, archive, tiles, catalog


def test_new_scenes_request_exactly_the_affected_tile_years(demo) -> None:
    settings, archive, tiles, catalog = demo
    a, b = tiles
    instance = DagsterInstance.ephemeral()
    register_aoi(instance, settings, "demo", list(OPS_AOI_UTM), [2024], crs=f"EPSG:{DEMO_EPSG}")
    # A second AOI elsewhere in England: registered, but no new scene touches it.
    other = register_aoi(instance, settings, "elsewhere", [-2.0, 52.5, -1.99, 52.505], [2024])
    assert not set(other.tiles) & {a.id, b.id}

    first = _tick(settings, STAC_SENSOR, instance)
    assert list(first.run_requests) == []  # baseline: what is already there is not news
    cursor = WatchCursor.from_json(first.cursor)
    assert cursor.collections[S2].watermark.startswith("2024-12-")

    s2 = archive.item_dicts(S2)[-1]
    landsat = archive.item_dicts(LANDSAT)[-1]
    s1 = archive.item_dicts(S1)[-1]
    inside_a = a.footprint_lonlat().buffer(-0.001)
    inside_b = b.footprint_lonlat().buffer(-0.001)
    news = [
        _variant(s2, "NEW_S2_A", "2024-12-30T11:00:00Z", inside_a, **{"eo:cloud_cover": 10.0}),
        _variant(s2, "NEW_S2_B_CLOUDY", "2024-12-30T11:00:00Z", inside_b,
                 **{"eo:cloud_cover": 95.0}),  # above max_s2_cloud_cover: changes nothing
        _variant(s2, "NEW_S2_FAR", "2024-12-30T11:00:00Z", shapely.box(20, 40, 21, 41)),
    ]
    _publish(catalog, "news", news)
    _publish(catalog, "news-landsat", [
        _variant(landsat, "NEW_LS_B", "2024-12-29T10:50:00Z", inside_b)])
    _publish(catalog, "news-s1", [  # 2025 is not a configured year
        _variant(s1, "NEW_S1_AB_2025", "2025-01-02T17:30:00Z",
                 a.footprint_lonlat().union(b.footprint_lonlat()).envelope)])

    second = _tick(settings, STAC_SENSOR, instance, first.cursor)
    requests = list(second.run_requests)
    assert sorted(r.partition_key for r in requests) == [f"{a.id}|2024", f"{b.id}|2024"]
    assert all(r.asset_selection == [AssetKey("scene_manifest")] for r in requests)
    by_key = {r.partition_key: r for r in requests}
    assert by_key[f"{a.id}|2024"].tags["tessera/new_items"] == "1"

    third = _tick(settings, STAC_SENSOR, instance, second.cursor)
    assert list(third.run_requests) == []  # nothing new since

    # The same item republished (new `updated`) is news again, for its tile only.
    news[0]["properties"]["updated"] = "2025-02-01T00:00:00Z"
    _publish(catalog, "news", news)
    fourth = _tick(settings, STAC_SENSOR, instance, third.cursor)
    assert [r.partition_key for r in fourth.run_requests] == [f"{a.id}|2024"]
    assert fourth.run_requests[0].run_key not in {r.run_key for r in second.run_requests}


def test_aoi_request_sensor_adds_partitions_and_rejects_with_reason(demo) -> None:
    settings, _, _, _ = demo
    settings = settings.model_copy(update={"root": str(Path(settings.root).parent / "aoi-root")})
    inbox = Path(requests_url(settings))
    inbox.mkdir(parents=True)
    good = {"type": "Feature", "properties": {"name": "oxford", "years": "2024",
                                              "materialize": True},
            "geometry": shapely.geometry.mapping(shapely.box(-1.26, 51.75, -1.25, 51.755))}
    bad = {"type": "Feature", "properties": {"name": "bad", "years": "2019-2020"},
           "geometry": good["geometry"]}
    (inbox / "oxford.geojson").write_text(json.dumps(good))
    (inbox / "bad.geojson").write_text(json.dumps(bad))
    instance = DagsterInstance.ephemeral()

    result = _tick(settings, AOI_SENSOR, instance)

    record = AoiRegistry(settings.root).get("oxford")
    [add] = result.dynamic_partitions_requests
    assert add.partitions_def_name == TILES.name
    assert sorted(add.partition_keys) == sorted(record.tiles)
    assert sorted(r.partition_key for r in result.run_requests) == \
        sorted(f"{t}|2024" for t in record.tiles)
    assert all(r.asset_selection == [AssetKey("scene_manifest")] for r in result.run_requests)
    error = (inbox / "rejected" / "bad.error.txt").read_text()
    assert "years [2019, 2020] are outside the configured years 2024-2024" in error
    assert (inbox / "accepted" / "oxford.geojson").exists()

    # Once the partitions exist, a quiet tick skips; a lost partition is re-added.
    instance.add_dynamic_partitions(TILES.name, record.tiles)
    quiet = _tick(settings, AOI_SENSOR, instance)
    assert "no AOI requests" in quiet.skip_message
    instance.delete_dynamic_partition(TILES.name, record.tiles[0])
    healed = _tick(settings, AOI_SENSOR, instance)
    assert healed.dynamic_partitions_requests[0].partition_keys == [record.tiles[0]]
    assert list(healed.run_requests) == []


def test_budget_rejects_requests_that_ask_to_run(demo) -> None:
    settings, _, _, _ = demo
    settings = settings.model_copy(update={
        "root": str(Path(settings.root).parent / "budget-root"),
        "planner": settings.planner.model_copy(update={"budget_usd": 0.0})})
    inbox = Path(requests_url(settings))
    inbox.mkdir(parents=True)
    doc = {"type": "Feature", "properties": {"years": [2024], "materialize": True},
           "geometry": shapely.geometry.mapping(shapely.box(-1.0, 52.0, -0.99, 52.005))}
    (inbox / "costly.geojson").write_text(json.dumps(doc))
    result = _tick(settings, AOI_SENSOR, DagsterInstance.ephemeral())
    assert "no new tiles" in result.skip_message
    error = (inbox / "rejected" / "costly.error.txt").read_text()
    assert "exceeds the budget $0.00 (planner.budget_usd)" in error


def test_sensors_and_automation_are_on_by_default(demo) -> None:
    settings = demo[0]
    defs = build_definitions(settings)
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == {AOI_SENSOR, STAC_SENSOR, AUTOMATION_SENSOR}
    # The AOI request sensor is on only where aoi_requests_url is set; it says so otherwise.
    aoi_on = bool(settings.aoi_requests_url)
    assert (sensors[AOI_SENSOR].default_status == DefaultSensorStatus.RUNNING) is aoi_on
    if not aoi_on:
        assert sensors[AOI_SENSOR].description.startswith("Not configured")
    assert all(sensors[n].default_status == DefaultSensorStatus.RUNNING
               for n in (STAC_SENSOR, AUTOMATION_SENSOR))
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        condition = graph.get(key).automation_condition
        if key.to_user_string() == "scene_manifest":
            assert condition is None  # new scenes and backfills start it, never automation
        elif key.to_user_string() in OPTIONAL_PRODUCTS:
            assert condition is None  # Landsat: built only when a run selects it
        else:
            assert condition is not None and "eager" in condition.get_label().lower()


# ------------------------------------------------------------------------------ domain logic


def test_vectorised_footprints_match_the_tiles() -> None:
    tiles = [Tile(zone=30, col=30, row=170, size=2048), Tile(zone=55, col=20, row=450, size=64)]
    for tile, fp in zip(tiles, tile_footprints(tiles), strict=True):
        exact = tile.footprint_lonlat()
        assert fp.symmetric_difference(exact).area / exact.area < 1e-4


def test_search_boxes_split_at_latitude_gaps() -> None:
    tiles = [Tile(zone=31, col=20, row=200, size=2048), Tile(zone=31, col=21, row=200, size=2048),
             Tile(zone=31, col=20, row=380, size=2048), Tile(zone=32, col=20, row=200, size=2048)]
    fps = tile_footprints(tiles)
    boxes = search_boxes(fps, np.array([t.zone for t in tiles]))
    assert len(boxes) == 3  # zone 31 north, zone 31 south, zone 32
    for fp in fps:
        assert any(shapely.box(*b).contains(fp) for b in boxes)


def test_cursor_round_trip_and_foreign_cursors() -> None:
    cur = WatchCursor({S2: CollectionCursor("2024-12-30T11:00:00+00:00", ["b", "a"])})
    again = WatchCursor.from_json(cur.to_json())
    assert again.collections[S2].watermark == "2024-12-30T11:00:00+00:00"
    assert again.collections[S2].seen == ["a", "b"]
    assert WatchCursor.from_json("not json").collections == {}
    assert WatchCursor.from_json(json.dumps({"v": 99})).collections == {}


def test_lookback_window_and_watermark(demo) -> None:
    settings, archive, tiles, catalog = demo
    index = TileIndex.build({t.id: [2024] for t in tiles})
    cat = GeoparquetCatalog(str(archive.catalog_dir))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    base = scan_new_scenes(cat, index, {"s2": S2, "landsat": "no-such-collection"},
                           WatchCursor(), now=now, years=[2024])
    mark = datetime.fromisoformat(base.cursor.collections[S2].watermark)
    assert base.affected == {} and base.scans[0].bootstrap
    assert base.scans[1].skipped == "not in the catalog"  # e.g. a demo without Landsat
    assert mark.date() >= date(2024, 12, 25)
    # Forget what was seen: everything inside the look-back window is news again, and
    # only that (older scenes are the backfill's job).
    blank = WatchCursor({S2: CollectionCursor(mark.isoformat(), [])})
    again = scan_new_scenes(cat, index, {"s2": S2}, blank, now=now, years=[2024],
                            lookback=timedelta(days=3))
    assert set(again.affected) <= {(t.id, 2024) for t in tiles} and again.affected
    n_new = again.scans[0].new
    assert 0 < n_new < len(cat.search(collections=[S2], bbox=index.boxes[0], start="2024-01-01",
                                      end="2024-12-31"))


def test_provisional_rule() -> None:
    dec31 = date(2024, 12, 31)
    assert provisional_status(2024, date(2024, 6, 1), date(2024, 6, 2))[0]
    assert provisional_status(2024, dec31, date(2025, 1, 15))[0]  # within the grace period
    done, why = provisional_status(2024, date(2024, 12, 28), date(2025, 3, 1))
    assert not done and "complete" in why
    late, why = provisional_status(2024, date(2024, 10, 1), date(2025, 3, 1))
    assert late and "91 days before the end of 2024" in why
    assert provisional_status(2024, None, date(2026, 1, 1))[0]

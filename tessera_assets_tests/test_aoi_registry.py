"""AOI registry: default names, removal plans for shared tiles, data deletion, and AOI request
files (accepted → registered; rejected → moved with the reason beside them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tessera_assets.aoi import AoiError
from tessera_assets.config import PipelineSettings
from tessera_assets.grid import Tile
from tessera_assets.ops.aoi_registry import AoiRegistry, delete_partition_data, derive_name
from tessera_assets.ops.aoi_requests import (
    AoiRequestInbox,
    parse_request,
    process_requests,
    requests_url,
    tiles_missing_from,
)
from tessera_assets.products.cubes import cube_schema
from tessera_assets.store.zone_store import ZoneStore

# Two lon/lat boxes in southern England; at 320 px (3.2 km) tiles they share one column of
# tiles and each has two columns of its own.
WEST = [-1.16, 51.90, -1.08, 51.93]
EAST = [-1.06, 51.90, -0.98, 51.93]
LINEAGE = {"manifest_digest": "m", "code_version": "0", "config_digest": "c"}


def _feature(bbox: list[float], **props) -> dict:
    w, s, e, n = bbox
    return {"type": "Feature", "properties": props,
            "geometry": {"type": "Polygon",
                         "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}}


@pytest.fixture()
def settings(tmp_path: Path) -> PipelineSettings:
    return PipelineSettings(root=str(tmp_path / "data"), tile_size=320, years=[2023, 2024])


def test_derive_name_prefers_properties_then_file_then_hash(tmp_path: Path) -> None:
    named = tmp_path / "Fen land (v2).geojson"
    named.write_text(json.dumps(_feature(WEST, name="fenland")))
    unnamed = tmp_path / "Fen land (v2).json"
    unnamed.write_text(json.dumps(_feature(WEST)))
    assert derive_name(str(named)) == "fenland"
    assert derive_name(str(unnamed)) == "Fen-land-v2"
    bbox = ",".join(map(str, WEST))
    assert derive_name(bbox, [2024]) == derive_name(bbox, [2024])
    assert derive_name(bbox, [2024]).startswith("aoi-")
    assert derive_name(bbox, [2024]) != derive_name(bbox, [2023])


def test_removal_plan_keeps_what_another_aoi_uses(settings: PipelineSettings) -> None:
    reg = AoiRegistry(settings.root)
    west = reg.add("west", WEST, [2023, 2024], settings.tile_size)
    east = reg.add("east", EAST, [2024], settings.tile_size)
    shared = sorted(set(west.tiles) & set(east.tiles))
    assert shared, "the boxes must share a tile for this test"
    plan = reg.removal_plan("west")
    assert plan.drop_tiles and shared
    assert sorted(plan.drop_tiles) == sorted(set(west.tiles) - set(east.tiles))
    # A shared tile keeps 2024 (east uses it) but loses 2023; west-only tiles lose both.
    for tile in shared:
        assert plan.delete_regions[tile] == [2023]
    for tile in plan.drop_tiles:
        assert plan.delete_regions[tile] == [2023, 2024]
    assert reg.tile_years(exclude="west") == {t: {2024} for t in east.tiles}


def test_delete_partition_data_removes_regions_and_files(settings: PipelineSettings) -> None:
    tile = Tile.parse(AoiRegistry(settings.root).resolve(
        "x", WEST, [2024], settings.tile_size).tiles[0])
    store = ZoneStore(settings.root, "s1_calibrated",
                      cube_schema("s1_calibrated", settings.years, settings.tile_size))
    px = settings.tile_size
    for year in settings.years:
        store.write_tile(tile, year, {"codes": np.ones((1, 4, px, px), np.int16)}, LINEAGE,
                         coords={"doy": [10]})
    manifest = Path(settings.root) / "scene_manifest" / tile.id / "2024.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{}")
    preview = Path(settings.root) / "previews" / "embeddings" / tile.id / "2024.png"
    preview.parent.mkdir(parents=True)
    preview.write_bytes(b"png")

    assert delete_partition_data(settings, tile, [2024]) == 1
    assert store.read_lineage(tile, 2024) is None
    assert not store.region_status(tile, 2024).present["codes"]
    assert store.read_lineage(tile, 2023) is not None  # other years untouched
    assert not manifest.exists() and not preview.exists()


def _drop(inbox: Path, name: str, doc: dict | str) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / name).write_text(doc if isinstance(doc, str) else json.dumps(doc))


def test_requests_are_registered_or_rejected_with_the_reason(settings: PipelineSettings) -> None:
    inbox_dir = Path(requests_url(settings))
    _drop(inbox_dir, "a-good.geojson", _feature(WEST, name="fenland", years="2023-2024"))
    _drop(inbox_dir, "b-years.geojson", _feature(EAST, name="late", years=[2030]))
    _drop(inbox_dir, "c-broken.geojson", "{not json")
    _drop(inbox_dir, "d-noyears.json", _feature(EAST))
    _drop(inbox_dir, "e-polar.geojson", _feature([10, 85, 11, 86], years="2024"))
    _drop(inbox_dir, "f-clash.geojson", _feature(EAST, name="fenland", years="2024"))
    _drop(inbox_dir, ".uploading.geojson", _feature(EAST, years="2024"))
    registry = AoiRegistry(settings.root)
    inbox = AoiRequestInbox(str(inbox_dir))

    outcomes = {o.file: o for o in process_requests(inbox, registry, settings)}

    assert sorted(outcomes) == ["a-good.geojson", "b-years.geojson", "c-broken.geojson",
                                "d-noyears.json", "e-polar.geojson", "f-clash.geojson"]
    good = outcomes["a-good.geojson"]
    assert good.status == "accepted" and good.record is not None
    assert registry.get("fenland").tiles == good.record.tiles == good.new_tiles
    assert (inbox_dir / "accepted" / "a-good.geojson").exists()
    result = json.loads((inbox_dir / "accepted" / "a-good.result.json").read_text())
    assert result["aoi"] == "fenland" and result["tiles"] == len(good.record.tiles)
    expected = {
        "b-years.geojson": "years [2030] are outside the configured years 2023-2024",
        "c-broken.geojson": "not valid JSON",
        "d-noyears.json": "properties.years is missing",
        "e-polar.geojson": "polar areas are not supported",
        "f-clash.geojson": "an AOI named 'fenland' is already registered",
    }
    for name, reason in expected.items():
        assert outcomes[name].status == "rejected", name
        assert reason in outcomes[name].reason, (name, outcomes[name].reason)
        stem = name.rsplit(".", 1)[0]
        assert (inbox_dir / "rejected" / name).exists()
        text = (inbox_dir / "rejected" / f"{stem}.error.txt").read_text()
        assert f"Reason: {outcomes[name].reason}" in text
    # Nothing left to process, the in-flight upload untouched, no AOI registered by mistake.
    assert inbox.pending() == []
    assert (inbox_dir / ".uploading.geojson").exists()
    assert [r.name for r in registry.list()] == ["fenland"]


def test_screen_and_partition_limit_reject(settings: PipelineSettings, monkeypatch) -> None:
    inbox_dir = Path(requests_url(settings))
    _drop(inbox_dir, "one.geojson", _feature(WEST, years="2024", materialize=True))
    registry = AoiRegistry(settings.root)
    inbox = AoiRequestInbox(str(inbox_dir))
    [o] = process_requests(inbox, registry, settings,
                           screen=lambda rec, req: "over budget" if req.materialize else None)
    assert o.status == "rejected" and o.reason == "over budget"

    monkeypatch.setattr("tessera_assets.ops.aoi_requests.MAX_PARTITIONS", 3)
    _drop(inbox_dir, "two.geojson", _feature(WEST, years="2024"))
    [o] = process_requests(inbox, registry, settings)
    assert o.status == "rejected" and "limit 3" in o.reason


def test_resubmitted_file_names_do_not_overwrite(settings: PipelineSettings) -> None:
    inbox_dir = Path(requests_url(settings))
    registry = AoiRegistry(settings.root)
    inbox = AoiRequestInbox(str(inbox_dir))
    for _ in range(2):
        _drop(inbox_dir, "req.geojson", _feature(WEST, years=[2099]))
        process_requests(inbox, registry, settings)
    assert len(list((inbox_dir / "rejected").glob("req*.geojson"))) == 2
    assert len(list((inbox_dir / "rejected").glob("req*.error.txt"))) == 2


def test_parse_request_accepts_feature_collections_and_year_lists() -> None:
    doc = {"type": "FeatureCollection",
           "features": [_feature(WEST, name="fc", years=[2024, 2023])]}
    req = parse_request("x.geojson", json.dumps(doc), [2023, 2024])
    assert (req.name, req.years, req.materialize) == ("fc", [2023, 2024], False)
    with pytest.raises(AoiError, match="materialize must be true or false"):
        parse_request("x.geojson", json.dumps(_feature(WEST, years="2024", materialize="yes")),
                      [2024])


def test_tiles_missing_from_partitions() -> None:
    assert tiles_missing_from({"a": {2024}, "b": {2024}}, ["b", "c"]) == ["a"]

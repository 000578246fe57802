"""Backfill planner: a hand-computed example, scene counting on a small catalog, budget refusals
(plan, and the budget guard of ``scene_manifest``)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import stac_geoparquet.arrow as sga
from dagster import Failure
from shapely.geometry import box, mapping

from tessera_assets.catalog.geoparquet import GeoparquetCatalog
from tessera_assets.config import (
    CatalogSettings,
    InferenceSettings,
    PipelineSettings,
    PlannerSettings,
)
from tessera_assets.defs.budget import backfill_keys, budget_guard
from tessera_assets.grid import Tile
from tessera_assets.ops.planner import (
    PlannerError,
    asset_estimates,
    count_scenes,
    estimate_tile_year,
    plan_backfill,
    planning_family,
)
from tessera_assets.sources.manifest import SceneManifest

PRICES = PlannerSettings(
    device="gpu", gpu_hour_usd=2.0, cpu_hour_usd=0.1, egress_gb_usd=0.05, embedded_fraction=0.5,
    px_per_s={"v2-nano": {"gpu": 1000.0, "cpu": 100.0}},
    input_bytes_per_px={"s2": 5.0, "s1": 4.0, "landsat": 1.0},
    ingest_cpu_s_per_mpx={"s2": 2.0, "s1": 1.0, "landsat": 0.5},
)
SCENES = {"s2": 100, "s1": 50, "landsat": 20}


def test_hand_computed_tile_year_on_gpu() -> None:
    # 1000 x 1000 px = 1 Mpx.
    # input  = (100*5 + 50*4 + 20*1) B/px * 1e6 px             = 720e6 B = 0.72 GB
    # ingest = (100*2 + 50*1 + 20*0.5) CPU-s/Mpx * 1 Mpx        = 260 CPU-s
    # infer  = 1e6 px * 0.5 embedded / 1000 px/s                = 500 GPU-s
    # cost   = 500/3600*2 + 260/3600*0.1 + 0.72*0.05           = 0.2777.. + 0.00722.. + 0.036
    est = estimate_tile_year(SCENES, 1000, PRICES, "v2-nano")
    assert est.input_bytes == 720e6
    assert est.ingest_cpu_s == 260.0
    assert est.inference_s == 500.0
    assert est.gpu_hours == pytest.approx(500 / 3600)
    assert est.cpu_hours == pytest.approx(260 / 3600)
    assert est.egress_usd == pytest.approx(0.036)
    assert est.cost_usd == pytest.approx(0.321)


def test_hand_computed_tile_year_on_cpu() -> None:
    # On CPU inference takes 1e6 * 0.5 / 100 = 5000 core-s, priced as CPU:
    # (260 + 5000) / 3600 * 0.1 + 0.036 = 0.146111.. + 0.036
    est = estimate_tile_year(SCENES, 1000, PRICES.model_copy(update={"device": "cpu"}), "v2-nano")
    assert est.gpu_hours == 0.0
    assert est.cpu_hours == pytest.approx(5260 / 3600)
    assert est.cost_usd == pytest.approx(0.1821111, rel=1e-6)


def test_asset_estimates_split_the_tile_year() -> None:
    est = asset_estimates(SCENES, {"s2": 40, "s1": 30, "landsat": 10}, 32, PRICES, "v2-nano")
    px = 32 * 32
    assert est["s2_cube"]["input_bytes"] == 100 * px * 5.0
    assert est["s2_cube"]["seconds"] == pytest.approx(100 * px / 1e6 * 2.0)
    # s2_cube: 11 uint16 bands (10 + SCL) per day; s1_cube: 4 float32 bands per day.
    assert est["s2_cube"]["bytes"] == 40 * px * 11 * 2
    assert est["s1_cube"]["bytes"] == 30 * px * 4 * 4
    assert est["embeddings"]["bytes"] == px * (128 + 4 + 2 + 2)
    assert est["embeddings"]["seconds"] == pytest.approx(px * 0.5 / 1000)


def test_family_and_throughput_resolution() -> None:
    assert planning_family(InferenceSettings(family="v2_medium")) == "v2-medium"
    assert planning_family(InferenceSettings(model_source="hf://ucam-eo/t/v2-small.pt")) == "v2-small"
    assert planning_family(InferenceSettings(model_source="/models/encoder.pt")) == "v1.1"
    with pytest.raises(PlannerError, match=r"no gpu throughput for family 'v1\.0'"):
        estimate_tile_year(SCENES, 32, PRICES, "v1.0")


def _item(coll: str, iid: str, when: str, geom, **props) -> dict:
    return {"type": "Feature", "stac_version": "1.0.0", "id": iid, "collection": coll,
            "geometry": mapping(geom), "bbox": list(geom.bounds),
            "properties": {"datetime": when, "eo:cloud_cover": props.pop("cloud", 10.0),
                           "platform": "synthetic", **props},
            "assets": {"data": {"href": f"file:///x/{iid}.tif"}}, "links": []}


def write_catalog(folder: Path, items: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    by_coll: dict[str, list[dict]] = {}
    for it in items:
        by_coll.setdefault(it["collection"], []).append(it)
    for coll, found in by_coll.items():
        sga.to_parquet(sga.parse_stac_items_to_arrow(found), folder / f"{coll}.parquet")
    return folder


@pytest.fixture()
def two_tiles():
    """Two 320 px tiles side by side in zone 30 and their lon/lat footprints."""
    a = Tile(zone=30, col=198, row=1800, size=320)
    b = Tile(zone=30, col=199, row=1800, size=320)
    return a, b, a.footprint_lonlat(), b.footprint_lonlat()


def test_count_scenes_maps_items_to_tile_years(tmp_path: Path, two_tiles) -> None:
    a, b, fa, fb = two_tiles
    inner_a = fa.buffer(-0.005)
    both = fa.union(fb).envelope
    far = box(100, 10, 101, 11)
    items = [
        _item("s2", "s2-a-1", "2024-03-01T11:00:00Z", inner_a),
        _item("s2", "s2-a-2", "2024-04-01T11:00:00Z", inner_a),
        _item("s2", "s2-ab", "2024-05-01T11:00:00Z", both),
        _item("s2", "s2-a-2023", "2023-06-01T11:00:00Z", inner_a),
        _item("s2", "s2-cloudy", "2024-06-01T11:00:00Z", both, cloud=95.0),
        _item("s2", "s2-far", "2024-06-01T11:00:00Z", far),
        # 00:02 UTC on 1 Jan at about 1°W is still 31 Dec in solar time: it counts for 2024.
        _item("s1", "s1-b-newyear", "2025-01-01T00:02:00Z", fb.buffer(-0.005)),
        _item("s1", "s1-b-2025", "2025-01-01T12:00:00Z", fb.buffer(-0.005)),
        _item("landsat", "ls-ab", "2023-08-01T10:30:00Z", both),
    ]
    catalog = GeoparquetCatalog(write_catalog(tmp_path / "cat", items))
    counts = count_scenes(catalog, {a.id: [2023, 2024], b.id: [2024]},
                          {"s2": "s2", "s1": "s1", "landsat": "landsat"},
                          max_s2_cloud_cover=50.0)
    assert counts == {
        (a.id, 2023): {"s2": 1, "s1": 0, "landsat": 1},
        (a.id, 2024): {"s2": 3, "s1": 0, "landsat": 0},
        (b.id, 2024): {"s2": 1, "s1": 1, "landsat": 0},
    }


def test_plan_totals_and_budget_refusal(tmp_path: Path) -> None:
    counts = {("t1", 2024): {"s2": 100, "s1": 50, "landsat": 20},
              ("t2", 2024): {"s2": 0, "s1": 0, "landsat": 0}}
    settings = PipelineSettings(
        root=str(tmp_path), tile_size=1024, years=[2024],
        inference=InferenceSettings(family="v2-nano"),
        planner=PRICES.model_copy(update={"budget_usd": 1.0}))
    plan = plan_backfill(counts, settings)
    px = 1024 * 1024
    one = estimate_tile_year(counts[("t1", 2024)], 1024, settings.planner, "v2-nano")
    empty = estimate_tile_year(counts[("t2", 2024)], 1024, settings.planner, "v2-nano")
    assert plan.total.cost_usd == pytest.approx(one.cost_usd + empty.cost_usd)
    assert plan.total.pixels == 2 * px
    # Hand check of the empty tile: inference only, 0.5 * 1024² / 1000 s of a $2 GPU-hour.
    assert empty.cost_usd == pytest.approx(px * 0.5 / 1000 / 3600 * 2.0)
    assert plan.tiles == ["t1", "t2"] and plan.years == [2024]
    assert not plan.over_budget and plan.refusal() is None
    tight = plan_backfill(counts, settings.model_copy(
        update={"planner": settings.planner.model_copy(update={"budget_usd": 0.5})}))
    assert tight.over_budget
    assert f"${tight.total.cost_usd:,.2f}" in tight.refusal()
    assert "exceeds the budget $0.50" in tight.refusal()
    assert tight.summary()["over_budget"] is True


def _context(tags: dict, backfill=None):
    return SimpleNamespace(run=SimpleNamespace(tags=tags),
                           instance=SimpleNamespace(get_backfill=lambda _id: backfill),
                           repository_def=None, log=SimpleNamespace(warning=lambda *a: None))


def test_backfill_keys_reads_the_run_scope() -> None:
    assert backfill_keys(_context({})) == (None, None)
    job_backfill = SimpleNamespace(is_asset_backfill=False, partition_names=["a|2024", "b|2024"])
    assert backfill_keys(_context({"dagster/backfill": "b1"}, job_backfill)) == \
        ("b1", ["a|2024", "b|2024"])
    subset = SimpleNamespace(get_partition_keys=lambda: ["c|2023"])
    data = SimpleNamespace(target_subset=SimpleNamespace(get_partitions_subset=lambda k: subset))
    asset_backfill = SimpleNamespace(is_asset_backfill=True, asset_backfill_data=data)
    assert backfill_keys(_context({"dagster/backfill": "b2"}, asset_backfill)) == \
        ("b2", ["c|2023"])
    broken = SimpleNamespace(is_asset_backfill=True, asset_backfill_data=None)
    assert backfill_keys(_context({"dagster/backfill": "b3"}, broken)) == ("b3", None)
    assert backfill_keys(_context({"dagster/backfill": "b4"}, None)) == ("b4", None)


def test_budget_guard_prices_the_whole_backfill_once(tmp_path: Path, two_tiles) -> None:
    a, b, fa, _ = two_tiles
    catalog = GeoparquetCatalog(write_catalog(tmp_path / "cat", [
        _item("s2", f"s2-{i}", f"2024-0{i + 1}-01T11:00:00Z", fa.buffer(-0.005))
        for i in range(3)] + [_item("s1", "s1-0", "2024-02-01T18:00:00Z", fa.buffer(-0.005)),
                              _item("landsat", "ls-0", "2024-02-02T10:30:00Z", fa.buffer(-0.005))]))
    settings = PipelineSettings(
        root=str(tmp_path / "data"), tile_size=320, years=[2023, 2024],
        inference=InferenceSettings(family="v2-nano"),
        catalog=CatalogSettings(url=str(tmp_path / "cat"), s2_collection="s2",
                                s1_collection="s1", landsat_collection="landsat"),
        planner=PRICES.model_copy(update={"budget_usd": 1.0}))
    keys = [f"{t.id}|{y}" for t in (a, b) for y in (2023, 2024)]
    plan = plan_backfill(count_scenes(catalog, {a.id: [2023, 2024], b.id: [2023, 2024]},
                                      {"s2": "s2", "s1": "s1", "landsat": "landsat"}), settings)
    manifest = SceneManifest(a.id, 2024, items=[])
    backfill = SimpleNamespace(is_asset_backfill=False, partition_names=keys)
    meta = budget_guard(_context({"dagster/backfill": "bf1"}, backfill), settings, manifest,
                        catalog)
    assert meta["budget_scope"] == "backfill bf1: 4 tile-year(s)"
    assert meta["budget_scope_estimate_usd"] == pytest.approx(plan.total.cost_usd, abs=0.005)
    # Priced once and kept: every partition of the backfill gets the same verdict.
    cached = json.loads((tmp_path / "data" / "_budget" / "bf1.json").read_text())
    assert cached["cost_usd"] == pytest.approx(plan.total.cost_usd)
    assert cached["summary"]["scenes"] == {"s2": 3, "s1": 1, "landsat": 1}
    tight = settings.model_copy(update={"planner": settings.planner.model_copy(
        update={"budget_usd": plan.total.cost_usd / 2})})
    (tmp_path / "data" / "_budget" / "bf1.json").unlink()
    with pytest.raises(Failure, match=r"budget guard: backfill bf1 is estimated at \$0\.\d\d for 4"):
        budget_guard(_context({"dagster/backfill": "bf1"}, backfill), tight, manifest, catalog)
    # Outside a backfill only the partition counts; without a budget nothing is priced.
    alone = budget_guard(_context({}), tight, manifest, catalog)
    assert alone["budget_scope"] == "this run: 1 tile-year(s)"
    free = settings.model_copy(update={"planner": PRICES})
    assert "budget_scope" not in budget_guard(_context({"dagster/backfill": "x"}, backfill), free,
                                              manifest, catalog)


def test_planner_settings_round_trip_through_json(tmp_path: Path) -> None:
    s = PipelineSettings(root=str(tmp_path), planner=PRICES.model_copy(update={"budget_usd": 5}))
    again = PipelineSettings.model_validate_json(s.model_dump_json())
    assert again.planner == s.planner

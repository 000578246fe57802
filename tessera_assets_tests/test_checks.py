"""Asset checks on one real demo partition: all pass on good data, each fails on a deliberately
corrupted copy of the stores, and a failing blocking check keeps ``embeddings_coarse`` from
being materialised. Also the UI metadata (previews, histograms, provisional, estimate vs
actual) and the budget guard of ``scene_manifest``, through Dagster."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from dagster import AssetKey, AssetSelection, DagsterInstance, Definitions, define_asset_job
from PIL import Image

from tessera_assets.cli.aoi import register_aoi
from tessera_assets.defs import PIPELINE_JOB, build_definitions
from tessera_assets.defs.checks import (
    audit_coarse,
    audit_completeness,
    audit_lineage,
    audit_values,
    load_manifest,
)
from tessera_assets.defs.partitions import TILES, partition_key
from tessera_assets.demo.area import DEMO_EPSG, DemoPaths
from tessera_assets.model.demo_weights import write_demo_checkpoint
from tessera_assets.products.registry import open_store
from tessera_assets.store.errors import RegionIntegrityError
from tessera_assets_tests.test_sensors import OPS_AOI_UTM, ops_demo

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("ray_cluster")]
CHECKS = {("landsat_cube", "region_complete"), ("s1_cube", "region_complete"),
          ("s2_cube", "region_complete"), ("landsat_masked", "region_complete"),
          ("s1_calibrated", "region_complete"), ("s2_masked", "region_complete"),
          ("embeddings", "region_complete"), ("embeddings", "lineage_audit"),
          ("embeddings", "value_sanity"), ("embeddings_coarse", "region_complete"),
          ("embeddings_coarse", "lineage_audit"), ("embeddings_coarse", "coarse_consistency"),
          ("scene_manifest", "manifest_schema"), ("s2_cube", "coverage"),
          ("s1_cube", "coverage"), ("landsat_cube", "coverage"), ("embeddings", "seams"),
          ("embeddings", "dead_dimensions"), ("embeddings", "coverage_reconciliation"),
          ("embeddings", "drift")}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("checks")
    settings, _, tiles = ops_demo(tmp_path_factory, home)
    write_demo_checkpoint(DemoPaths(home).model, family="v2-nano", seed=0)
    instance = DagsterInstance.ephemeral()
    register_aoi(instance, settings, "ops", list(OPS_AOI_UTM), settings.years,
                 crs=f"EPSG:{DEMO_EPSG}")
    tile, year = tiles[0], settings.years[0]
    result = build_definitions(settings).resolve_job_def(PIPELINE_JOB).execute_in_process(
        partition_key=partition_key(tile, year), instance=instance)
    return settings, instance, tile, year, result, tiles


def _evaluations(result) -> dict[tuple[str, str], object]:
    return {(e.event_specific_data.asset_key.to_user_string(), e.event_specific_data.check_name):
            e.event_specific_data for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def _copy(settings, tmp_path: Path):
    """The stores (not the archive) copied, so a test can corrupt them."""
    root = tmp_path / "data"
    shutil.copytree(settings.root, root)
    return settings.model_copy(update={"root": str(root)})


def _zone_array(settings, product: str, name: str):
    return zarr.open_group(f"{settings.root}/{product}.zarr", path="utm30", mode="r+")[name]


def test_every_check_passes_on_a_good_partition(run) -> None:
    *_, result, _ = run
    assert result.success
    evaluations = _evaluations(result)
    assert set(evaluations) == CHECKS
    failed = {k: v.description for k, v in evaluations.items() if not v.passed}
    # Zone-year QA (non-blocking): the AOI's other tiles were not materialised by this run, so
    # the zone-year is rightly not reconciled yet; every partition-level check passes.
    reconciliation = failed.pop(("embeddings", "coverage_reconciliation"))
    assert reconciliation.endswith(f"{len(run[-1]) - 1} expected tile(s) neither written nor "
                                   "skipped")
    assert failed == {}


def test_metadata_people_want_in_the_ui(run) -> None:
    settings, _, tile, year, result, _ = run
    meta = {e.asset_key.to_user_string(): e.event_specific_data.materialization.metadata
            for e in result.get_asset_materialization_events()}
    emb = meta["embeddings"]
    rows = [r.data for r in emb["s2_clear_obs_histogram"].value.records]
    assert [r["observations"] for r in rows][:3] == ["0", "1-4", "5-9"]  # bin order, not text
    assert sum(r["pixels"] for r in rows) == tile.size ** 2 == sum(
        r.data["pixels"] for r in emb["s1_obs_histogram"].value.records)
    assert "| observations | S2 clear | S1 valid |" in emb["observation_histogram"].value
    assert 0.9 < emb["valid_fraction"].value <= 1.0 and 0 < emb["s2_clear_fraction"].value <= 1
    # The demo's last scene is 31 Dec 2024 and 2024 is long over: final, not provisional.
    assert emb["provisional"].value is False
    assert "complete" in emb["provisional_reason"].value
    for asset in ("embeddings", "s2_masked"):
        path = Path(meta[asset]["preview"].value)
        assert path == Path(settings.root) / "previews" / asset / tile.id / f"{year}.png"
        img = Image.open(path)
        assert img.size == (tile.size, tile.size) and img.getextrema()[3] == (255, 255)
        assert meta[asset]["preview_image"].value.startswith("![")
        assert "data:image/png;base64," in meta[asset]["preview_image"].value
        assert len(meta[asset]["preview_image"].value) < 1000  # shown in place by the UI
        assert "dagster/uri" in meta[asset] and "UTM 30N" in meta[asset]["tile_label"].value
    # Estimate and actual side by side.
    assert emb["seconds"].value > 0 and emb["estimate_seconds"].value >= 0
    assert emb["device"].value == "cpu" and emb["actual_device_seconds"].value > 0
    assert emb["estimate_vs_actual"].value.records[0].data["quantity"].startswith(
        "inference (CPU core-s)")
    assert emb["ledger"].value["partitions"] >= 1
    assert emb["bytes_written"].value == pytest.approx(emb["estimate_bytes"].value, rel=0.01)
    cube = meta["s2_cube"]
    assert cube["bytes_written"].value == pytest.approx(cube["estimate_bytes"].value, rel=0.01)
    assert cube["estimate_input_bytes"].value > 0
    manifest = meta["scene_manifest"]
    assert manifest["estimate_cost_usd"].value >= 0 and manifest["seconds"].value > 0
    assert manifest["budget_usd"].value == "none"
    assert manifest["dagster/row_count"].value == sum(
        manifest[f"scenes_{s}"].value for s in ("s2", "s1", "landsat"))
    assert "tessera:sensor" in {c.name for c in manifest["dagster/column_schema"].value.columns}
    # Lineage: the flag is recorded in the fine record and inherited by the coarse one.
    fine = json.loads((Path(settings.root) / "embeddings.zarr" / "_lineage" / "utm30" / tile.id
                       / f"{year}.json").read_text())
    coarse = json.loads((Path(settings.root) / "embeddings_coarse.zarr" / "_lineage" / "utm30"
                         / tile.id / f"{year}.json").read_text())
    assert fine["provisional"] is False and coarse["provisional"] is False
    assert coarse["source_written_at"] == fine["written_at"]


def test_missing_shard_fails_completeness(run, tmp_path: Path) -> None:
    settings, _, tile, year, _, _ = run
    bad = _copy(settings, tmp_path)
    store = open_store("embeddings", bad)
    shard = store.region_status(tile, year).expected["scales"][0]
    (Path(bad.root) / "embeddings.zarr" / shard).unlink()
    outcome = audit_completeness(open_store("embeddings", bad), tile, year)
    assert not outcome.passed
    assert "1 of 6 shards of the region are missing" in outcome.description
    assert outcome.metadata["missing_sample"] == [shard]


def test_unwritten_or_out_of_range_values_fail_sanity(run, tmp_path: Path) -> None:
    settings, _, tile, year, _, _ = run
    bad = _copy(settings, tmp_path)
    ys, xs = tile.pixel_window()
    scales = _zone_array(bad, "embeddings", "scales")
    block = scales[0, ys.start:ys.start + 4, xs.start:xs.start + 4]
    block[0, :] = np.inf          # 4 pixels never written
    block[1, 0] = 1.5             # above MAX_VALID_SCALE for v2
    scales[0, ys.start:ys.start + 4, xs.start:xs.start + 4] = block
    counts = _zone_array(bad, "embeddings", "s2_obs_count")
    counts[0, ys.start, xs.start + 10] = 999
    manifest = load_manifest(bad, tile, year)
    outcome = audit_values(open_store("embeddings", bad), tile, year, family="v2-nano",
                           manifest=manifest)
    assert not outcome.passed
    assert "4 pixels still hold the +inf fill (never written)" in outcome.description
    assert "1 scales exceed 1.0 (MAX_VALID_SCALE for v2)" in outcome.description
    assert f"s2_obs_count reaches 999 but the manifest has {len(manifest.days('s2'))} S2 days" \
        in outcome.description
    assert outcome.metadata["unwritten_inf"] == 4


def test_lineage_audit_catches_other_manifests_and_models(run, tmp_path: Path) -> None:
    settings, _, tile, year, _, _ = run
    bad = _copy(settings, tmp_path)
    manifest = load_manifest(bad, tile, year)
    manifest.items = manifest.items[:-1]  # the catalog changed since the region was built
    manifest.save(f"{bad.root}/scene_manifest/{tile.id}/{year}")
    store = open_store("embeddings", bad)
    recorded = store.read_lineage(tile, year)
    outcome = audit_lineage(store, tile, year, manifest_digest=manifest.digest(),
                            pinned_sha256=None, stored_sha256=recorded.model_sha256)
    assert not outcome.passed and "built from other scenes" in outcome.description
    pinned = audit_lineage(store, tile, year, manifest_digest=recorded.manifest_digest,
                           pinned_sha256="0" * 64, stored_sha256=recorded.model_sha256)
    assert not pinned.passed
    assert "≠ inference.model_sha256 000000000000" in pinned.description
    good = audit_lineage(store, tile, year, manifest_digest=recorded.manifest_digest,
                         pinned_sha256=recorded.model_sha256, stored_sha256=None)
    assert good.passed, good.description


def test_tampered_coarse_region_fails_consistency(run, tmp_path: Path) -> None:
    """A coarse region whose content was changed and committed with matching hashes (so only
    the consistency audit can tell) fails; bytes changed behind the store's back are refused
    by the content hashes before any value is compared."""
    settings, _, tile, year, _, _ = run
    bad = _copy(settings, tmp_path)
    coarse = open_store("embeddings_coarse", bad)
    ds = coarse.read_tile(tile, year)
    record = coarse.read_lineage(tile, year)
    codes = ds["embeddings"].values.copy()
    codes[:, 0, 0] = -codes[:, 0, 0]
    own = {"product", "resolution_m", "schema_digest", "slices", "tile", "variables",
           "written_at", "year", "zone"}  # set by the store itself
    lineage = {k: v for k, v in record.model_dump().items() if k not in own}
    coarse.write_tile(tile, year, ds.assign(embeddings=(ds["embeddings"].dims, codes)), lineage)
    outcome = audit_coarse(open_store("embeddings", bad), open_store("embeddings_coarse", bad),
                           tile, year, family="v2-nano")
    assert not outcome.passed
    assert outcome.description.startswith("1 coarse pixels differ from the coarsened fine region")

    ys, xs = tile.pixel_window(bad.coarse_resolution)
    emb = _zone_array(bad, "embeddings_coarse", "embeddings")
    emb[0, :, ys.start + 1, xs.start] = -emb[0, :, ys.start + 1, xs.start]
    with pytest.raises(RegionIntegrityError, match="content hash mismatch"):
        audit_coarse(open_store("embeddings", bad), open_store("embeddings_coarse", bad),
                     tile, year, family="v2-nano")


def test_failing_check_blocks_downstream(run, tmp_path: Path) -> None:
    settings, _, tile, year, _, _ = run
    bad = _copy(settings, tmp_path)
    ys, xs = tile.pixel_window()
    _zone_array(bad, "embeddings", "scales")[0, ys.start, xs.start] = np.inf
    coarse_record = open_store("embeddings_coarse", bad).read_lineage(tile, year)
    defs = build_definitions(bad)
    verify = define_asset_job(
        "verify_then_coarsen",
        selection=AssetSelection.assets("embeddings_coarse")
        | AssetSelection.checks_for_assets("embeddings"))
    job = Definitions(assets=defs.assets, asset_checks=defs.asset_checks,
                      resources=defs.resources, jobs=[verify]).resolve_job_def(verify.name)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TILES.name, [tile.id])

    result = job.execute_in_process(partition_key=partition_key(tile, year),
                                    instance=instance, raise_on_error=False)

    assert not result.success
    evaluations = _evaluations(result)
    assert not evaluations[("embeddings", "value_sanity")].passed
    assert evaluations[("embeddings", "lineage_audit")].passed
    assert result.get_asset_materialization_events() == []
    assert open_store("embeddings_coarse", bad).read_lineage(tile, year) == coarse_record
    assert not instance.get_materialized_partitions(AssetKey("embeddings_coarse"))


def test_budget_guard_stops_scene_manifest(run, tmp_path: Path) -> None:
    settings, _, _, year, _, tiles = run
    other = tiles[1]  # never materialised
    poor = _copy(settings, tmp_path).model_copy(update={
        "planner": settings.planner.model_copy(update={"budget_usd": 0.0})})
    defs = build_definitions(poor)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TILES.name, [t.id for t in tiles])
    job = defs.resolve_job_def(PIPELINE_JOB)
    # A UI backfill of both tiles (created as the UI does, through Dagster's own API).
    from dagster._core.execution.backfill import PartitionBackfill

    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id="ui-backfill", asset_graph=defs.resolve_asset_graph(),
        partition_names=[str(partition_key(t, year)) for t in tiles],
        asset_selection=[AssetKey("scene_manifest")], backfill_timestamp=0.0, tags={},
        dynamic_partitions_store=instance, all_partitions=False, title=None, description=None,
        run_config=None)
    instance.add_backfill(backfill)
    for tags, scope in (({}, "this run is estimated at $"),
                        ({"dagster/backfill": "ui-backfill"},
                         "backfill ui-backfill is estimated at $")):
        result = job.execute_in_process(
            partition_key=partition_key(other, year), instance=instance, raise_on_error=False,
            asset_selection=[AssetKey("scene_manifest")], tags=tags)
        assert not result.success
        [failure] = [e for e in result.all_events if e.is_step_failure]
        message = failure.event_specific_data.error.message
        assert f"budget guard: {scope}" in message
        assert "above planner.budget_usd $0.00; nothing was written" in message
        assert not (Path(poor.root) / "scene_manifest" / other.id).exists()
    priced = json.loads((Path(poor.root) / "_budget" / "ui-backfill.json").read_text())
    assert priced["tile_years"] == 2 and priced["summary"]["scenes"]["s2"] > 0

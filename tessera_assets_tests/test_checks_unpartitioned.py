"""Checks launched without a partition (the Checks tab's "Execute all") are skipped with a
reason instead of failing (and turning a healthy asset red), and ``manifest_schema`` finds
missing, empty or malformed manifests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pystac
from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSelection,
    DagsterInstance,
    Definitions,
    define_asset_job,
)

from tessera_assets.config import PipelineSettings
from tessera_assets.defs import build_definitions
from tessera_assets.defs.checks import MANIFEST_COLUMNS, NO_PARTITION, audit_manifest
from tessera_assets.defs.partitions import TILES, partition_key
from tessera_assets.products.registry import manifest_url
from tessera_assets.sources.manifest import SceneManifest

TILE = "32630_64_995_5683"


def _item(i: int) -> pystac.Item:
    return pystac.Item(
        f"S2A_{i}", {"type": "Point", "coordinates": [-1.0, 52.0]}, [-1.0, 52.0, -1.0, 52.0],
        datetime(2024, 5, i + 1, tzinfo=UTC),
        {"tessera:sensor": "s2", "tessera:doy": 122 + i, "eo:cloud_cover": 5.0},
        collection="sentinel-2-l2a")


def _manifest(n: int) -> SceneManifest:
    items = [_item(i) for i in range(n)]
    for it in items:
        it.add_asset("red", pystac.Asset(f"file:///archive/{it.id}/B04.tif"))
    return SceneManifest(TILE, 2024, items)


def _check_run(settings: PipelineSettings, instance: DagsterInstance):
    """Every check, launched like the Checks tab's "Execute all": no partition."""
    defs = build_definitions(settings)
    job = define_asset_job("checks_only", selection=AssetSelection.all_asset_checks())
    defs = Definitions.merge(defs, Definitions(jobs=[job]))
    result = defs.resolve_job_def("checks_only").execute_in_process(instance=instance,
                                                                     raise_on_error=False)
    evals = {(e.event_specific_data.asset_key.to_user_string(),
              e.event_specific_data.check_name): e.event_specific_data
             for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    return result, evals


def test_audit_manifest(tmp_path: Path) -> None:
    url = str(tmp_path / "m")
    assert not audit_manifest(url).passed  # missing
    _manifest(0).save(url)
    empty = audit_manifest(url)
    assert not empty.passed and "no scene" in empty.description
    _manifest(3).save(url)
    ok = audit_manifest(url)
    assert ok.passed and ok.metadata["rows"] == 3, ok.description
    assert ok.metadata["columns"] >= len(MANIFEST_COLUMNS)


def test_execute_all_without_a_partition_never_fails_a_healthy_asset(tmp_path: Path) -> None:
    settings = PipelineSettings(root=str(tmp_path / "data"), tile_size=64, years=[2024])
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TILES.name, [TILE])
    # A materialised, good manifest partition (Dagster's own lookup of the checked
    # materialisation is what failed the checks before).
    _manifest(3).save(manifest_url(settings.root, TILE, 2024))
    instance.report_runless_asset_event(AssetMaterialization(
        AssetKey("scene_manifest"), partition=str(partition_key(TILE, 2024))))
    result, evals = _check_run(settings, instance)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert evals == {}  # nothing evaluated: the checks are skipped, none failed
    logs = [e.message for e in instance.all_logs(result.run_id) if e.message]
    assert any(NO_PARTITION in m for m in logs)
    # (With a partition the same checks run and pass or fail: test_checks.py, through the
    # pipeline job.)

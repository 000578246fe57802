"""The terminal front end: ``aoi add`` (default names), ``aoi remove --delete-data``,
``aoi requests``, ``plan`` (numbers against a hand-computed catalog), ``materialize`` refused
above the budget, and ``status`` read from the Dagster instance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, AssetMaterialization, DagsterInstance

from tessera_assets.cli.common import console
from tessera_assets.cli.main import main
from tessera_assets.cli.status import ASSET_ORDER
from tessera_assets.config import CatalogSettings, InferenceSettings, PipelineSettings
from tessera_assets.defs.partitions import TILES
from tessera_assets.grid import Tile
from tessera_assets.ops.aoi_registry import AoiRegistry
from tessera_assets.ops.aoi_requests import requests_url
from tessera_assets_tests.test_aoi_registry import EAST, WEST, _feature
from tessera_assets_tests.test_planner import PRICES, _item, write_catalog


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings on disk, a DAGSTER_HOME and a small catalog: two S2 scenes and one S1 scene
    over the first tile of WEST in 2024, one Landsat scene in 2023."""
    tile = Tile.parse(AoiRegistry(str(tmp_path)).resolve("w", WEST, [2024], 320).tiles[0])
    inner = tile.footprint_lonlat().buffer(-0.002)
    catalog = write_catalog(tmp_path / "catalog", [
        _item("s2", "s2-1", "2024-05-01T11:00:00Z", inner),
        _item("s2", "s2-2", "2024-06-01T11:00:00Z", inner),
        _item("s1", "s1-1", "2024-06-02T18:00:00Z", inner),
        _item("landsat", "ls-1", "2023-06-03T10:30:00Z", inner),
    ])
    settings = PipelineSettings(
        root=str(tmp_path / "data"), tile_size=320, years=[2023, 2024],
        catalog=CatalogSettings(url=str(catalog), s2_collection="s2", s1_collection="s1",
                                landsat_collection="landsat"),
        inference=InferenceSettings(family="v2-nano"), planner=PRICES)
    cfg = settings.save(tmp_path / "tessera.json")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("TESSERA_CONFIG", str(cfg))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    return settings, tile, cfg


def _run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    console.width = 200  # what piped output gets, whatever COLUMNS the test runner set
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_aoi_add_derives_names_and_adds_partitions(env, tmp_path, capsys) -> None:
    settings, _, _ = env
    geojson = tmp_path / "Fen Edge.geojson"
    geojson.write_text(json.dumps(_feature(WEST)))
    code, out = _run(capsys, "aoi", "add", str(geojson), "--years", "2024")
    assert code == 0 and "AOI Fen-Edge:" in out
    code, out = _run(capsys, "aoi", "add", ",".join(map(str, EAST)), "--years", "2023-2024")
    assert code == 0 and "AOI aoi-" in out
    names = [r.name for r in AoiRegistry(settings.root).list()]
    assert "Fen-Edge" in names and len(names) == 2
    tiles = {t for r in AoiRegistry(settings.root).list() for t in r.tiles}
    assert set(DagsterInstance.get().get_dynamic_partitions(TILES.name)) == tiles
    code, out = _run(capsys, "aoi", "list")
    assert "Fen-Edge" in out and "2023-2024" in out
    code, out = _run(capsys, "aoi", "add", ",".join(map(str, EAST)), "--years", "2019")
    assert code == 2 and "years [2019] are not in the configured year range" in out


def test_aoi_remove_delete_data_keeps_shared_tiles(env, capsys) -> None:
    settings, _, _ = env
    _run(capsys, "aoi", "add", ",".join(map(str, WEST)), "--years", "2024", "--name", "west")
    _run(capsys, "aoi", "add", ",".join(map(str, EAST)), "--years", "2024", "--name", "east")
    reg = AoiRegistry(settings.root)
    west, east = set(reg.get("west").tiles), set(reg.get("east").tiles)
    manifest = Path(settings.root) / "scene_manifest" / sorted(west - east)[0] / "2024.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{}")
    gone, kept = f"{sorted(west - east)[0]}|2024", f"{sorted(west & east)[0]}|2024"
    for key in (gone, kept):
        DagsterInstance.get().report_runless_asset_event(
            AssetMaterialization(AssetKey("scene_manifest"), partition=key))
    code, out = _run(capsys, "aoi", "remove", "west", "--delete-data")
    assert code == 0
    assert f"{len(west - east)} tile partition(s) dropped" in out
    assert set(DagsterInstance.get().get_dynamic_partitions(TILES.name)) == east
    assert not manifest.exists()
    # Dagster should forget the deleted tile-years but not those another AOI still covers; the
    # OSS event logs (SQLite here) cannot wipe partitions, and the command says so.
    materialized = DagsterInstance.get().get_materialized_partitions(AssetKey("scene_manifest"))
    if materialized == {kept}:
        assert "note:" not in out
    else:
        assert materialized == {gone, kept}
        assert "cannot forget partition materialisations" in out
    code, out = _run(capsys, "aoi", "remove", "east")
    assert "its data is kept" in out
    assert set(DagsterInstance.get().get_dynamic_partitions(TILES.name)) == east


def test_aoi_requests_command(env, capsys) -> None:
    settings, _, _ = env
    inbox = Path(requests_url(settings))
    inbox.mkdir(parents=True)
    (inbox / "ok.geojson").write_text(json.dumps(_feature(WEST, years="2024")))
    (inbox / "no.geojson").write_text(json.dumps(_feature(WEST, name="x y", years="2024")))
    code, out = _run(capsys, "aoi", "requests")
    assert code == 1
    assert "accepted ok.geojson: ok" in out
    assert "rejected no.geojson: AOI name 'x y' must be" in out
    assert set(DagsterInstance.get().get_dynamic_partitions(TILES.name)) == \
        set(AoiRegistry(settings.root).get("ok").tiles)


def test_plan_prints_the_hand_computed_numbers(env, capsys) -> None:
    settings, tile, _ = env
    _run(capsys, "aoi", "add", ",".join(map(str, WEST)), "--years", "2023-2024", "--name", "w")
    n_tiles = len(AoiRegistry(settings.root).get("w").tiles)
    code, out = _run(capsys, "plan", "w", "--json")
    assert code == 0
    summary = json.loads(out)
    # 320 px tiles: 102,400 px = 0.1024 Mpx each.
    #   input  = (2 S2 * 5 + 1 S1 * 4 + 1 Landsat * 1) B/px * 102,400 = 1,536,000 B
    #   ingest = (2 * 2 + 1 * 1 + 1 * 0.5) CPU-s/Mpx * 0.1024 Mpx = 0.5632 CPU-s
    #   infer  = 102,400 * 0.5 / 1000 px/s = 51.2 GPU-s per tile-year
    tile_years = 2 * n_tiles
    assert summary["tile_years"] == tile_years and summary["tiles"] == n_tiles
    assert summary["scenes"] == {"s2": 2, "s1": 1, "landsat": 1}
    assert summary["input_bytes"] == 1_536_000
    assert summary["gpu_hours"] == pytest.approx(51.2 * tile_years / 3600)
    assert summary["cpu_hours"] == pytest.approx(0.5632 / 3600)
    cost = 51.2 * tile_years / 3600 * 2.0 + 0.5632 / 3600 * 0.1 + 1_536_000 / 1e9 * 0.05
    assert summary["cost_usd"] == pytest.approx(cost)
    code, out = _run(capsys, "plan", "w", "--years", "2024", "--per-tile")
    assert code == 0
    assert "scenes S2 / S1 / Landsat" in out and "2 / 1 / 0" in out
    assert f"${51.2 * n_tiles / 3600 * 2.0 + 0.4096 / 3600 * 0.1 + 1_433_600 / 1e9 * 0.05:,.2f}" \
        in out
    assert tile.id in out
    # An AOI that is not registered can be planned too.
    code, out = _run(capsys, "plan", ",".join(map(str, EAST)), "--years", "2024")
    assert code == 0 and "(not registered)" in out


def test_materialize_refuses_above_the_budget(env, capsys) -> None:
    settings, _, cfg = env
    poor = settings.model_copy(update={"planner": settings.planner.model_copy(
        update={"budget_usd": 0.01})})
    poor.save(cfg)
    _run(capsys, "aoi", "add", ",".join(map(str, WEST)), "--years", "2024", "--name", "w")
    code, out = _run(capsys, "materialize", "--aoi", "w")
    assert code == 3
    assert "refused:" in out and "exceeds the budget $0.01" in out
    assert DagsterInstance.get().get_runs() == []  # nothing started


def test_status_reads_progress_from_the_instance(env, capsys) -> None:
    settings, _, _ = env
    _run(capsys, "aoi", "add", ",".join(map(str, WEST)), "--years", "2024", "--name", "w")
    tiles = AoiRegistry(settings.root).get("w").tiles
    instance = DagsterInstance.get()
    done, half = tiles[0], tiles[1]
    for asset in ASSET_ORDER:
        instance.report_runless_asset_event(AssetMaterialization(
            AssetKey(asset), partition=f"{done}|2024",
            metadata={"provisional": True} if asset == "embeddings" else None))
    for asset in ASSET_ORDER[:4]:
        instance.report_runless_asset_event(AssetMaterialization(
            AssetKey(asset), partition=f"{half}|2024"))
    code, out = _run(capsys, "status", "w")
    assert code == 0
    n = len(tiles)
    assert f"AOI w: 1/{n} tile-years complete" in out
    assert f"2/{n}" in out and f"1/{n}" in out  # s2_cube row, embeddings row
    assert "1 tile-year(s) provisional" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()
             and line.split()[0] in tiles}
    assert lines[done].count("✓") == 9 and "provisional" in lines[done]
    assert lines[half].count("✓") == 4
    code, out = _run(capsys, "status")  # every AOI
    assert "AOI w:" in out


_IMPORTS_AFTER = """
import sys
from tessera_assets.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in sys.modules if m == "tessera_assets.defs"
               or m.startswith(("tessera_assets.defs.", "dagster")))
print("HEAVY", heavy)
sys.exit(code)
"""


@pytest.mark.parametrize("argv", [["--help"], ["aoi", "list"]])
def test_parsing_and_aoi_list_do_not_import_the_graph(env, argv) -> None:
    """The CLI parses before it imports what a command needs: ``--help`` and ``aoi list``
    import neither the Dagster definitions nor dagster."""
    proc = subprocess.run([sys.executable, "-c", _IMPORTS_AFTER, *argv], env=dict(os.environ),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "HEAVY []" in proc.stdout, proc.stdout[-2000:]

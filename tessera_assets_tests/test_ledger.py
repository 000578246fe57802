"""The estimate ledger: entries per partition, totals, measured rates and the calibrated
planner; and ``tessera-assets ledger`` on a ledger written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tessera_assets.cli.common import console
from tessera_assets.cli.main import main
from tessera_assets.config import CONFIG_ENV, InferenceSettings, PipelineSettings
from tessera_assets.ops import ledger
from tessera_assets.ops.planner import (
    asset_estimates,
    effective_planner,
    inference_device,
    throughput,
)


def _entry(tile: str, est: float, act: float, rate: float = 300.0) -> ledger.LedgerEntry:
    return ledger.LedgerEntry(
        asset="embeddings", tile=tile, year=2024, family="v2-nano", device="cpu",
        pixels=4096, estimate_seconds=est, actual_seconds=act, estimate_bytes=557_056,
        actual_bytes=557_056, estimate_usd=est / 3600 * 0.045, actual_usd=act / 3600 * 0.045,
        rate_px_per_s=rate)


def test_entries_totals_and_measured_rates(tmp_path: Path) -> None:
    root = str(tmp_path)
    ledger.record(root, _entry("32630_64_1_2", 10.0, 40.0))
    ledger.record(root, _entry("32630_64_2_2", 10.0, 20.0))
    ledger.record(root, _entry("32630_64_2_2", 10.0, 20.0))  # a re-run replaces its entry
    entries = ledger.read_entries(root)
    assert [e.tile for e in entries] == ["32630_64_1_2", "32630_64_2_2"]
    t = ledger.totals(entries)
    assert t["partitions"] == 2 and t["estimate_seconds"] == 20.0 and t["actual_seconds"] == 60.0
    assert t["seconds_error"] == pytest.approx(-2 / 3)
    # priced work = 20 s x 300 px/s = 6000 px in 60 s measured: 100 px/s
    assert ledger.calibration(entries) == {"v2-nano": {"cpu": pytest.approx(100.0)}}


def test_calibration_replaces_the_rate_and_never_compounds(tmp_path: Path) -> None:
    settings = PipelineSettings(root=str(tmp_path), tile_size=64, years=[2024],
                                inference=InferenceSettings(family="v2-nano"))
    assert inference_device(settings) == "cpu"  # 'auto' and no GPU slots
    before = asset_estimates({}, {}, 64, effective_planner(settings), "v2-nano")["embeddings"]
    assert before["seconds"] == pytest.approx(4096 / 300.0)
    ledger.save_calibration(str(tmp_path), {"v2-nano": {"cpu": 100.0}})
    planner = effective_planner(settings)
    assert throughput(planner, "v2-nano") == 100.0
    # a ledger recorded with the calibrated rate measures the same throughput again
    again = ledger.calibration([_entry("32630_64_1_2", 4096 / 100.0, 4096 / 100.0, rate=100.0)])
    assert again == {"v2-nano": {"cpu": pytest.approx(100.0)}}
    gpu = PipelineSettings(root=str(tmp_path), tile_size=64, years=[2024],
                           inference=InferenceSettings(family="v2-nano", slot_resource="GPU"))
    assert inference_device(gpu) == "gpu"
    assert effective_planner(gpu, "cpu").device == "cpu"  # the run's device wins


def test_ledger_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    settings = PipelineSettings(root=str(tmp_path / "data"), tile_size=64, years=[2024])
    monkeypatch.setenv(CONFIG_ENV, str(settings.save(tmp_path / "tessera.json")))
    ledger.record(settings.root, _entry("32630_64_1_2", 10.0, 40.0))
    monkeypatch.setattr(console, "width", 200)
    assert main(["ledger"]) == 0
    out = capsys.readouterr().out
    assert "32630_64_1_2" in out and "-75%" in out and "measured v2-nano on cpu: 75.0" in out
    assert main(["ledger", "--json", "--calibrate"]) == 0
    doc = json.loads(capsys.readouterr().out.split("calibrated:")[0])
    assert doc["totals"]["partitions"] == 1
    assert ledger.load_calibration(settings.root) == {"v2-nano": {"cpu": 75.0}}

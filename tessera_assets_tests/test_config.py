"""Settings: the JSON file, then TESSERA_* variables, then overrides; errors name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from tessera_assets.config import ENV_ALIASES, PipelineSettings, SettingsError, parse_years


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("TESSERA_"):
            monkeypatch.delenv(name)


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "tessera.json"
    path.write_text(json.dumps(data))
    return path


def test_file_then_environment_then_overrides(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    path = _write(tmp_path, {"root": "/file", "tile_size": 512, "years": [2020, 2021],
                             "catalog": {"kind": "stac-api", "url": "https://file"}})
    monkeypatch.setenv("TESSERA_CONFIG", str(path))
    monkeypatch.setenv("TESSERA_ROOT", "s3://env/root")
    monkeypatch.setenv("TESSERA_TILE_SIZE", "1024")
    monkeypatch.setenv("TESSERA_YEARS", "2019-2021,2024")
    monkeypatch.setenv("TESSERA_COARSE_RESOLUTION", "320")
    monkeypatch.setenv("TESSERA_CATALOG_URL", "https://env")
    s = PipelineSettings.load(root="/override")
    assert s.root == "/override"
    assert s.tile_size == 1024 and s.coarse_resolution == 320.0 and s.coarse_factor == 32
    assert s.years == [2019, 2020, 2021, 2024]
    # A variable for one field of a section keeps the file's other fields.
    assert (s.catalog.kind, s.catalog.url) == ("stac-api", "https://env")


def test_every_short_name_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {"TESSERA_CATALOG_PRESET": "earth-search", "TESSERA_CATALOG_KIND": "stac-api",
              "TESSERA_CATALOG_URL": "https://stac.example", "TESSERA_CATALOG_ON_UNREADABLE": "skip",
              "TESSERA_MODEL": "hf://o/r/m.pt", "TESSERA_MODEL_SHA256": "ab" * 32,
              "TESSERA_RAY_ADDRESS": "ray://head:10001", "TESSERA_BATCH_SIZE": "256"}
    assert set(values) == set(ENV_ALIASES)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    s = PipelineSettings.load()
    assert (s.catalog.preset, s.catalog.kind, s.catalog.url, s.catalog.on_unreadable) == (
        "earth-search", "stac-api", "https://stac.example", "skip")
    assert s.inference.model_source == "hf://o/r/m.pt" and s.inference.model_sha256 == "ab" * 32
    assert s.inference.ray_address == "ray://head:10001" and s.inference.batch_size == 256


def test_nested_variables_reach_every_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_PLANNER__BUDGET_USD", "250")
    monkeypatch.setenv("TESSERA_SCENE_WATCH__INTERVAL_S", "900")
    monkeypatch.setenv("TESSERA_INFERENCE__NUM_WORKERS", "3")
    monkeypatch.setenv("TESSERA_CATALOG__S1_COLLECTION", "null")
    monkeypatch.setenv("TESSERA_STORAGE_OPTIONS", '{"anon": true}')
    monkeypatch.setenv("TESSERA_AOI_REQUESTS_URL", "s3://bucket/requests")
    s = PipelineSettings.load()
    assert s.planner.budget_usd == 250 and s.scene_watch.interval_s == 900
    assert s.inference.num_workers == 3 and s.catalog.s1_collection is None
    assert s.storage_options == {"anon": True} and s.aoi_requests_url == "s3://bucket/requests"


def test_full_name_beats_short_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_MODEL", "short.pt")
    monkeypatch.setenv("TESSERA_INFERENCE__MODEL_SOURCE", "full.pt")
    assert PipelineSettings.load().inference.model_source == "full.pt"


def test_constructor_ignores_the_environment(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("TESSERA_CONFIG", str(_write(tmp_path, {"root": "/file"})))
    monkeypatch.setenv("TESSERA_TILE_SIZE", "1024")
    monkeypatch.setenv("TESSERA_MODEL", "env.pt")
    s = PipelineSettings(years=[2024])
    assert s.root == "./data" and s.tile_size == 2048
    assert s.inference.model_source == PipelineSettings().inference.model_source != "env.pt"


@pytest.mark.parametrize(("name", "value", "field"), [
    ("TESSERA_TILE_SIZE", "100", "tile_size"),
    ("TESSERA_TILE_SIZE", "big", "tile_size"),
    ("TESSERA_YEARS", "2024-2019", "years"),
    ("TESSERA_YEARS", "", "years"),
    ("TESSERA_COARSE_RESOLUTION", "100", "coarse_resolution"),  # 100 m does not divide 20.48 km
    ("TESSERA_COARSE_RESOLUTION", "-160", "coarse_resolution"),
    ("TESSERA_BATCH_SIZE", "0", "inference.batch_size"),
    ("TESSERA_CATALOG__ON_UNREADABLE", "ignore", "catalog.on_unreadable"),
])
def test_bad_values_are_validation_errors_naming_the_field(
        monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:  # one line naming the field and the variable
        PipelineSettings.load()
    assert field in err.value.fields and "\n" not in str(err.value)


def test_tile_size_and_coarse_resolution_rules_come_from_the_grid() -> None:
    assert PipelineSettings(tile_size=1600, coarse_resolution=100.0).coarse_factor == 10
    with pytest.raises(ValidationError, match="multiple of 32"):
        PipelineSettings(tile_size=48)
    with pytest.raises(ValidationError, match=r"valid resolutions: 20, 40, 80, .* m"):
        PipelineSettings(tile_size=64, coarse_resolution=30.0)
    with pytest.raises(ValidationError, match="coarse_resolution"):
        PipelineSettings(tile_size=64, coarse_resolution=10.0)  # a factor of 1 coarsens nothing


def test_missing_file_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TESSERA_CONFIG", str(tmp_path / "nope.json"))
    with pytest.raises(FileNotFoundError, match="TESSERA_CONFIG"):
        PipelineSettings.load()


def test_retired_setting_in_old_files_is_dropped(tmp_path: Path) -> None:
    s = PipelineSettings.load(_write(tmp_path, {"s2_min_coverage": 0.0, "tile_size": 64}))
    assert s.tile_size == 64 and "s2_min_coverage" not in s.model_dump()
    assert s.digest() == PipelineSettings(tile_size=64).digest()
    with pytest.raises(ValidationError, match="s2_min_covrage"):
        PipelineSettings.model_validate({"s2_min_covrage": 0.5})  # other unknown keys still fail


def test_digest_ignores_where_and_how_but_not_what() -> None:
    base = PipelineSettings()
    assert base.digest() == PipelineSettings(root="s3://elsewhere").digest()
    assert base.digest() == base.model_copy(
        update={"inference": base.inference.model_copy(update={"ray_address": "ray://x"})}
    ).digest()
    assert base.digest() != PipelineSettings(tile_size=1024).digest()


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    s = PipelineSettings(tile_size=160, years=[2024], coarse_resolution=100.0)
    assert PipelineSettings.load(s.save(tmp_path / "x" / "tessera.json")) == s


def test_parse_years() -> None:
    assert parse_years("2019-2021, 2024") == [2019, 2020, 2021, 2024]
    assert parse_years("2024") == [2024]
    with pytest.raises(ValueError, match="backwards"):
        parse_years("2021-2019")

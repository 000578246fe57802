"""No credential ever reaches the Dagster instance (issue 13, item 1).

A real run through Dagster with marker secrets in every place a deployment keeps them (storage
options from the environment and from the settings file, a secrets file, the catalog tokens),
against a SQLite instance in a temporary DAGSTER_HOME; then every table of every instance
database (zlib-compressed snapshot bodies decompressed), the event logs, compute logs and
every other file under DAGSTER_HOME and the store root are searched for the markers.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import zlib
from datetime import date
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance

from tessera_assets.aoi import load_aoi
from tessera_assets.cli.aoi import register_aoi
from tessera_assets.config import CONFIG_ENV, SECRETS_FILE_ENV, PipelineSettings
from tessera_assets.defs import PIPELINE_JOB, build_definitions
from tessera_assets.defs.definitions import check_secrets_at_run_time
from tessera_assets.defs.partitions import partition_key
from tessera_assets.defs.resources import PipelineResource
from tessera_assets.demo import DemoSpec, generate_demo_archive
from tessera_assets.demo.area import DEMO_EPSG, DemoPaths, demo_bounds, demo_settings
from tessera_assets.grid import tiles_for_geometry

MARKERS = {
    "TESSERA_STORAGE_OPTIONS__KEY": "MARKERk3y0001",
    "TESSERA_STORAGE_OPTIONS__SECRET": "MARKERs3cr3t0002",
    "TESSERA_STORAGE_OPTIONS__CLIENT_KWARGS__AWS_SESSION_TOKEN": "MARKERt0k3n0003",
    "EARTHDATA_TOKEN": "MARKERearthdata0004",
    "CDSE_S3_ACCESS_KEY": "MARKERcdsekey0005",
    "CDSE_S3_SECRET_KEY": "MARKERcdsesecret0006",
    "PC_SDK_SUBSCRIPTION_KEY": "MARKERpckey0007",
}
FILE_SECRET = "MARKERfromsettingsfile0008"
SECRETS_FILE_SECRET = "MARKERfromsecretsfile0009"
ALL_MARKERS = [*MARKERS.values(), FILE_SECRET, SECRETS_FILE_SECRET]
TILE_SIZE = 32
AOI_UTM = (636_900.0, 5_762_300.0, 637_100.0, 5_762_500.0)


def _found_in(blob: bytes) -> list[str]:
    texts = [blob]
    with contextlib.suppress(zlib.error):
        texts.append(zlib.decompress(blob))
    return [m for m in ALL_MARKERS for t in texts if m.encode() in t]


def _scan_sqlite(db: Path) -> tuple[int, list[str]]:
    rows, hits = 0, []
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in con.execute(f'SELECT * FROM "{table}"'):
                rows += 1
                for value in row:
                    if isinstance(value, str):
                        value = value.encode()
                    if isinstance(value, bytes):
                        hits += [f"{db.name}:{table}:{m}" for m in _found_in(value)]
    finally:
        con.close()
    return rows, hits


def _scan_tree(root: Path) -> tuple[int, int, list[str]]:
    """(sqlite rows, other files, hits) under ``root``."""
    rows, files, hits = 0, 0, []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if data.startswith(b"SQLite format 3"):
            n, h = _scan_sqlite(path)
            rows += n
            hits += h
        else:
            files += 1
            hits += [f"{path}:{m}" for m in _found_in(data)]
    return rows, files, hits


@pytest.fixture
def secret_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DemoPaths:
    paths = DemoPaths(tmp_path / "demo")
    for name, value in MARKERS.items():
        monkeypatch.setenv(name, value)
    settings = demo_settings(paths, tile_size=TILE_SIZE)
    doc = json.loads(settings.model_dump_json())
    doc["storage_options"] = {"client_kwargs": {"aws_secret_access_key": FILE_SECRET}}
    cfg = tmp_path / "tessera.json"
    cfg.write_text(json.dumps(doc))
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"storage_options": {"password": SECRETS_FILE_SECRET}}))
    monkeypatch.setenv(CONFIG_ENV, str(cfg))
    monkeypatch.setenv(SECRETS_FILE_ENV, str(secrets))
    return paths


def test_settings_never_serialise_or_print_credentials(secret_env: DemoPaths) -> None:
    settings = PipelineSettings.load()
    options = settings.storage_options
    assert options["key"] == MARKERS["TESSERA_STORAGE_OPTIONS__KEY"]
    assert options["client_kwargs"] == {
        "aws_secret_access_key": FILE_SECRET,
        "aws_session_token": MARKERS["TESSERA_STORAGE_OPTIONS__CLIENT_KWARGS__AWS_SESSION_TOKEN"],
    }
    assert options["password"] == SECRETS_FILE_SECRET
    for text in (
        settings.model_dump_json(),
        json.dumps(settings.model_dump(mode="json")),
        repr(settings),
        str(settings),
        settings.digest(),
    ):
        assert not [m for m in ALL_MARKERS if m in text], text[:300]
    # ... while the resource a run builds from that JSON has them again, read at run time.
    resource = PipelineResource(settings_json=settings.model_dump_json())
    assert resource.settings.storage_options == options


def test_credentials_a_run_could_not_find_are_refused(tmp_path: Path) -> None:
    settings = PipelineSettings(root=str(tmp_path), storage_options={"secret": "x", "anon": False})
    with pytest.raises(ValueError, match="TESSERA_STORAGE_OPTIONS__SECRET"):
        check_secrets_at_run_time(settings)


def test_no_marker_secret_in_the_instance_after_a_run(
    secret_env: DemoPaths, tmp_path: Path
) -> None:
    paths = secret_env
    settings = PipelineSettings.load()
    tiles = tiles_for_geometry(load_aoi(list(AOI_UTM), crs=f"EPSG:{DEMO_EPSG}"), TILE_SIZE)
    spec = DemoSpec(
        epsg=DEMO_EPSG,
        bounds=demo_bounds([t.bounds for t in tiles]),
        year=settings.years[0],
        start=date(2024, 4, 1),
        end=date(2024, 4, 10),
    )
    generate_demo_archive(spec, paths.archive)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with DagsterInstance.from_config(str(home)) as instance:
        register_aoi(
            instance, settings, "secrets", list(AOI_UTM), settings.years, crs=f"EPSG:{DEMO_EPSG}"
        )
        defs = build_definitions()  # from $TESSERA_CONFIG + environment, as dagster dev does
        result = defs.resolve_job_def(PIPELINE_JOB).execute_in_process(
            partition_key=partition_key(tiles[0], settings.years[0]),
            instance=instance,
            asset_selection=[AssetKey("scene_manifest")],
        )
        assert result.success
        assert instance.get_run_by_id(result.run_id) is not None
    rows, files, hits = _scan_tree(home)
    data_rows, data_files, data_hits = _scan_tree(Path(settings.root))
    assert rows > 50 and files >= 1, (rows, files)  # the run and its logs were recorded
    assert any((home / "storage").rglob("*.complete")) or any((home / "storage").rglob("*.out"))
    assert data_files >= 2
    assert hits + data_hits == []

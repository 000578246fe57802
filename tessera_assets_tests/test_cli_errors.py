"""Errors at the right time, in one line (issue 13 items 6, 8, 9; issue 10 item 8).

Settings errors name the field and the fix; a missing model, an unknown store scheme or a
partition held by another run stop a run at its start with nothing written; ``materialize``
outside the partitions says so in one line; killed runs are marked failed; bracketed text is
printed as written; a western bbox after ``--`` parses."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, job, op

from tessera_assets.cli.common import dagster_instance, print_error
from tessera_assets.cli.main import build_parser, main, options_before_separator
from tessera_assets.cli.run_health import HOST_TAG, reap_dead_runs
from tessera_assets.config import CONFIG_ENV, PipelineSettings, SettingsError
from tessera_assets.defs import PIPELINE_JOB, build_definitions
from tessera_assets.defs.partitions import TILES, partition_key
from tessera_assets.ops.partition_lease import LeaseRecord, lease_key
from tessera_assets.ops.preflight import PreflightError, preflight
from tessera_assets_tests.fixtures import one_line as _one_line

TILE = "32630_64_995_5683"


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    settings = PipelineSettings(root=str(tmp_path / "data"), tile_size=64, years=[2023, 2024])
    monkeypatch.setenv(CONFIG_ENV, str(settings.save(tmp_path / "tessera.json")))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return tmp_path


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"TESSERA_TILE_SIZE": "100"}, "tile_size"),
        ({"TESSERA_YEARS": "abc"}, "years"),
        ({"TESSERA_CATALOG__MAX_S2_CLOUD_COVER": "lots"}, "catalog.max_s2_cloud_cover"),
        ({"TESSERA_STORAGE_OPTIONS": "{oops"}, "TESSERA_STORAGE_OPTIONS"),
    ],
)
def test_settings_error_is_one_line_for_every_command(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys, env: dict, field: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for argv in (["status"], ["aoi", "list"]):
        assert main(argv) == 2
        line = _one_line(capsys.readouterr().out)
        assert line.startswith("error: invalid settings:") and field in line
        assert "fix the" in line and "errors.pydantic.dev" not in line


def test_settings_error_from_the_code_location(home: Path, monkeypatch) -> None:
    (home / "tessera.json").write_text('{"tile_size": 64, "bogus": 1}')
    with pytest.raises(SettingsError) as err:
        build_definitions()  # what `import tessera_assets.defs; defs` does
    assert "\n" not in str(err.value) and "bogus" in str(err.value)
    assert str(home / "tessera.json") in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_preflight_names_the_setting(tmp_path: Path) -> None:
    missing = PipelineSettings(root=str(tmp_path), inference={"model_source": "/no/model.pt"})
    with pytest.raises(PreflightError, match=r"inference\.model_source: no checkpoint at"):
        preflight(missing, needs_model=True)
    preflight(missing, needs_model=False)  # a manifest-only run needs no model
    with pytest.raises(PreflightError, match=r"unknown scheme .nosuch://."):
        preflight(PipelineSettings(root="nosuch://bucket/x"), needs_model=False)


def _run(settings: PipelineSettings, instance: DagsterInstance, selection=None):
    instance.add_dynamic_partitions(TILES.name, [TILE])
    job_def = build_definitions(settings).resolve_job_def(PIPELINE_JOB)
    return job_def.execute_in_process(
        partition_key=partition_key(TILE, 2024),
        instance=instance,
        raise_on_error=False,
        asset_selection=selection,
    )


def _failure_text(result) -> str:
    texts = []
    for ev in result.all_events:
        error = getattr(ev.event_specific_data, "error", None)
        if error is not None:
            texts.append((error.cause or error).message)
    return " ".join(texts)


def test_missing_model_stops_the_run_before_any_write(tmp_path: Path) -> None:
    root = tmp_path / "data"
    settings = PipelineSettings(
        root=str(root), tile_size=64, years=[2024], inference={"model_source": "/no/model.pt"}
    )
    result = _run(settings, DagsterInstance.ephemeral())
    assert not result.success
    assert "inference.model_source: no checkpoint at /no/model.pt" in _failure_text(result)
    assert not any(e.is_step_start for e in result.all_events)
    assert not root.exists() or not [p for p in root.rglob("*") if p.is_file()]


def test_partition_held_by_another_run_is_refused_before_any_write(tmp_path: Path) -> None:
    root = tmp_path / "data"
    lease = root / lease_key(TILE, 2024)
    lease.parent.mkdir(parents=True)
    now = time.time()
    lease.write_bytes(
        LeaseRecord(TILE, 2024, "run-other", "host-b", 7, "t", now, now + 600).to_bytes()
    )
    settings = PipelineSettings(root=str(root), tile_size=64, years=[2024])
    result = _run(settings, DagsterInstance.ephemeral(), [AssetKey("scene_manifest")])
    assert not result.success
    text = _failure_text(result)
    assert f"tile {TILE} year 2024 is being written by run-other (host host-b, pid 7)" in text
    assert not any(e.is_step_start for e in result.all_events)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        lease_key(TILE, 2024)
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tile", TILE, "--year", "1999"], "year 1999 is not a partition"),
        (["--tile", TILE, "--year", "2024"], f"tile {TILE} is not a partition"),
        (["--tile", TILE, "--year", "20x4"], "--year '20x4' is not a year"),
    ],
)
def test_materialize_outside_the_partitions(home: Path, capsys, argv, message) -> None:
    assert main(["materialize", *argv]) == 2
    line = _one_line(capsys.readouterr().out)
    assert message in line and "DagsterUnknownPartitionError" not in line


def test_brackets_are_printed_as_written(capsys) -> None:
    print_error("install it: pip install 'tessera_assets[pc]' (see [docs])")
    assert _one_line(capsys.readouterr().out) == (
        "error: install it: pip install 'tessera_assets[pc]' (see [docs])"
    )
    print_error(KeyError("AOI '[x]' is not registered"))
    assert "'[x]'" in capsys.readouterr().out


def test_aoi_requests_print_bracketed_names(home: Path, capsys) -> None:
    inbox = home / "data" / "aoi_requests"
    inbox.mkdir(parents=True)
    (inbox / "west[1].geojson").write_text('{"type": "Feature", "properties": "[abc]"}')
    assert main(["aoi", "requests"]) == 1
    out = capsys.readouterr().out
    assert "west[1].geojson" in out and "got str '[abc]'" in out


def test_western_bbox_after_double_dash_parses() -> None:
    parser = build_parser()
    for argv in (
        ["aoi", "add", "--", "-1.2,51.9,-1.0,52.0", "--years", "2024"],
        ["aoi", "add", "--years", "2024", "--", "-1.2,51.9,-1.0,52.0"],
        ["aoi", "add", "--", "-1.2,51.9,-1.0,52.0", "--years=2024", "--name", "w"],
    ):
        args = parser.parse_args(options_before_separator(argv, {"--delete-data"}))
        assert (args.spec, args.years) == ("-1.2,51.9,-1.0,52.0", "2024")


def test_demo_instance_has_run_monitoring_and_one_run_per_partition(tmp_path: Path) -> None:
    instance = dagster_instance(tmp_path / "home")
    assert instance.run_monitoring_enabled
    coordinator = instance.run_coordinator
    assert type(coordinator).__name__ == "QueuedRunCoordinator"
    limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {
        "key": "dagster/partition",
        "value": {"applyLimitPerUniqueValue": True},
        "limit": 1,
    } in limits


@op
def _sleepy() -> None:
    time.sleep(60)


@job
def _sleepy_job() -> None:
    _sleepy()


def _start_run(home: str, started) -> None:
    instance = DagsterInstance.from_config(home)
    started.set()
    _sleepy_job.execute_in_process(instance=instance, tags={HOST_TAG: os.uname().nodename})


def test_killed_run_is_marked_failed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = DagsterInstance.from_config(str(home))  # creates the tables once
    started = mp.get_context("fork").Event()
    proc = mp.get_context("fork").Process(target=_start_run, args=(str(home), started))
    proc.start()
    deadline = time.time() + 60
    while time.time() < deadline and not instance.get_runs():
        time.sleep(0.2)
    [run] = instance.get_runs()
    while time.time() < deadline and not any(
        e.is_step_start
        for e in (
            r.event_log_entry.dagster_event
            for r in instance.get_records_for_run(run.run_id).records
        )
        if e is not None
    ):
        time.sleep(0.2)
    assert reap_dead_runs(instance) == []  # alive: left alone
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED
    [dead] = reap_dead_runs(instance)
    assert dead.run_id == run.run_id and "killed mid-step" in dead.line()
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE

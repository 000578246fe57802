"""The code location loads: `dagster definitions validate` passes and `dagster dev` serves all
nine assets with their tile × year partitions."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dagster import DagsterInstance

from tessera_assets.config import PipelineSettings
from tessera_assets.defs import PIPELINE_JOB, build_definitions
from tessera_assets.defs.partitions import TILES

REPO = Path(__file__).resolve().parents[1]
ASSETS = {"scene_manifest", "s2_cube", "s1_cube", "landsat_cube", "s2_masked",
          "s1_calibrated", "landsat_masked", "embeddings", "embeddings_coarse"}
DAGSTER = str(Path(sys.executable).parent / "dagster")


def _env(tmp_path: Path) -> dict[str, str]:
    settings = PipelineSettings(root=str(tmp_path / "data"), tile_size=64, years=[2023, 2024])
    cfg = settings.save(tmp_path / "tessera.json")
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {**os.environ, "TESSERA_CONFIG": str(cfg), "DAGSTER_HOME": str(home)}


def test_build_definitions_has_nine_partitioned_assets() -> None:
    defs = build_definitions(PipelineSettings(tile_size=64, years=[2024]))
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == ASSETS
    for key in graph.get_all_asset_keys():
        pdef = graph.get(key).partitions_def
        assert pdef is not None and set(pdef.partition_dimension_names) == {"tile", "year"}
    assert defs.resolve_job_def(PIPELINE_JOB) is not None


def test_definitions_validate_cli(tmp_path: Path) -> None:
    proc = subprocess.run([DAGSTER, "definitions", "validate", "-w", "workspace.yaml"],
                          cwd=REPO, env=_env(tmp_path), capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Validation successful" in proc.stderr + proc.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                 data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
def test_dagster_dev_serves_assets_and_partitions(tmp_path: Path) -> None:
    env = _env(tmp_path)
    instance = DagsterInstance.from_config(env["DAGSTER_HOME"])
    instance.add_dynamic_partitions(TILES.name, ["32630_64_995_5683", "32630_64_996_5683"])
    port = _free_port()
    proc = subprocess.Popen(
        [DAGSTER, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.stderr.read().decode()[-3000:]) from None
                time.sleep(1)
        query = """{ assetNodes { assetKey { path } partitionKeysByDimension {
                      name partitionKeys } } }"""
        for _ in range(60):  # the code server may still be loading
            data = _graphql(port, query).get("data") or {}
            nodes = data.get("assetNodes") or []
            if nodes:
                break
            time.sleep(1)
        names = {"/".join(n["assetKey"]["path"]) for n in nodes}
        assert names == ASSETS
        for node in nodes:
            dims = {d["name"]: d["partitionKeys"] for d in node["partitionKeysByDimension"]}
            assert dims["year"] == ["2023", "2024"]
            assert sorted(dims["tile"]) == ["32630_64_995_5683", "32630_64_996_5683"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_catalog_conventions_owners_code_versions_and_pool() -> None:
    from tessera_assets.defs.conventions import OWNERS, code_version

    defs = build_definitions(PipelineSettings(tile_size=64, years=[2024]))
    graph = defs.resolve_asset_graph()
    versions = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert list(node.owners) == OWNERS
        versions[key.to_user_string()] = node.code_version
    # Per-asset digests of their own source, not the package version: the three cubes share
    # one builder module, the other stages differ.
    assert len({versions[c] for c in ("s2_cube", "s1_cube", "landsat_cube")}) == 1
    assert len({versions[a] for a in ("scene_manifest", "s2_cube", "s2_masked", "embeddings",
                                      "embeddings_coarse")}) == 5
    assert versions["s2_cube"] == code_version("tessera_assets.defs.cube_assets",
                                               "tessera_assets.ingest.cubes",
                                               "tessera_assets.ingest.cog_reading",
                                               "tessera_assets.ingest.granule_read",
                                               "tessera_assets.ingest.upsample")
    embeddings = defs.resolve_assets_def("embeddings")
    assert embeddings.op.pool == "gpu"  # one inference pool per instance limit

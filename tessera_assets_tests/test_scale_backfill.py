"""The scale test (issue 9): a backfill of 24 demo tile-years launched through the GraphQL API,
the way the UI does it, on a production-like deployment on loopback — Postgres storage, the
daemon's QueuedRunCoordinator with a run limit per backfill and a ``gpu`` pool on
``embeddings``, runs as separate processes, every store on a moto S3 server, and a Ray head
plus a worker node whose ``inference_slot`` resource stands in for GPUs.

Speed is not asserted here (it is measured by benchmarks/bench_scale_backfill.py and recorded
in docs/performance.md); what must hold is asserted: every run succeeds, the stores are byte
for byte what the same partitions give one after another, and the model was loaded once per
shared actor, not once per run.
"""

from __future__ import annotations

import json

import pytest

from tessera_assets_tests.infra.scale_run import ScaleConfig, run_scale

pytestmark = [pytest.mark.slow, pytest.mark.scale, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def scale(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("scale")
    result = run_scale(work, ScaleConfig())
    (work / "scale-result.json").write_text(result.to_json())
    print(result.to_json())
    return result


def test_every_run_of_the_24_tile_year_backfill_succeeds(scale) -> None:
    assert scale.partitions == 24
    assert scale.run_status == {"SUCCESS": 24}, scale.run_status


def test_outputs_are_byte_identical_to_sequential_runs(scale) -> None:
    assert scale.compared_objects >= 24 * 6  # every product's region of every partition
    assert scale.missing_objects == []
    assert scale.differing_objects == []


def test_model_loaded_once_per_shared_actor_and_no_run_started_ray(scale) -> None:
    slots = scale.config["slots"]
    assert len(scale.actors) == slots
    assert all(a["loads"] == 1 for a in scale.actors), json.dumps(scale.actors)
    # every strip of every run went to one of the cluster's named actors
    assert set(scale.workers_seen) <= {a["name"] for a in scale.actors}
    assert len(scale.workers_seen) == slots
    # stats are read right after the backfill: every strip of the 24 partitions went through
    # these actors (32 px tiles in 16-row strips: 2 strips each)
    assert sum(a["strips"] for a in scale.actors) >= 24 * 2


def test_instance_state_lives_in_postgres(scale) -> None:
    rows = scale.postgres_rows
    assert rows["runs"] >= 24  # the backfill's, plus any the automation daemon launched
    assert rows["bulk_actions"] >= 1  # the backfill, plus the automation daemon's own
    assert rows["event_logs"] > 24 * 7
    assert rows["dynamic_partitions"] == 24

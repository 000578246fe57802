"""The shared inference service on a real Ray cluster on loopback: runs attach, never start
Ray; the model lives in named detached actors loaded once; concurrent runs share the slots."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tessera_assets.config import InferenceSettings
from tessera_assets.inference.cluster_address import (
    STATE_DIR_ENV,
    NoClusterError,
    resolve_address,
)
from tessera_assets.inference.service import InferenceService, actor_key
from tessera_assets.model.demo_weights import write_demo_checkpoint

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> InferenceSettings:
    model = tmp_path_factory.mktemp("model") / "demo.pt"
    write_demo_checkpoint(model, family="v2-nano", seed=3)
    return InferenceSettings(model_source=str(model), family="v2-nano", batch_size=128,
                             ray_address="auto", slot_resource="inference_slot",
                             cpus_per_worker=1.0)


def _driver(settings: InferenceSettings, seed: int, strips: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tessera_assets_tests.inference.driver",
         "--settings", settings.model_dump_json(), "--strips", str(strips), "--seed", str(seed)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def test_auto_address_without_a_cluster_says_how_to_start_one(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(NoClusterError, match="tessera-assets ray up"):
        resolve_address("auto")
    assert resolve_address("ray://head:10001") == "ray://head:10001"


def test_a_run_without_a_cluster_fails_instead_of_starting_ray(settings, tmp_path) -> None:
    env = {**os.environ, STATE_DIR_ENV: str(tmp_path)}
    env.pop("RAY_ADDRESS", None)
    code = ("from tessera_assets.config import InferenceSettings as S;"
            "from tessera_assets.inference.service import InferenceService as I;"
            f"I(S.model_validate_json({settings.model_dump_json()!r})).connect()")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert "InferenceUnavailable" in proc.stderr and "tessera-assets ray up" in proc.stderr
    assert not list(tmp_path.iterdir()), "the failed run left cluster state behind"


def test_concurrent_runs_share_one_actor_loaded_once(ray_cluster, settings) -> None:
    strips = 8
    procs = [_driver(settings, seed, strips) for seed in (1, 2)]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    workers = {r["worker"] for out in outs for r in out["results"]}
    assert all(len(out["results"]) == strips for out in outs)
    assert len(workers) == 1 == ray_cluster.slots  # both runs used the cluster's one actor
    # fair share: while both runs are active their strips alternate on the actor; a run
    # queues at most 2 strips per actor, so neither gets more than 2 in a row (+1 at the edges)
    a = sorted(r["at"] for r in outs[0]["results"])
    b = sorted(r["at"] for r in outs[1]["results"])
    lo, hi = max(a[0], b[0]), min(a[-1], b[-1])
    assert lo < hi, "the two runs did not overlap at all"
    merged = sorted([(t, "a") for t in a if lo <= t <= hi] + [(t, "b") for t in b if lo <= t <= hi])
    longest = streak = 1
    for prev, cur in itertools.pairwise(merged):
        streak = streak + 1 if cur[1] == prev[1] else 1
        longest = max(longest, streak)
    assert {who for _, who in merged} == {"a", "b"}
    assert longest <= 3, merged

    service = InferenceService(settings).connect()
    stats = service.actor_stats()
    service.detach()
    assert len(stats) == 1
    assert stats[0]["loads"] == 1
    assert stats[0]["strips"] >= 2 * strips
    assert stats[0]["name"] in workers


def test_actor_key_separates_models(settings) -> None:
    other = settings.model_copy(update={"model_source": settings.model_source + ".other"})
    assert actor_key(settings) != actor_key(other)
    assert actor_key(settings) == actor_key(settings.model_copy(update={"batch_size": 7}))


def test_a_new_model_takes_the_slot_of_an_idle_other_model(ray_cluster, settings,
                                                             tmp_path) -> None:
    from tessera_assets.inference.service import shared_actors
    from tessera_assets.inference.tasks import StripTask
    from tessera_assets_tests.model.helpers import random_series

    model = tmp_path / "other.pt"
    write_demo_checkpoint(model, family="v2-nano", seed=4)
    other = settings.model_copy(update={"model_source": str(model)})
    InferenceService(settings).connect().detach()
    second = InferenceService(other).connect()
    try:
        live = shared_actors()
        results = list(second.embed([StripTask(0, 0, 1, random_series(64, seed=9))]))
        stats = second.actor_stats()
    finally:
        second.detach()
    assert len(live) == ray_cluster.slots
    assert all(actor_key(other) in name for name in live), live
    assert len(results) == 1 and results[0].codes.shape == (64, 128)
    assert [s["loads"] for s in stats] == [1]


def test_model_info_is_answered_while_the_actor_embeds_a_strip(ray_cluster, settings) -> None:
    """A run attaching to busy actors asks actor 0 for the model's info: that call must not
    queue behind the strip the actor is embedding (it did, for up to a strip's time)."""
    import ray

    from tessera_assets.inference.service import control
    from tessera_assets.inference.tasks import StripTask
    from tessera_assets_tests.model.helpers import random_series

    service = InferenceService(settings).connect()
    try:
        actor = service._actors[0]
        strip = actor.run.remote(StripTask(0, 0, 1, random_series(30_000, seed=5)), 128)
        info = control(actor.info).remote()
        ready, _ = ray.wait([info, strip], num_returns=1, timeout=300)
        strip_done = bool(ray.wait([strip], timeout=0)[0])
        assert ready == [info] and not strip_done, "info waited for the strip"
        assert ray.get(info).family == "v2-nano"
        assert ray.get(strip).codes.shape == (30_000, 128)
    finally:
        service.detach()

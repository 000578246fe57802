"""Scene manifests are saved whole or not at all, and a damaged one is an error, never "no
scenes" (issue 13, item 3): truncated and 0-byte files, a save killed between its two files,
and SIGKILLs at random moments of repeated saves."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pystac
import pytest

from tessera_assets.sources.manifest import ManifestError, SceneManifest

TILE = "32630_64_995_5683"


def _manifest(n: int, tag: str = "a") -> SceneManifest:
    items = []
    for i in range(n):
        it = pystac.Item(
            f"S2A_{tag}_{i}",
            {"type": "Point", "coordinates": [-1.0, 52.0]},
            [-1.0, 52.0, -1.0, 52.0],
            datetime(2024, 5, 1 + i % 28, tzinfo=UTC),
            {"tessera:sensor": "s2", "tessera:doy": 122 + i, "eo:cloud_cover": 5.0},
            collection="sentinel-2-l2a",
        )
        it.add_asset("red", pystac.Asset(f"file:///archive/{it.id}/B04.tif"))
        items.append(it)
    return SceneManifest(TILE, 2024, items)


def test_round_trip_with_and_without_scenes(tmp_path: Path) -> None:
    for n in (0, 3):
        url = str(tmp_path / f"m{n}" / "2024")
        _manifest(n).save(url)
        assert (tmp_path / f"m{n}" / "2024.parquet").stat().st_size > 0  # even with no scenes
        loaded = SceneManifest.load(url)
        assert len(loaded.items) == n and loaded.digest() == _manifest(n).digest()
        assert not list((tmp_path / f"m{n}").glob("*.partial"))


@pytest.mark.parametrize(
    "damage",
    ["zero-byte parquet", "truncated parquet", "zero-byte json", "truncated json", "stale json"],
)
def test_damaged_manifest_is_an_error(tmp_path: Path, damage: str) -> None:
    url = str(tmp_path / "2024")
    _manifest(5).save(url)
    parquet, summary = Path(url + ".parquet"), Path(url + ".json")
    if damage == "zero-byte parquet":
        parquet.write_bytes(b"")
    elif damage == "truncated parquet":
        parquet.write_bytes(parquet.read_bytes()[: parquet.stat().st_size // 2])
    elif damage == "zero-byte json":
        summary.write_bytes(b"")
    elif damage == "truncated json":
        summary.write_bytes(summary.read_bytes()[:40])
    else:  # killed between the two files: new items, old summary
        _manifest(2, "b").save(str(tmp_path / "other"))
        parquet.write_bytes(Path(str(tmp_path / "other") + ".parquet").read_bytes())
    with pytest.raises(ManifestError, match="re-materialise scene_manifest"):
        SceneManifest.load(url)


def test_legacy_zero_scene_manifest_still_loads(tmp_path: Path) -> None:
    url = str(tmp_path / "2024")
    _manifest(0).save(url)
    Path(url + ".parquet").write_bytes(b"")  # how manifests without scenes used to be written
    assert SceneManifest.load(url).items == []


def _save_forever(url: str) -> None:
    manifests = [_manifest(40, "a"), _manifest(7, "b")]
    i = 0
    while True:
        manifests[i % 2].save(url)
        i += 1


def test_sigkill_during_saves_never_leaves_a_silently_wrong_manifest(tmp_path: Path) -> None:
    url = str(tmp_path / "2024")
    good = {_manifest(40, "a").digest(), _manifest(7, "b").digest()}
    _manifest(40, "a").save(url)
    rng = random.Random(13)
    outcomes = {"loaded": 0, "refused": 0}
    ctx = mp.get_context("fork")
    for _ in range(13):
        proc = ctx.Process(target=_save_forever, args=(url,))
        proc.start()
        time.sleep(0.3 + rng.random() * 0.4)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        try:
            digest = SceneManifest.load(url).digest()
        except ManifestError:
            outcomes["refused"] += 1  # half-saved pair: an error, fixed by the next save
            _manifest(40, "a").save(url)
            continue
        assert digest in good
        outcomes["loaded"] += 1
    assert outcomes["loaded"] + outcomes["refused"] == 13
    assert outcomes["loaded"] >= 1

"""Crash safety under SIGKILL (issue 14.2): a tile-year (scene manifest → s2_cube → s2_masked
→ embeddings, 64 px) is written by a child process that kills itself at a deterministic point —
the manifest save, the Nth staged shard, a shard moved into place, the lineage commit, the
intent — chosen by an audit hook (``partition_kit.install_kill_hook``), so no timing is
involved. After every kill:

- the other tile's regions are byte-identical;
- the manifest is the old one, the new one, absent (first write) or refused with a clear
  ``ManifestError`` — never read as zero scenes;
- no region is corrupt: each is either committed and matching its hashes (the old data kept by
  a failed rewrite, or the new data if the kill came after the commit), or uncommitted — and
  then ``status`` and the completeness check say so;
- a re-run makes every region equal to a clean run's, and leaves no staging or intent behind.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import shutil
import signal
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance
from rich.console import Console

from tessera_assets.cli.status import (
    COMMITTED,
    INTERRUPTED,
    UNCOMMITTED,
    collect_status,
    render_status,
    store_states,
)
from tessera_assets.defs.checks import audit_completeness
from tessera_assets.ops.aoi_registry import AoiRecord
from tessera_assets.products.registry import open_store
from tessera_assets.sources.manifest import ManifestError
from tessera_assets.store import ConcurrentWriteError, LineageRecord
from tessera_assets_tests.partition_kit import (
    PRODUCTS,
    TILES,
    load_manifest,
    run_partition,
    settings,
)

pytestmark = pytest.mark.slow
YEAR, SEED, OLD_SEED = 2023, 7, 3
T0 = TILES[0].id
KILLS = [  # (kill spec, a committed region exists before the write)
    ("open:scene_manifest/{t}/2023.parquet:1", False),
    ("open:scene_manifest/{t}/2023.parquet:1", True),
    ("os.rename:scene_manifest/{t}/2023.json:1", True),
    ("os.rename:s2_cube.zarr/_lineage/utm30/{t}/2023.intent.json:1", False),
    ("open:s2_cube.zarr/_staging:1", False),
    ("open:s2_cube.zarr/_staging:3", False),
    ("os.rename:s2_cube.zarr/utm30/bands/c:2", False),
    ("os.rename:s2_cube.zarr/_lineage/utm30/{t}/2023.json:1", False),
    ("os.remove:s2_cube.zarr/_lineage/utm30/{t}/2023.intent.json:1", False),
    ("open:s2_masked.zarr/_staging:4", False),
    ("os.rename:s2_masked.zarr/utm30/valid/c:1", False),
    ("open:embeddings.zarr/_staging:2", False),
    ("os.rename:embeddings.zarr/utm30/:3", False),
    ("os.rename:embeddings.zarr/_lineage/utm30/{t}/2023.json:1", False),
    ("open:s2_cube.zarr/_staging:2", True),
    ("open:embeddings.zarr/_staging:3", True),
    ("os.rename:embeddings.zarr/utm30/:2", True),
]


FORK = multiprocessing.get_context("fork")  # a child process without a fresh interpreter


def _child(root: Path, kill: str | None = None, seed: int = SEED) -> BaseProcess:
    kill = kill.format(t=T0) if kill else None
    proc = FORK.Process(target=run_partition, args=(str(root), 0, YEAR, seed, kill))
    proc.start()
    return proc


def _race(root: str, seed: int, go: Any) -> None:
    go.wait()
    try:
        run_partition(root, 0, YEAR, seed)
    except ConcurrentWriteError:
        os._exit(3)


def _killed(root: Path, kill: str) -> int | None:
    proc = _child(root, kill)
    proc.join(timeout=120)
    return proc.exitcode


def _files(root: Path, tile_col: int | None = None) -> dict[str, bytes]:
    """Every shard file of the stores (one tile's if ``tile_col``), bytes by path."""
    out = {}
    for product in PRODUCTS:
        for path in (root / f"{product}.zarr").rglob("*"):
            rel = path.relative_to(root).as_posix()
            if not path.is_file() or "/c/" not in rel or "_staging" in rel:
                continue
            if tile_col is None or rel.endswith(f"/{tile_col}"):
                out[rel] = path.read_bytes()
    return out


def _record(root: Path, product: str) -> LineageRecord | None:
    return open_store(product, settings(str(root))).read_lineage(TILES[0], YEAR)


def _digests(record: LineageRecord) -> dict[str, str]:
    return {k: v for region in record.variables.values() for k, v in region.digests.items()}


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Clean runs: ``clean`` (tile 0 at SEED), ``fresh`` (only tile 1), ``old`` (tile 1 and
    tile 0 at OLD_SEED, to be rewritten)."""
    out = {name: tmp_path_factory.mktemp(name) for name in ("clean", "fresh", "old")}
    run_partition(str(out["clean"]), 0, YEAR, SEED)
    for name in ("fresh", "old"):
        run_partition(str(out[name]), 1, YEAR, 1)
    run_partition(str(out["old"]), 0, YEAR, OLD_SEED)
    return out


def _manifest_outcome(root: Path, digests: set[str]) -> str:
    """``absent`` / ``refused`` (a clear ManifestError) / ``ok`` (a whole old or new manifest)
    / ``corrupt`` (anything else, e.g. loaded as zero scenes)."""
    try:
        manifest = load_manifest(str(root), TILES[0], YEAR)
    except FileNotFoundError:
        return "absent"
    except ManifestError:
        return "refused"
    return "ok" if manifest.items and manifest.digest() in digests else "corrupt"


def test_sigkill_at_every_point_never_corrupts_or_loses_a_region(
    bases: dict[str, Path], tmp_path: Path
) -> None:
    clean = {p: _digests(_record(bases["clean"], p)) for p in PRODUCTS}
    old = {p: _digests(_record(bases["old"], p)) for p in PRODUCTS}
    manifests = {load_manifest(str(bases[b]), TILES[0], YEAR).digest() for b in ("clean", "old")}
    tally = {"kills": 0, "corrupt": 0, "lost": 0, "kept_old": 0, "uncommitted": 0, "repaired": 0}
    for i, (kill, rewrite) in enumerate(KILLS):
        root = tmp_path / f"k{i}"
        shutil.copytree(bases["old" if rewrite else "fresh"], root)
        other = _files(root, TILES[1].col)
        assert _killed(root, kill) == -signal.SIGKILL, f"{kill}: the kill point was not reached"
        tally["kills"] += 1

        assert _files(root, TILES[1].col) == other, f"{kill}: the other tile changed"
        manifest = _manifest_outcome(root, manifests)
        tally["corrupt"] += manifest == "corrupt"
        tally["lost"] += rewrite and manifest == "absent"
        tally[f"manifest_{manifest}"] = tally.get(f"manifest_{manifest}", 0) + 1
        states = store_states(settings(str(root)), PRODUCTS)
        for product in PRODUCTS:
            store = open_store(product, settings(str(root)))
            check = audit_completeness(store, TILES[0], YEAR)
            record = store.read_lineage(TILES[0], YEAR)
            state = states[product].get((T0, YEAR))
            if record is None:
                tally["uncommitted"] += 1
                assert not check.passed and "no committed lineage record" in check.description
                if rewrite and state is None:
                    tally["lost"] += 1  # a committed region vanished without a trace
                elif rewrite or state == INTERRUPTED:
                    assert state == INTERRUPTED, f"{kill}: {product} not shown as interrupted"
                continue
            assert state == COMMITTED
            if not check.passed or _digests(record) not in (clean[product], old[product]):
                tally["corrupt"] += 1
            elif rewrite and _digests(record) == old[product]:
                tally["kept_old"] += 1

        run_partition(str(root), 0, YEAR, SEED)  # the re-run
        for product in PRODUCTS:
            store = open_store(product, settings(str(root)))
            assert audit_completeness(store, TILES[0], YEAR).passed
            assert _digests(_record(root, product)) == clean[product]
            assert not store.io.list_keys("_staging") and not store.list_partitions(
                in_progress=True
            )
        assert _files(root, TILES[0].col) == _files(bases["clean"], TILES[0].col)
        assert (
            load_manifest(str(root), TILES[0], YEAR).digest()
            == load_manifest(str(bases["clean"]), TILES[0], YEAR).digest()
        )
        assert _files(root, TILES[1].col) == other
        tally["repaired"] += 1
        shutil.rmtree(root)

    print(f"SIGKILL study: {tally}")
    assert tally["kills"] == len(KILLS) >= 10
    assert tally["corrupt"] == 0 and tally["lost"] == 0
    assert tally["repaired"] == len(KILLS)
    # Kills while a rewrite was staging its shards kept the old, committed region.
    assert tally["kept_old"] >= 2


def test_two_writers_of_one_tile_year_give_one_consistent_region(
    bases: dict[str, Path], tmp_path: Path
) -> None:
    """Two processes write the same tile-year at once (different data): the outcome is one
    committed region matching its hashes and equal to one writer's data, or a refusal."""
    root = tmp_path / "race"
    shutil.copytree(bases["fresh"], root)
    go = FORK.Event()
    procs = [FORK.Process(target=_race, args=(str(root), seed, go)) for seed in (SEED, OLD_SEED)]
    for proc in procs:
        proc.start()
    go.set()  # both are forked and waiting: they start their writes together
    for proc in procs:
        proc.join(timeout=120)
    # 0: wrote and committed; 3: refused with ConcurrentWriteError (see _race).
    codes = [proc.exitcode for proc in procs]
    assert all(rc in (0, 3) for rc in codes), codes
    print(f"two writers: exit codes {codes} (3 = refused)")
    clean = {p: _digests(_record(bases["clean"], p)) for p in PRODUCTS}
    old = {p: _digests(_record(bases["old"], p)) for p in PRODUCTS}
    for product in PRODUCTS:
        store = open_store(product, settings(str(root)))
        record = store.read_lineage(TILES[0], YEAR)
        if record is None:  # both refused or one refused after the other's swap began
            assert 3 in codes
            continue
        assert audit_completeness(store, TILES[0], YEAR).passed
        assert _digests(record) in (clean[product], old[product])


def test_status_shows_a_killed_write_as_uncommitted(bases: dict[str, Path], tmp_path: Path) -> None:
    """``tessera-assets status`` overlays the stores: the instance never heard of the killed
    write, the store's intent without a commit record makes the tile-year uncommitted."""
    root = tmp_path / "status"
    shutil.copytree(bases["old"], root)
    assert _killed(root, "os.rename:embeddings.zarr/utm30/:1") == -signal.SIGKILL
    record = AoiRecord(
        name="crash", geometry={}, years=[YEAR], tile_size=64, tiles=[T0, TILES[1].id]
    )
    statuses = collect_status(DagsterInstance.ephemeral(), [record], settings=settings(str(root)))
    rows = {row.tile: row for row in statuses[0].rows}
    assert rows[T0].states["embeddings"] == UNCOMMITTED
    assert rows[T0].states["s2_cube"] == rows[TILES[1].id].states["embeddings"] == "missing"
    console = Console(record=True, width=200, file=io.StringIO())
    render_status(statuses, console)
    assert "uncommitted (write interrupted): re-run" in console.export_text()

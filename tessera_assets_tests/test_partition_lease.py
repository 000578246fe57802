"""One writer per tile-year (issue 13, item 9), at the domain level and with real processes:
the second writer refuses with a message naming the holder or waits for it; a holder killed
with SIGKILL, an expired lease, or a holder whose run has ended does not block for good."""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest

from tessera_assets.ops.partition_lease import (
    LeaseRecord,
    PartitionBusyError,
    PartitionLease,
    lease_key,
)

TILE, YEAR = "32630_64_995_5683", 2024
CTX = mp.get_context("fork")


def _hold(root: str, owner: str, seconds: float, ready, log: str | None = None) -> None:
    with PartitionLease(root, TILE, YEAR, owner, ttl_s=3.0):
        if log:
            with open(log, "a") as f:
                f.write(f"{owner} start {time.time()}\n")
        ready.set()
        time.sleep(seconds)
        if log:
            with open(log, "a") as f:
                f.write(f"{owner} end {time.time()}\n")


def _race(root: str, owner: str, go, log: str) -> None:
    go.wait()
    try:
        with PartitionLease(root, TILE, YEAR, owner, ttl_s=3.0):
            with open(log, "a") as f:
                f.write(f"{owner} start {time.time()}\n")
            time.sleep(0.5)
            with open(log, "a") as f:
                f.write(f"{owner} end {time.time()}\n")
    except PartitionBusyError:
        with open(log, "a") as f:
            f.write(f"{owner} refused {time.time()}\n")


def test_second_process_refuses_with_the_holder_named(tmp_path: Path) -> None:
    ready = CTX.Event()
    holder = CTX.Process(target=_hold, args=(str(tmp_path), "run-A", 3.0, ready))
    holder.start()
    try:
        assert ready.wait(20)
        with pytest.raises(PartitionBusyError) as err:
            PartitionLease(str(tmp_path), TILE, YEAR, "run-B").acquire()
        message = str(err.value)
        assert "\n" not in message
        assert f"tile {TILE} year {YEAR} is being written by run-A" in message
        assert f"pid {holder.pid}" in message and "wait for that run to finish" in message
        # ... or waits, and gets it once the holder is done.
        t0 = time.monotonic()
        lease = PartitionLease(str(tmp_path), TILE, YEAR, "run-B").acquire(wait_s=20, poll_s=0.2)
        assert time.monotonic() - t0 > 0.5
        lease.release()
    finally:
        holder.join(20)
    assert holder.exitcode == 0
    assert not (tmp_path / lease_key(TILE, YEAR)).exists()


def test_concurrent_writers_never_overlap(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    go = CTX.Event()
    procs = [
        CTX.Process(target=_race, args=(str(tmp_path), f"run-{i}", go, str(log))) for i in range(4)
    ]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(30)
    events = [line.split() for line in log.read_text().splitlines()]
    starts = [e for e in events if e[1] == "start"]
    assert len(starts) >= 1 and sum(e[1] == "refused" for e in events) == 4 - len(starts)
    spans = sorted(
        (float(s[2]), next(float(e[2]) for e in events if e[0] == s[0] and e[1] == "end"))
        for s in starts
    )
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(spans))


def test_sigkilled_holder_does_not_block(tmp_path: Path) -> None:
    ready = CTX.Event()
    holder = CTX.Process(target=_hold, args=(str(tmp_path), "run-A", 60.0, ready))
    holder.start()
    assert ready.wait(20)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    assert (tmp_path / lease_key(TILE, YEAR)).exists()  # left behind by the killed run
    lease = PartitionLease(str(tmp_path), TILE, YEAR, "run-B").acquire()
    rec = json.loads((tmp_path / lease_key(TILE, YEAR)).read_text())
    assert rec["owner"] == "run-B"
    lease.release()


def _foreign_lease(root: Path, expires_in: float) -> None:
    path = root / lease_key(TILE, YEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    rec = LeaseRecord(TILE, YEAR, "run-far", "another-host", 1, "tok", now, now + expires_in)
    path.write_bytes(rec.to_bytes())


def test_expired_or_ended_holder_is_taken_over(tmp_path: Path) -> None:
    _foreign_lease(tmp_path, expires_in=600)
    with pytest.raises(PartitionBusyError, match="run-far"):
        PartitionLease(str(tmp_path), TILE, YEAR, "run-B").acquire()
    ended = PartitionLease(str(tmp_path), TILE, YEAR, "run-B", alive=lambda r: False)
    ended.acquire().release()
    _foreign_lease(tmp_path, expires_in=-1)
    PartitionLease(str(tmp_path), TILE, YEAR, "run-C").acquire().release()


def test_heartbeat_keeps_a_long_holder(tmp_path: Path) -> None:
    lease = PartitionLease(str(tmp_path), TILE, YEAR, "run-A", ttl_s=0.6).acquire()
    try:
        time.sleep(1.5)  # longer than the TTL: only renewal keeps it
        with pytest.raises(PartitionBusyError):
            PartitionLease(str(tmp_path), TILE, YEAR, "run-B", ttl_s=0.6).acquire()
    finally:
        lease.release()

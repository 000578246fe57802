"""One writer per tile-year: a lease object under the store root that a run holds while it
writes a partition's regions.

Two runs of the same tile-year at once would interleave region writes and lineage commits
(each run's checks then see the other's half-written region). On the daemon path Dagster's
run-tag concurrency limit on ``dagster/partition`` queues the second run; this lease covers
every other path (``tessera-assets materialize``, ``execute_in_process``, a coordinator
without limits): the second run refuses with a message naming the holder, or waits.

A lease is ``{root}/_leases/{tile}/{year}.json`` (holder, host, pid, expiry). It is created
only if absent (an exclusive link on local disk, a conditional PUT on S3), renewed by a
heartbeat thread, and released at the end of the run. A holder that died without releasing
(SIGKILL) stops renewing: its lease is taken over once it has expired, at once when the
holder's process is known to be gone (same host, pid not running), or when the ``alive``
callback says so (Dagster: the holder's run is no longer in progress).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec

from tessera_assets.store.objects import is_local

LEASE_PREFIX = "_leases"
DEFAULT_TTL_S = 600.0
"""A lease not renewed for this long is stale (the heartbeat renews every third of it)."""


class PartitionBusyError(RuntimeError):
    """Another run holds the partition's lease; the message names it and says what to do."""


@dataclass(frozen=True)
class LeaseRecord:
    tile_id: str
    year: int
    owner: str
    host: str
    pid: int
    token: str
    acquired_at: float
    expires_at: float

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LeaseRecord | None:
        """The record, or None for an unreadable object (a torn write counts as no lease)."""
        try:
            return cls(**json.loads(data))
        except (ValueError, TypeError):
            return None

    def describe(self) -> str:
        return (
            f"{self.owner} (host {self.host}, pid {self.pid}) since {_iso(self.acquired_at)}, "
            f"lease expires {_iso(self.expires_at)} unless renewed"
        )


Alive = Callable[[LeaseRecord], bool | None]
"""Whether a lease's holder is still working: False = known dead, None = cannot tell."""


def lease_key(tile_id: str, year: int) -> str:
    return f"{LEASE_PREFIX}/{tile_id}/{int(year)}.json"


class PartitionLease:
    """The lease of one tile-year under ``root``, taken for ``owner`` (a run id)."""

    def __init__(
        self,
        root: str,
        tile_id: str,
        year: int,
        owner: str,
        *,
        storage_options: dict[str, Any] | None = None,
        ttl_s: float = DEFAULT_TTL_S,
        alive: Alive | None = None,
    ) -> None:
        self.tile_id, self.year, self.owner = tile_id, int(year), owner
        self.ttl_s = ttl_s
        self.alive = alive
        self.token = uuid.uuid4().hex
        self._io = _LeaseIO(root, lease_key(tile_id, year), storage_options)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self._io.url

    # -- taking and giving back -------------------------------------------------------------
    def acquire(self, wait_s: float = 0.0, poll_s: float = 2.0) -> PartitionLease:
        """Take the lease (waiting up to ``wait_s`` for the holder to finish) and start the
        heartbeat; raises :class:`PartitionBusyError` if another run still holds it."""
        deadline = time.monotonic() + wait_s
        while True:
            held = self._try_acquire()
            if held is None:
                self._start_heartbeat()
                return self
            if time.monotonic() >= deadline:
                raise PartitionBusyError(
                    f"tile {self.tile_id} year {self.year} is being written by {held.describe()}; "
                    "a second writer would corrupt it: wait for that run to finish (or cancel "
                    f"it), then run again; if it is dead, delete {self.url}"
                )
            time.sleep(poll_s)

    def release(self) -> None:
        """Stop the heartbeat and remove the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        current = self._io.read()
        if current is not None and current.token == self.token:
            self._io.delete()

    def __enter__(self) -> PartitionLease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- internals ------------------------------------------------------------------------
    def _record(self) -> LeaseRecord:
        now = time.time()
        return LeaseRecord(
            self.tile_id,
            self.year,
            self.owner,
            socket.gethostname(),
            os.getpid(),
            self.token,
            now,
            now + self.ttl_s,
        )

    def _try_acquire(self) -> LeaseRecord | None:
        """None once the lease is ours, else the live holder's record."""
        if self._io.create(self._record()):
            return None
        current = self._io.read()
        if current is None:  # released since: take it if nobody beats us
            if self._io.create(self._record()):
                return None
            current = self._io.read()
            if current is None:
                raise PartitionBusyError(
                    f"the lease of tile {self.tile_id} year {self.year} at {self.url} is "
                    "unreadable: delete it if no run is writing that partition"
                )
        if current.owner == self.owner:  # the same run (another step process): re-entrant
            self._io.replace(self._record())
            return None
        if not self._stale(current):
            return current
        if self._io.take_over(current, self._record()):
            return None
        return self._io.read() or current

    def _stale(self, rec: LeaseRecord) -> bool:
        if rec.expires_at < time.time():
            return True
        if rec.host == socket.gethostname() and not pid_running(rec.pid):
            return True
        return self.alive is not None and self.alive(rec) is False

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._beat, name=f"lease-{self.tile_id}", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            current = self._io.read()
            if current is None or current.token != self.token:
                return  # lost (taken over after a stall): nothing left to renew
            self._io.replace(self._record())


class _LeaseIO:
    """Create-if-absent, read, replace and delete of one small object, local or remote."""

    def __init__(self, root: str, key: str, storage_options: dict[str, Any] | None) -> None:
        if is_local(root):
            self.local: Path | None = Path(os.path.abspath(root.removeprefix("file://"))) / key
            self.url = str(self.local)
            self.fs = None
        else:
            self.local = None
            self.url = f"{root.rstrip('/')}/{key}"
            self.fs, self.path = fsspec.core.url_to_fs(self.url, **(storage_options or {}))

    def read(self) -> LeaseRecord | None:
        try:
            if self.local is not None:
                data = self.local.read_bytes()
            else:
                self.fs.invalidate_cache(self.path)
                data = self.fs.cat_file(self.path)
        except FileNotFoundError:
            return None
        return LeaseRecord.from_bytes(data)

    def create(self, rec: LeaseRecord) -> bool:
        """Write ``rec`` only if no lease exists; whether it was written."""
        if self.local is not None:
            self.local.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._tmp()
            tmp.write_bytes(rec.to_bytes())
            try:
                os.link(tmp, self.local)  # atomic and exclusive: fails if the lease exists
                return True
            except FileExistsError:
                return False
            finally:
                tmp.unlink(missing_ok=True)
        try:  # S3 (s3fs): a conditional PUT (If-None-Match: *)
            self.fs.pipe_file(self.path, rec.to_bytes(), mode="create")
            return True
        except (FileExistsError, OSError) as err:
            if isinstance(err, FileExistsError) or "PreconditionFailed" in str(err):
                return False
            raise
        except TypeError:  # a filesystem without conditional writes: check, then write
            if self.fs.exists(self.path):
                return False
            self.fs.pipe_file(self.path, rec.to_bytes())
            return True

    def replace(self, rec: LeaseRecord) -> None:
        if self.local is not None:
            tmp = self._tmp()
            tmp.write_bytes(rec.to_bytes())
            os.replace(tmp, self.local)
        else:
            self.fs.pipe_file(self.path, rec.to_bytes())

    def take_over(self, stale: LeaseRecord, rec: LeaseRecord) -> bool:
        """Replace the ``stale`` lease with ``rec``, unless someone else got there first."""
        if self.local is not None:
            moved = self.local.with_name(f".{self.local.name}.{uuid.uuid4().hex}.stale")
            try:
                os.rename(self.local, moved)  # only one contender moves any given file
            except FileNotFoundError:
                return self.create(rec)
            got = LeaseRecord.from_bytes(moved.read_bytes())
            if got is not None and got.token != stale.token:  # moved a fresh lease: put back
                with contextlib.suppress(FileExistsError):
                    os.link(moved, self.local)
                moved.unlink(missing_ok=True)
                return False
            moved.unlink(missing_ok=True)
            return self.create(rec)
        # Object stores: delete and re-create conditionally; a read-back settles a race.
        self.delete()
        return self.create(rec) and (self.read() or stale).token == rec.token

    def delete(self) -> None:
        if self.local is not None:
            self.local.unlink(missing_ok=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path)

    def _tmp(self) -> Path:
        assert self.local is not None
        return self.local.with_name(f".{self.local.name}.{uuid.uuid4().hex}.partial")


def pid_running(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")

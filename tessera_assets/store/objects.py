"""Plain object I/O under a store root: a local directory or any fsspec URL.

Zarr reads and writes the arrays through its own store; this module does the few things around
them — small JSON objects (metadata documents, lineage), existence checks and deletes of shard
objects — with the same addressing (keys relative to the store root), so both see one store.
Local writes are atomic (temp file + rename), and object stores are atomic per PUT, so a
concurrent reader never sees half a document.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import fsspec
from zarr.abc.store import Store
from zarr.storage import FsspecStore, LocalStore

_REMOTE_WORKERS = 16
_DIGEST_BLOCK = 8 << 20


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


class ObjectIO:
    """Key-addressed bytes under ``url`` (local path or fsspec URL)."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.storage_options = dict(storage_options or {})
        if is_local(url):
            path = url.removeprefix("file://")
            self.url = os.path.abspath(path)
            self.local: Path | None = Path(self.url)
            self.fs = None
            self.root = self.url
        else:
            self.url = url.rstrip("/")
            self.local = None
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)
            self.root = self.root.rstrip("/")

    # -- zarr ---------------------------------------------------------------------------------
    def zarr_store(self, read_only: bool = False) -> Store:
        if self.local is not None:
            return LocalStore(self.local, read_only=read_only)
        return FsspecStore.from_url(
            self.url, storage_options=self.storage_options or None, read_only=read_only
        )

    # -- single objects -------------------------------------------------------------------------
    def path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def get(self, key: str) -> bytes | None:
        try:
            if self.local is not None:
                return (self.local / key).read_bytes()
            return self.fs.cat_file(self.path(key))
        except FileNotFoundError:
            return None

    def get_json(self, key: str) -> dict[str, Any] | None:
        data = self.get(key)
        return None if data is None else json.loads(data)

    def put(self, key: str, data: bytes) -> None:
        if self.local is not None:
            target = self.local / key
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        else:
            self.fs.pipe_file(self.path(key), data)

    def put_json(self, key: str, doc: Any) -> None:
        self.put(key, json.dumps(doc, indent=2, sort_keys=True).encode())

    def digest(self, key: str, algorithm: str = "sha256") -> tuple[str | None, int]:
        """``(algorithm:hex, size)`` of an object, streamed; ``(None, 0)`` if it does not exist."""
        try:
            if self.local is not None:
                with open(self.local / key, "rb") as f:
                    h = hashlib.file_digest(f, algorithm)
                    return f"{algorithm}:{h.hexdigest()}", f.tell()
            with self.fs.open(self.path(key), "rb", block_size=_DIGEST_BLOCK) as f:
                h = hashlib.new(algorithm)
                size = 0
                while block := f.read(_DIGEST_BLOCK):
                    h.update(block)
                    size += len(block)
                return f"{algorithm}:{h.hexdigest()}", size
        except FileNotFoundError:
            return None, 0

    def move(self, src: str, dst: str) -> None:
        """Rename one object: atomic on local disk; a server-side copy then delete on S3, where
        the destination appears whole (the copy is one atomic PUT of the object)."""
        if self.local is not None:
            target = self.local / dst
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.local / src, target)
        else:
            self.fs.mv(self.path(src), self.path(dst))

    def move_many(self, moves: dict[str, str]) -> None:
        """Rename objects (src → dst); see :meth:`move`."""
        self.map_threads(lambda kv: self.move(*kv), list(moves.items()))
        if self.fs is not None:
            self.fs.invalidate_cache()

    def exists(self, key: str) -> bool:
        if self.local is not None:
            return (self.local / key).is_file()
        self.fs.invalidate_cache(self.path(key))
        return self.fs.isfile(self.path(key))

    # -- many objects -------------------------------------------------------------------------
    def put_many(self, items: dict[str, bytes]) -> None:
        self.map_threads(lambda kv: self.put(*kv), list(items.items()))

    def exists_many(self, keys: Iterable[str]) -> dict[str, bool]:
        keys = list(keys)
        if self.fs is not None:
            self.fs.invalidate_cache()
        return dict(zip(keys, self.map_threads(self._exists_nocache, keys), strict=True))

    def size_many(self, keys: Iterable[str]) -> dict[str, int]:
        """Stored size of each object in bytes (0 for one that does not exist)."""
        keys = list(keys)
        return dict(zip(keys, self.map_threads(self._size, keys), strict=True))

    def delete_many(self, keys: Iterable[str]) -> None:
        """Delete objects; keys that do not exist are ignored."""
        keys = list(keys)
        if not keys:
            return
        if self.local is not None:
            for key in keys:
                (self.local / key).unlink(missing_ok=True)
            return
        if "s3" in _protocols(self.fs):
            # One DeleteObjects request per 1000 keys; absent keys are not an error on S3.
            self.fs.rm([self.path(k) for k in keys])
        else:
            self.map_threads(self._delete_one, keys)
        self.fs.invalidate_cache()

    def delete_tree(self, prefix: str) -> None:
        """Delete everything under ``prefix``, including a crashed local writer's temp files."""
        if self.local is not None:
            shutil.rmtree(self.local / prefix, ignore_errors=True)
        else:
            self.delete_many(self.list_keys(prefix))

    def list_keys(self, prefix: str) -> list[str]:
        """All object keys under ``prefix`` (recursive), relative to the root."""
        if self.local is not None:
            base = self.local / prefix
            if not base.exists():
                return []
            return sorted(
                p.relative_to(self.local).as_posix()
                for p in base.rglob("*")
                if p.is_file() and not p.name.endswith(".partial")
            )
        self.fs.invalidate_cache()
        found = self.fs.find(self.path(prefix))
        return sorted(p[len(self.root) + 1 :] for p in found)

    # -- helpers ------------------------------------------------------------------------------
    def _exists_nocache(self, key: str) -> bool:
        if self.local is not None:
            return (self.local / key).is_file()
        return self.fs.isfile(self.path(key))

    def _size(self, key: str) -> int:
        try:
            if self.local is not None:
                return (self.local / key).stat().st_size
            return int(self.fs.size(self.path(key)))
        except FileNotFoundError:
            return 0

    def _delete_one(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.path(key))

    def map_threads(self, fn, items: list) -> list:
        if self.local is not None or len(items) <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=_REMOTE_WORKERS) as pool:
            return list(pool.map(fn, items))


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)

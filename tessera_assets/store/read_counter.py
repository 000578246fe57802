"""Count the bytes a reader fetches from a store, so read amplification is measured, not guessed.

Inference reads the masked cubes strip by strip through zarr's sharding codec (an index lookup
and one byte range per inner chunk). Wrapping the zarr store counts exactly the bytes those reads
return, whatever the backend (local files, S3, GCS), which lets every ``embeddings``
materialisation report the bytes it read against the region's stored size.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import WrapperStore


class ByteCounter:
    """A thread-safe running total of bytes and requests (zarr reads from several threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes = 0
        self.requests = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.bytes += n
            self.requests += 1


class CountingStore(WrapperStore[Store]):
    """A zarr store that adds the size of every buffer it returns to a :class:`ByteCounter`."""

    def __init__(self, store: Store, counter: ByteCounter | None = None) -> None:
        super().__init__(store)
        self.counter = counter if counter is not None else ByteCounter()

    def _with_store(self, store: Store) -> CountingStore:
        return type(self)(store, self.counter)

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        buf = await self._store.get(key, prototype, byte_range)
        if buf is not None:
            self.counter.add(len(buf))
        return buf

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        bufs = await self._store.get_partial_values(prototype, key_ranges)
        for buf in bufs:
            if buf is not None:
                self.counter.add(len(buf))
        return bufs

    def __repr__(self) -> str:
        return f"CountingStore({self._store!r}, bytes={self.counter.bytes})"

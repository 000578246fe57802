"""Staged partition writes: new shards go to a private prefix and replace the old ones on commit.

A rewrite that fails half-way (a truncated COG, a killed worker) must leave the previously
committed region committed and intact (issue 13.4). Zarr computes shard keys from the array
position, so the store is wrapped: every shard key of the partition being written is redirected
to ``_staging/{zone}/{tile}/{year}/{token}/{key}``, and the bytes zarr hands over are hashed on
the way (the lineage record's content hashes, :mod:`.integrity`). Only after every shard is
staged does :class:`~tessera_assets.store.zone_store.ZoneStore` un-commit the region and move
the staged objects onto the real keys — a rename locally, a server-side copy on S3.
"""

from __future__ import annotations

from collections.abc import Iterable

from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import WrapperStore

from tessera_assets.store.integrity import shard_digest

STAGING_PREFIX = "_staging"


def staging_prefix(zone_group: str, tile_id: str, year: int, token: str) -> str:
    return f"{STAGING_PREFIX}/{zone_group}/{tile_id}/{year}/{token}"


class StagingStore(WrapperStore[Store]):
    """Redirects the keys in ``redirect`` (real key → staged key) and records the digest of
    every value set on them, by real key, in :attr:`digests`."""

    def __init__(self, store: Store, redirect: dict[str, str]) -> None:
        super().__init__(store)
        self.redirect = redirect
        self._back = {v: k for k, v in redirect.items()}
        self.digests: dict[str, str] = {}

    def _key(self, key: str) -> str:
        return self.redirect.get(key, key)

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        return await self._store.get(self._key(key), prototype, byte_range)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        mapped = [(self._key(k), r) for k, r in key_ranges]
        return await self._store.get_partial_values(prototype, mapped)

    async def exists(self, key: str) -> bool:
        return await self._store.exists(self._key(key))

    async def set(self, key: str, value: Buffer) -> None:
        if key in self.redirect:
            self.digests[key] = shard_digest(value.as_buffer_like())
        await self._store.set(self._key(key), value)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        if not await self.exists(key):
            await self.set(key, value)

    async def _set_many(self, values: Iterable[tuple[str, Buffer]]) -> None:
        for key, value in values:
            await self.set(key, value)

    async def _get_many(self, requests):  # type: ignore[no-untyped-def, override]
        async for key, value in self._store._get_many(
            (self._key(k), proto, r) for k, proto, r in requests
        ):
            yield self._back.get(key, key), value

    async def delete(self, key: str) -> None:
        if key in self.redirect:
            self.digests.pop(key, None)
        await self._store.delete(self._key(key))

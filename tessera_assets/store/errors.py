"""Why a store operation refused: one hierarchy, so callers can catch every store failure."""

from __future__ import annotations


class StoreError(RuntimeError):
    """A store operation that cannot proceed."""


class StoreLayoutError(StoreError):
    """The store on disk was created with a different layout than the schema asks for."""


class PartitionNotCommittedError(StoreError):
    """The partition has no lineage record: never written, or its last write did not finish."""


class RegionIntegrityError(StoreError):
    """A committed region's shards do not match the content hashes its lineage record lists."""


class ConcurrentWriteError(StoreError):
    """Another write of the same partition started while this one was running; this one stopped
    without committing, so the region is the other writer's (or uncommitted until it commits)."""

"""Why a store operation refused: one hierarchy, so callers can catch every store failure."""

from __future__ import annotations


class StoreError(RuntimeError):
    """A store operation that cannot proceed."""


class StoreLayoutError(StoreError):
    """The store on disk was created with a different layout than the schema asks for."""


class PartitionNotCommittedError(StoreError):
    """The partition has no lineage record: never written, or its last write did not finish."""

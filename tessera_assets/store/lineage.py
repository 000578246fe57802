"""Per-partition lineage records and region status (DESIGN §4).

Each tile × year partition gets one small JSON object beside the arrays,
``{store}/_lineage/utm{NN}/{tile_id}/{year}.json``. It is written *last*, after every shard of
the partition, so it doubles as the partition's commit marker: a crashed write leaves no
record and the partition is visibly incomplete. The record lists a content hash of every shard
(:mod:`.integrity`), so a corrupted or truncated shard is caught by checks and readers. A second
object, ``{year}.intent.json``, is written *first* and lists every slice (e.g. acquisition day)
that may hold data for the partition — the previous run's and the new run's — and the staging
tokens of writes in flight, so a re-run can delete stale slices and staged leftovers even when
the previous run crashed before committing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

LINEAGE_PREFIX = "_lineage"


class Lineage(BaseModel):
    """Provenance the caller supplies for a partition write.

    ``manifest_digest`` identifies the scene manifest consumed (the lineage root),
    ``config_digest`` the run configuration, ``code_version`` the code; ``model_sha256`` is
    the checkpoint checksum for model outputs. Extra keys are kept verbatim.
    """

    model_config = ConfigDict(extra="allow")

    manifest_digest: str
    code_version: str
    config_digest: str
    model_sha256: str | None = None


class VariableRegion(BaseModel):
    """Where one variable of a partition lives: its zone-array window and shard keys."""

    index: dict[str, list[int]]
    """Per dim, ``[start, stop)`` of the window (the year dim: ``[i, i + 1]``)."""
    shards: list[str]
    """Shard object keys relative to the store root."""
    digests: dict[str, str] = Field(default_factory=dict)
    """Shard key → content hash (``sha256:<hex>``) of the bytes written. Empty in records
    written before hashes were recorded: such regions are reported "unverified"."""


class LineageRecord(Lineage):
    """The committed record of one partition (provenance + what was written, when)."""

    product: str
    tile: str
    zone: int
    year: int
    resolution_m: float
    schema_digest: str
    written_at: str
    slices: dict[str, list[int | str]] = Field(default_factory=dict)
    """Coordinate values of the sliced dims that were written, e.g. ``{"doy": [3, 8, 13]}``."""
    variables: dict[str, VariableRegion] = Field(default_factory=dict)


class WriteIntent(BaseModel):
    """Written before a partition's data: every slice that may hold data once it is done."""

    tile: str
    year: int
    started_at: str
    slices: dict[str, list[int | str]] = Field(default_factory=dict)
    writer: str | None = None
    """Token of the latest write to start: an earlier writer that finds another token here
    stops before touching the committed region (:class:`ConcurrentWriteError`)."""
    staging: list[str] = Field(default_factory=list)
    """Staging tokens of writes that started and may have left staged shards behind."""


class RegionStatus(BaseModel):
    """What exists of one partition, for completeness checks.

    ``expected`` lists, per variable, the shard keys the partition should have: from the
    committed record when there is one, otherwise every shard a started write may have
    produced. ``corrupt`` (shard → reason: 0 bytes, hash mismatch) and ``unverified`` (shards
    whose record has no hash) are filled only when the status was asked to verify content.
    ``complete`` means committed, nothing missing and nothing corrupt.
    """

    tile: str
    year: int
    committed: bool
    in_progress: bool
    expected: dict[str, list[str]]
    present: dict[str, list[str]]
    record: LineageRecord | None = None
    verified: bool = False
    corrupt: dict[str, str] = Field(default_factory=dict)
    unverified: list[str] = Field(default_factory=list)

    @property
    def missing(self) -> dict[str, list[str]]:
        return {
            var: [k for k in keys if k not in set(self.present.get(var, []))]
            for var, keys in self.expected.items()
            if set(keys) - set(self.present.get(var, []))
        }

    @property
    def complete(self) -> bool:
        return self.committed and not self.missing and not self.corrupt


def lineage_key(zone_group: str, tile_id: str, year: int) -> str:
    return f"{LINEAGE_PREFIX}/{zone_group}/{tile_id}/{year}.json"


def intent_key(zone_group: str, tile_id: str, year: int) -> str:
    return f"{LINEAGE_PREFIX}/{zone_group}/{tile_id}/{year}.intent.json"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def merge_slices(*parts: dict[str, list[Any]] | None) -> dict[str, list[Any]]:
    """Union of slice lists per dim, sorted."""
    out: dict[str, set[Any]] = {}
    for part in parts:
        for dim, values in (part or {}).items():
            out.setdefault(dim, set()).update(values)
    return {dim: sorted(values) for dim, values in out.items()}

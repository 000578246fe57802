"""AOI requests: GeoJSON files dropped into a folder or bucket, validated and filed.

Each request is validated (shape, name, years, geometry, partition budget, an optional extra
screen), then moved to ``accepted/`` (with a ``.result.json``) or ``rejected/`` (with a
``.error.txt`` saying why), so the requester sees the outcome where they left the file.
Accepted requests are registered in the :class:`~tessera_assets.ops.aoi_registry.AoiRegistry`;
the Dagster sensor only turns the outcomes into partition requests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, Literal

import fsspec
from pydantic import BaseModel

from tessera_assets.aoi import AoiError
from tessera_assets.config import PipelineSettings, parse_years
from tessera_assets.ops.aoi_registry import (
    GEOJSON_SUFFIXES,
    AoiRecord,
    AoiRegistry,
    check_name,
    sanitise_name,
)

MAX_PARTITIONS = 100_000
"""DESIGN §3: keep at most this many tile × year partitions per asset."""
MAX_REQUEST_BYTES = 10 * 2**20


class AoiRequest(BaseModel):
    """A parsed AOI request file: a GeoJSON Feature (or FeatureCollection) whose properties
    carry ``name`` (optional: the file name otherwise), ``years`` (``"2019-2024"``,
    ``"2021,2023"`` or a list) and optionally ``materialize: true``."""

    file: str
    name: str
    years: list[int]
    geometry: dict[str, Any]
    materialize: bool = False


@dataclass
class RequestOutcome:
    file: str
    status: Literal["accepted", "rejected"]
    reason: str = ""
    record: AoiRecord | None = None
    materialize: bool = False
    moved_to: str = ""
    new_tiles: list[str] = field(default_factory=list)


def requests_url(settings: PipelineSettings) -> str:
    """The AOI request folder: the setting, else ``{root}/aoi_requests``."""
    return settings.aoi_requests_url or f"{settings.root.rstrip('/')}/aoi_requests"


def parse_request(file_name: str, text: str, configured_years: list[int]) -> AoiRequest:
    """Validate the shape of a request (not yet its geometry); raises AoiError with the reason."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AoiError(f"not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("type") not in ("Feature", "FeatureCollection"):
        raise AoiError("a request must be a GeoJSON Feature or FeatureCollection whose "
                       "properties give 'years' (and optionally 'name')")
    props = dict(doc.get("properties") or {})
    if doc["type"] == "FeatureCollection":
        feats = doc.get("features") or []
        if not feats:
            raise AoiError("the FeatureCollection has no features")
        if not props and isinstance(feats[0], dict):
            props = dict(feats[0].get("properties") or {})
    name = str(props.get("name") or sanitise_name(PurePosixPath(file_name).stem))
    check_name(name)
    raw_years = props.get("years")
    if raw_years in (None, "", []):
        raise AoiError("properties.years is missing (e.g. \"2019-2024\" or [2021, 2023])")
    try:
        years = (parse_years(raw_years) if isinstance(raw_years, str)
                 else parse_years(",".join(str(int(y)) for y in raw_years)))
    except (TypeError, ValueError) as exc:
        raise AoiError(f"properties.years {raw_years!r} is not a year list: {exc}") from exc
    unknown = sorted(set(years) - set(configured_years))
    if unknown:
        raise AoiError(f"years {unknown} are outside the configured years "
                       f"{configured_years[0]}-{configured_years[-1]}")
    materialize = props.get("materialize", False)
    if not isinstance(materialize, bool):
        raise AoiError(f"properties.materialize must be true or false, got {materialize!r}")
    return AoiRequest(file=file_name, name=name, years=years, geometry=doc,
                      materialize=materialize)


class AoiRequestInbox:
    """A folder or bucket of AOI request files with ``accepted/`` and ``rejected/`` beside.

    Producers should write a file under a temporary name (leading ``.`` or a ``.part`` /
    ``.tmp`` suffix) and rename it when complete; those names are ignored.
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.fs, path = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        self.path = path.rstrip("/")

    def pending(self, limit: int = 50) -> list[str]:
        """Request files waiting at the top level, oldest name first."""
        if not self.fs.exists(self.path):
            return []
        self.fs.invalidate_cache(self.path)
        found = []
        for info in self.fs.ls(self.path, detail=True):
            name = PurePosixPath(info["name"]).name
            if (info.get("type") == "file" and name.endswith(GEOJSON_SUFFIXES)
                    and not name.startswith(".")):
                found.append(name)
        return sorted(found)[:limit]

    def read(self, name: str) -> str:
        size = self.fs.size(f"{self.path}/{name}")
        if size is not None and size > MAX_REQUEST_BYTES:
            raise AoiError(f"the file is {size} bytes; requests are limited to "
                           f"{MAX_REQUEST_BYTES} bytes (simplify the geometry)")
        with self.fs.open(f"{self.path}/{name}", "r") as f:
            return f.read()

    def _destination(self, folder: str, name: str) -> str:
        self.fs.makedirs(f"{self.path}/{folder}", exist_ok=True)
        target = f"{self.path}/{folder}/{name}"
        if self.fs.exists(target):
            stem, suffix = name.rsplit(".", 1)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            target = f"{self.path}/{folder}/{stem}.{stamp}.{suffix}"
        return target

    def accept(self, name: str, record: AoiRecord, new_tiles: list[str]) -> str:
        target = self._destination("accepted", name)
        self.fs.mv(f"{self.path}/{name}", target)
        summary = {"status": "accepted", "aoi": record.name, "years": record.years,
                   "tiles": len(record.tiles), "new_tiles": len(new_tiles),
                   "accepted_at": datetime.now(UTC).isoformat(timespec="seconds")}
        with self.fs.open(target.rsplit(".", 1)[0] + ".result.json", "w") as f:
            f.write(json.dumps(summary, indent=2))
        return target

    def reject(self, name: str, reason: str) -> str:
        target = self._destination("rejected", name)
        self.fs.mv(f"{self.path}/{name}", target)
        text = (f"AOI request {name} was rejected at "
                f"{datetime.now(UTC).isoformat(timespec='seconds')}.\n"
                f"Reason: {reason}\n"
                f"Fix the request and drop it into {self.url}/ again.\n")
        with self.fs.open(target.rsplit(".", 1)[0] + ".error.txt", "w") as f:
            f.write(text)
        return target


Screen = Callable[[AoiRecord, AoiRequest], str | None]
"""An extra test on a request (e.g. the budget): returns a rejection reason or None."""


def process_requests(
    inbox: AoiRequestInbox,
    registry: AoiRegistry,
    settings: PipelineSettings,
    *,
    screen: Screen | None = None,
    limit: int = 50,
) -> list[RequestOutcome]:
    """Validate, register and file every pending request; one outcome per file.

    Reasons for rejection: not GeoJSON, bad name or years, invalid or polar geometry, no tile
    covered, a different AOI already registered under the name, more than
    :data:`MAX_PARTITIONS` tile × year partitions in total, or ``screen``'s verdict.
    """
    outcomes: list[RequestOutcome] = []
    registered = registry.tile_years()
    for name in inbox.pending(limit):
        try:
            request = parse_request(name, inbox.read(name), settings.years)
            record = registry.resolve(request.name, request.geometry, request.years,
                                      settings.tile_size)
            _check_not_conflicting(registry, record)
            new_tiles = [t for t in record.tiles if t not in registered]
            total = (len(registered) + len(new_tiles)) * len(settings.years)
            if total > MAX_PARTITIONS:
                raise AoiError(
                    f"it would bring the tile × year partitions to {total:,} (limit "
                    f"{MAX_PARTITIONS:,}, DESIGN §3); use a larger tile_size or a smaller AOI")
            reason = screen(record, request) if screen else None
            if reason:
                raise AoiError(reason)
        except (AoiError, KeyError) as exc:
            reason = str(exc).strip("'\"")
            outcomes.append(RequestOutcome(name, "rejected", reason,
                                           moved_to=inbox.reject(name, reason)))
            continue
        registry.save(record)
        for tile in record.tiles:
            registered.setdefault(tile, set()).update(record.years)
        outcomes.append(RequestOutcome(
            name, "accepted", record=record, materialize=request.materialize,
            moved_to=inbox.accept(name, record, new_tiles), new_tiles=new_tiles))
    return outcomes


def _check_not_conflicting(registry: AoiRegistry, record: AoiRecord) -> None:
    if not registry.exists(record.name):
        return
    old = registry.get(record.name)
    if old.tiles != record.tiles or old.years != record.years:
        raise AoiError(f"an AOI named {record.name!r} is already registered with other "
                       f"tiles or years ({len(old.tiles)} tiles, {old.years}); choose another "
                       "name, or remove it first with `tessera-assets aoi remove`")


def tiles_missing_from(registered: Mapping[str, Any], partitions: Iterable[str]) -> list[str]:
    """Registered tiles that are not (yet) dynamic partitions: the sensor re-adds them, so a
    tick that crashed between filing a request and adding its partitions heals itself."""
    have = set(partitions)
    return sorted(t for t in registered if t not in have)

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
"""A request file larger than this is rejected unread (simplify the geometry)."""
MAX_NESTING = 32
"""JSON nested deeper than this is not GeoJSON (a MultiPolygon in a FeatureCollection is ~7)."""
MAX_YEARS = 200
"""At most this many years in one request (the configured years bound them anyway)."""


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


def _depth(doc: Any) -> int:
    """Nesting depth of a parsed JSON document (iterative: no recursion limit to hit)."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if d <= MAX_NESTING and isinstance(node, dict | list):
            stack.extend((v, d + 1) for v in (node.values() if isinstance(node, dict) else node))
    return deepest


def _properties(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AoiError(f"{where} must be a JSON object, got {type(value).__name__} "
                       f"{str(value)[:40]!r}")
    return value


def _years(raw: Any, configured: list[int]) -> list[int]:
    """The requested years, checked against the configured ones; a range is bounded before it
    is expanded (``"1-2000000000"`` would build 2·10⁹ ints)."""
    lo, hi = configured[0], configured[-1]
    if isinstance(raw, str):
        for part in raw.replace(" ", "").split(","):
            bounds = [b for b in part.split("-", 1) if b]
            if not all(b.isdigit() for b in bounds):
                raise AoiError(f"properties.years {raw[:40]!r} is not a year list "
                               "(e.g. \"2019-2024\" or \"2021,2023\")")
            if any(len(b) > 4 for b in bounds) or (
                    len(bounds) == 2 and int(bounds[1]) - int(bounds[0]) > MAX_YEARS):
                raise AoiError(f"properties.years {raw[:40]!r} goes outside the configured "
                               f"years {lo}-{hi}")
        text = raw
    elif isinstance(raw, list) and len(raw) <= MAX_YEARS:
        if not all(isinstance(y, int | str) and not isinstance(y, bool) for y in raw):
            raise AoiError(f"properties.years {str(raw)[:40]} must list years")
        text = ",".join(str(y) for y in raw)
    else:
        raise AoiError(f"properties.years must be a string such as \"2019-2024\" or a list of "
                       f"at most {MAX_YEARS} years")
    try:
        years = parse_years(text)
    except (TypeError, ValueError) as exc:
        raise AoiError(f"properties.years {str(raw)[:40]!r} is not a year list: {exc}") from None
    unknown = sorted(set(years) - set(configured))
    if unknown:
        raise AoiError(f"years {unknown[:10]} are outside the configured years {lo}-{hi}")
    return years


def parse_request(file_name: str, text: str, configured_years: list[int]) -> AoiRequest:
    """Validate the shape of a request (not yet its geometry); raises AoiError with the reason."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AoiError(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise AoiError(f"JSON nested deeper than {MAX_NESTING} levels is not GeoJSON") from None
    if _depth(doc) > MAX_NESTING:
        raise AoiError(f"JSON nested deeper than {MAX_NESTING} levels is not GeoJSON")
    if not isinstance(doc, dict) or doc.get("type") not in ("Feature", "FeatureCollection"):
        raise AoiError("a request must be a GeoJSON Feature or FeatureCollection whose "
                       "properties give 'years' (and optionally 'name')")
    props = dict(_properties(doc.get("properties"), "properties"))
    if doc["type"] == "FeatureCollection":
        feats = doc.get("features") or []
        if not isinstance(feats, list) or not feats:
            raise AoiError("the FeatureCollection has no features")
        if not props and isinstance(feats[0], dict):
            props = dict(_properties(feats[0].get("properties"), "features[0].properties"))
    name = str(props.get("name") or sanitise_name(PurePosixPath(file_name).stem))
    check_name(name)
    raw_years = props.get("years")
    if raw_years in (None, "", []):
        raise AoiError("properties.years is missing (e.g. \"2019-2024\" or [2021, 2023])")
    years = _years(raw_years, configured_years)
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
        """The request's text; AoiError if it is too large or not UTF-8 (read no further
        than the limit, whatever the store says the size is)."""
        size = self.fs.size(f"{self.path}/{name}")
        if size is not None and size > MAX_REQUEST_BYTES:
            raise AoiError(f"the file is {size} bytes; requests are limited to "
                           f"{MAX_REQUEST_BYTES} bytes (simplify the geometry)")
        with self.fs.open(f"{self.path}/{name}", "rb") as f:
            data = f.read(MAX_REQUEST_BYTES + 1)
        if len(data) > MAX_REQUEST_BYTES:
            raise AoiError(f"the file is over {MAX_REQUEST_BYTES} bytes; requests are limited "
                           "to that (simplify the geometry)")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AoiError(f"the file is not UTF-8 text (byte {exc.start}: "
                           f"{data[exc.start:exc.start + 4]!r}); save it as UTF-8 GeoJSON") from None

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
    :data:`MAX_PARTITIONS` tile × year partitions in total, or ``screen``'s verdict. Whatever
    is wrong with one file (encoding, size, nesting, types), it is rejected with the reason and
    the others are still processed; a file that cannot be read or moved because of the store
    (an I/O error) is left in place for the next pass.
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
        except OSError:
            continue  # the store, not the request: try again on the next pass
        except Exception as exc:  # one bad file must never stop the others
            reason = (str(exc) if isinstance(exc, AoiError)
                      else str(exc).strip("'\"") if isinstance(exc, KeyError)
                      else f"the request could not be processed ({type(exc).__name__}: "
                           f"{str(exc)[:200]})")
            reason = " ".join(reason.split())  # one line in logs and in the .error.txt
            try:
                moved = inbox.reject(name, reason)
            except OSError:
                continue
            outcomes.append(RequestOutcome(name, "rejected", reason, moved_to=moved))
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

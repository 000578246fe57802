"""What every scene catalog answers (DESIGN §6): the items of some collections that intersect a
lon/lat box within a time window, sorted by (datetime, id) so the scene manifest is
reproducible. Search parameters are checked here once, for all backends."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import Any, Protocol, runtime_checkable

import pystac

BBox = tuple[float, float, float, float]
TimeLike = datetime | date | str


class CatalogError(RuntimeError):
    """A catalog cannot answer: missing files, bad search parameters, unreachable API."""


@runtime_checkable
class Catalog(Protocol):
    """What the pipeline needs from any scene catalog."""

    def search(
        self,
        *,
        collections: Sequence[str | None],
        bbox: BBox,
        start: TimeLike,
        end: TimeLike,
        query: dict[str, Any] | None = None,
        filter: dict[str, Any] | str | None = None,
    ) -> list[pystac.Item]: ...


def check_bbox(bbox: Sequence[float]) -> BBox:
    """Validate a (west, south, east, north) lon/lat box; antimeridian boxes are not accepted."""
    try:
        west, south, east, north = (float(v) for v in bbox)
    except (TypeError, ValueError) as err:
        raise CatalogError(f"bbox must be 4 numbers (west, south, east, north), got {bbox!r}") from err
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90 and -90 <= north <= 90):
        raise CatalogError(f"bbox {bbox!r} is outside lon [-180, 180] / lat [-90, 90]: is it in EPSG:4326?")
    if west > east or south > north:
        raise CatalogError(f"bbox {bbox!r} has min > max (expected west, south, east, north)")
    return west, south, east, north


def to_utc(value: TimeLike, *, end: bool = False) -> datetime:
    """A timezone-aware UTC datetime. Dates cover whole days (``end``: the day's last instant);
    naive datetimes are taken as UTC."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError as err:
            raise CatalogError(f"cannot parse {value!r} as an ISO date or datetime") from err
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, dtime.max if end else dtime.min, UTC)
    raise CatalogError(f"expected a datetime, date or ISO string, got {type(value).__name__}")


def datetime_interval(start: TimeLike, end: TimeLike) -> str:
    """RFC 3339 interval ``start/end`` (inclusive), as STAC searches expect."""
    first, last = to_utc(start), to_utc(end, end=True)
    if first > last:
        raise CatalogError(f"start {first.isoformat()} is after end {last.isoformat()}")
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    return f"{first.strftime(fmt)}/{last.strftime(fmt)}"


def check_collections(collections: Sequence[str | None]) -> list[str]:
    """Distinct collection ids. ``None`` entries stand for a sensor the catalog does not
    serve (a preset without Sentinel-1, say) and are dropped: searching only those finds
    nothing, searching none at all is a mistake."""
    if isinstance(collections, str):
        collections = [collections]
    if not collections:
        raise CatalogError("at least one collection is needed")
    return list(dict.fromkeys(c for c in collections if c is not None))


_QUERY_OPS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def query_to_cql2(query: dict[str, Any]) -> dict[str, Any]:
    """Translate a STAC API ``query`` object (e.g. ``{"eo:cloud_cover": {"lt": 20}}``) into
    CQL2-JSON, for backends that only implement ``filter``."""
    clauses: list[dict[str, Any]] = []
    for prop, conditions in query.items():
        if not isinstance(conditions, dict):
            raise CatalogError(f"query for {prop!r} must map operators to values, got {conditions!r}")
        for op, value in conditions.items():
            if op == "in":
                clauses.append({"op": "in", "args": [{"property": prop}, list(value)]})
            elif op in _QUERY_OPS:
                clauses.append({"op": _QUERY_OPS[op], "args": [{"property": prop}, value]})
            else:
                raise CatalogError(f"unsupported query operator {op!r} (use {sorted(_QUERY_OPS)} or in)")
    if not clauses:
        raise CatalogError("empty query")
    return clauses[0] if len(clauses) == 1 else {"op": "and", "args": clauses}


def combine_filters(
    query: dict[str, Any] | None, filter: dict[str, Any] | str | None
) -> dict[str, Any] | str | None:
    """One CQL2 filter from a ``query`` object and a ``filter`` (both must hold)."""
    if not query:
        return filter
    translated = query_to_cql2(query)
    if filter is None:
        return translated
    if isinstance(filter, str):
        raise CatalogError("combine query with a CQL2-JSON filter, not CQL2 text")
    return {"op": "and", "args": [translated, filter]}


def sort_items(items: Iterable[pystac.Item]) -> list[pystac.Item]:
    """Deterministic order: by datetime (or start_datetime), then id."""

    def key(item: pystac.Item) -> tuple[datetime, str]:
        when = item.datetime or item.common_metadata.start_datetime
        return (to_utc(when) if when else datetime.min.replace(tzinfo=UTC), item.id)

    return sorted(items, key=key)

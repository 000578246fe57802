"""A catalog per sensor behind one :class:`~tessera_assets.catalog.base.Catalog`: each
collection is searched in the catalog of the sensor it serves (Sentinel-2 from Earth Search,
Sentinel-1 OPERA from NASA CMR), so the scene manifest, the planner and the STAC sensor need not
know that there are several."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pystac

from tessera_assets.catalog.base import (
    BBox,
    Catalog,
    CatalogError,
    TimeLike,
    check_collections,
    sort_items,
)


class RoutedCatalog:
    """Searches each collection in the catalog ``routes`` names for it; ``sources`` says
    which catalog that is (recorded per item by the scene manifest)."""

    def __init__(self, routes: Mapping[str, Catalog], sources: Mapping[str, str]) -> None:
        self.routes = dict(routes)
        self.sources = dict(sources)

    def route(self, collection: str) -> Catalog:
        try:
            return self.routes[collection]
        except KeyError:
            raise CatalogError(
                f"no catalog is configured for collection {collection!r}; "
                f"configured: {sorted(self.routes)}"
            ) from None

    def holds(self, collection: str) -> bool:
        """Whether the collection's catalog has it (a catalog that cannot list its
        collections, a STAC API, is always asked)."""
        if collection not in self.routes:
            return False
        known = getattr(self.routes[collection], "collections", None)
        return not isinstance(known, list | tuple | set) or collection in known

    def search(
        self,
        *,
        collections: Sequence[str | None],
        bbox: BBox,
        start: TimeLike,
        end: TimeLike,
        query: dict[str, Any] | None = None,
        filter: dict[str, Any] | str | None = None,
    ) -> list[pystac.Item]:
        by_catalog: dict[int, tuple[Catalog, list[str]]] = {}
        for coll in check_collections(collections):
            catalog = self.route(coll)
            by_catalog.setdefault(id(catalog), (catalog, []))[1].append(coll)
        items: list[pystac.Item] = []
        for catalog, wanted in by_catalog.values():
            items += catalog.search(
                collections=wanted, bbox=bbox, start=start, end=end, query=query, filter=filter
            )
        return sort_items(items)

    def __repr__(self) -> str:
        return f"RoutedCatalog({ {c: repr(cat) for c, cat in self.routes.items()} })"

"""Exporting a catalog search to stac-geoparquet (issue 10.9): the items of every configured
sensor over an AOI and some years, from whichever catalogs the sensors name, written as one
``{collection}.parquet`` per collection into a folder that the geoparquet backend
(:class:`~tessera_assets.catalog.geoparquet.GeoparquetCatalog`) then searches offline.

Files are written with stac-geoparquet's writer: its geometry column carries the GeoParquet
metadata that DuckDB's ``ST_Intersects`` (rustac's search) needs, which a plain pyarrow table
of the same items lacks. Each file appears whole (a temporary name renamed into place).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from tessera_assets.catalog.base import BBox, Catalog, CatalogError, check_bbox
from tessera_assets.catalog.factory import catalog_from_settings

if TYPE_CHECKING:
    from tessera_assets.catalog.settings import CatalogSettings


@dataclass
class ExportResult:
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    """Collection id → the file written."""
    counts: dict[str, int] = field(default_factory=dict)
    """Collection id → items exported (0: no file, the collection had nothing there)."""
    sources: dict[str, str] = field(default_factory=dict)
    """Collection id → the catalog it was searched in."""


def search_window(years: list[int]) -> tuple[datetime, datetime]:
    """The years plus one day each side (a scene's solar day can differ from its UTC date),
    as the scene manifest searches them."""
    return (
        datetime(min(years), 1, 1) - timedelta(days=1),
        datetime(max(years), 12, 31, 23, 59, 59) + timedelta(days=1),
    )


def export_search(
    settings: CatalogSettings,
    bbox: BBox,
    years: list[int],
    folder: str | Path,
    *,
    sensors: list[str] | None = None,
    catalog: Catalog | None = None,
) -> ExportResult:
    """Search each sensor's collection (``sensors``: default all configured) over ``bbox``
    for ``years`` and write the items as stac-geoparquet into ``folder``."""
    import stac_geoparquet.arrow as sga

    if not years:
        raise CatalogError("no years to export")
    box = check_bbox(bbox)
    catalog = catalog or catalog_from_settings(settings)
    collections = settings.collections()
    unknown = sorted(set(sensors or ()) - set(collections))
    if unknown:
        raise CatalogError(
            f"no collection is configured for sensor(s) {unknown}; "
            f"configured: {sorted(collections)}"
        )
    out = ExportResult(Path(folder))
    out.folder.mkdir(parents=True, exist_ok=True)
    start, end = search_window(years)
    sources = settings.sources()
    for sensor, coll in collections.items():
        if sensors and sensor not in sensors:
            continue
        items = catalog.search(collections=[coll], bbox=box, start=start, end=end)
        out.counts[coll], out.sources[coll] = len(items), sources[coll]
        if not items:
            continue
        dicts = [it.to_dict(transform_hrefs=False) for it in items]
        path = out.folder / f"{coll}.parquet"
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
        sga.to_parquet(sga.parse_stac_items_to_arrow(dicts), tmp)
        os.replace(tmp, path)
        out.files[coll] = path
    return out

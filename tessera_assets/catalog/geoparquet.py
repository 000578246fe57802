"""The stac-geoparquet backend: files searched with rustac's embedded DuckDB, fully offline
(the embedded default catalog, and how the demo archive is served)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pystac

from tessera_assets.catalog.base import (
    BBox,
    CatalogError,
    TimeLike,
    check_bbox,
    check_collections,
    combine_filters,
    datetime_interval,
    sort_items,
)
from tessera_assets.catalog.duckdb_extensions import duckdb_extension_directory


def _parquet_files(source: str | Path | Sequence[str | Path]) -> list[Path]:
    sources = [source] if isinstance(source, str | Path) else list(source)
    files: list[Path] = []
    for s in sources:
        path = Path(s).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.parquet") if p.is_file())
            if not found:
                raise CatalogError(f"no stac-geoparquet (*.parquet) files in {path}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise CatalogError(f"stac-geoparquet catalog not found: {path}")
    if not files:
        raise CatalogError("no stac-geoparquet files given")
    return [f.resolve() for f in files]


def _collections_in(path: Path) -> set[str]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=["collection"])
    except Exception as err:  # pyarrow raises several types for bad or foreign files
        raise CatalogError(f"{path} is not a stac-geoparquet file with a collection column: {err}") from err
    return {c for c in table.column("collection").unique().to_pylist() if c}


def geoparquet_collections(source: str | Path | Sequence[str | Path]) -> list[str]:
    """The collections stac-geoparquet files hold (their ``collection`` column), without
    starting DuckDB: what a preflight asks."""
    return sorted(set().union(*(_collections_in(f) for f in _parquet_files(source))))


class GeoparquetCatalog:
    """Search stac-geoparquet files with rustac's DuckDB client, fully offline.

    One DuckDB client stays open per instance (a search then costs milliseconds). The client
    must not be used from two threads at once (concurrent searches deadlock), so searches are
    serialised with a lock.
    """

    def __init__(
        self,
        source: str | Path | Sequence[str | Path],
        *,
        extension_directory: str | Path | None = None,
    ) -> None:
        import rustac

        self.files = _parquet_files(source)
        self._by_file = {f: _collections_in(f) for f in self.files}
        self.extension_directory = duckdb_extension_directory(extension_directory)
        try:
            self._client = rustac.DuckdbClient(
                extension_directory=str(self.extension_directory), install_extensions=False
            )
            self._client.execute("SET autoinstall_known_extensions = false")
        except Exception as err:
            raise CatalogError(
                f"cannot start DuckDB with the extensions in {self.extension_directory} "
                f"(do the duckdb-extension-* packages match rustac's DuckDB version?): {err}"
            ) from err
        self._lock = threading.Lock()

    @property
    def collections(self) -> list[str]:
        return sorted(set().union(*self._by_file.values()))

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
        wanted = check_collections(collections)
        box = check_bbox(bbox)
        interval = datetime_interval(start, end)
        if not wanted:
            return []
        unknown = [c for c in wanted if c not in self.collections]
        if unknown:
            raise CatalogError(
                f"unknown collection(s) {unknown}; the catalog has {self.collections} "
                f"({', '.join(str(f) for f in self.files)})"
            )
        where = combine_filters(query, filter)  # rustac's DuckDB search has no ``query``
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for path, holds in self._by_file.items():
            here = [c for c in wanted if c in holds]
            if not here:
                continue
            try:
                with self._lock:
                    rows = self._client.search(
                        str(path),
                        collections=here,
                        bbox=list(box),
                        datetime=interval,
                        filter=where,
                    )
            except Exception as err:
                raise CatalogError(f"search of {path} failed ({here}, {box}, {interval}): {err}") from err
            for row in rows:
                found.setdefault((row.get("collection", ""), row["id"]), row)
        return sort_items(pystac.Item.from_dict(d, preserve_dict=False) for d in found.values())

    def __repr__(self) -> str:
        return f"GeoparquetCatalog({[str(f) for f in self.files]})"

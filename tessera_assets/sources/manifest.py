"""The scene manifest: the STAC items chosen for one tile-year, and why (DESIGN §1).

It is the lineage root. Every decision the pipeline takes per scene (sensor, solar day,
day-of-year, collection profile, asset keys with scale/offset/nodata and where they came from,
BOA offset, orbit direction, duplicates dropped, scenes skipped) is written into the items'
``tessera:*`` properties, and the manifest's digest is recorded by every product built from
it. Stored as stac-geoparquet plus a small JSON summary (which also states the per-day mosaic
rule and the resampling of each sensor).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pystac
import stac_geoparquet.arrow as sgpa
from fsspec.implementations.local import LocalFileSystem

from tessera_assets.grid import Tile
from tessera_assets.sources.bands import SENSORS, Sensor
from tessera_assets.sources.decisions import acquisition_key, item_datetime, processing_rank
from tessera_assets.sources.load_plan import load_plan
from tessera_assets.sources.plan_record import plan_properties
from tessera_assets.sources.profiles import ProfileError, profile_for


class Catalog(Protocol):
    """The search a manifest needs; every backend of :mod:`tessera_assets.catalog` has it
    (declared here so that sources does not depend on the catalog package above it)."""

    def search(self, *, collections: list[str], bbox: Any, start: Any, end: Any,
               **kwargs: Any) -> list[Any]: ...

MOSAIC_RULES: dict[str, str] = {
    "s2": "per solar day, per pixel: the first granule (by item id) whose SCL is valid "
          "(not 0,1,2,3,8,9) supplies SCL and bands; else the first with data; else 0",
    "s1": "per solar day and orbit direction, per pixel: the first granule (by item id) with "
          "a finite positive VV or VH; else NaN",
    "landsat": "per solar day, per pixel: the first granule (by item id) whose QA_PIXEL has no "
               "fill/cloud/dilated-cloud/cirrus/shadow bit; else the first that is not fill; "
               "else 0",
}
MOSAIC_RULE = "per solar day, per pixel: the first granule (by item id) valid at the pixel wins"
RESAMPLING: dict[str, dict[str, str]] = {
    "s2": {"spectral": "bilinear", "SCL": "nearest"},
    "s1": {"vv": "bilinear", "vh": "bilinear"},
    "landsat": {"spectral": "bilinear", "qa_pixel": "nearest"},
}
CATALOG_PROPERTY = "tessera:catalog"
"""Which catalog each item came from (preset@URL, or the URL): provenance, so not part of the
digest (the same item from a mirror is the same scene)."""
DUPLICATE_RULE = ("one acquisition published several times (reprocessed baselines, several "
                  "ids or collections) is kept once: newest baseline/version, then latest "
                  "processing time, then the smallest id")


@dataclass
class SkippedScene:
    item_id: str
    collection: str
    reason: str


@dataclass
class SceneManifest:
    """Items for one tile-year, annotated with the per-scene decisions."""

    tile_id: str
    year: int
    items: list[pystac.Item]
    skipped: list[SkippedScene] = field(default_factory=list)
    duplicates: list[SkippedScene] = field(default_factory=list)
    catalog: dict[str, Any] = field(default_factory=dict)
    """Where the items came from (preset, URL): provenance, not part of the digest."""

    def sensor_items(self, sensor: Sensor) -> list[pystac.Item]:
        return [it for it in self.items if it.properties["tessera:sensor"] == sensor]

    def days(self, sensor: Sensor) -> dict[int, list[pystac.Item]]:
        """Items of one sensor grouped by day-of-year, granules sorted by id (mosaic order)."""
        out: dict[int, list[pystac.Item]] = defaultdict(list)
        for it in self.sensor_items(sensor):
            out[int(it.properties["tessera:doy"])].append(it)
        return {d: sorted(v, key=lambda i: i.id) for d, v in sorted(out.items())}

    def counts(self) -> dict[str, int]:
        return {s: len(self.sensor_items(s)) for s in SENSORS}

    def digest(self) -> str:
        """sha256 over what determines the pixels: ids, times, hrefs and decisions.

        Decisions that are absent (``None``, as a geoparquet round trip fills in for other
        sensors' columns) do not count, so a saved and reloaded manifest keeps its digest."""
        rows = []
        for it in sorted(self.items, key=lambda i: i.id):
            rows.append({
                "id": it.id,
                "collection": it.collection_id,
                "datetime": item_datetime(it).isoformat(),
                "hrefs": {k: a.href for k, a in sorted(it.assets.items())},
                "decisions": {k: v for k, v in sorted(it.properties.items())
                              if k.startswith("tessera:") and v is not None
                              and k != CATALOG_PROPERTY},
            })
        blob = json.dumps({"tile": self.tile_id, "year": self.year, "items": rows},
                          sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    def summary(self) -> dict[str, Any]:
        profiles = sorted({str(it.properties.get("tessera:profile")) for it in self.items})
        return {
            "tile": self.tile_id,
            "year": self.year,
            "digest": self.digest(),
            "counts": self.counts(),
            "days": {s: len(self.days(s)) for s in SENSORS},
            "profiles": profiles,
            "mosaic_rule": MOSAIC_RULE,
            "mosaic_rules": MOSAIC_RULES,
            "resampling": RESAMPLING,
            "duplicate_rule": DUPLICATE_RULE,
            "catalog": self.catalog,
            "skipped": [vars(s) for s in self.skipped],
            "duplicates": [vars(s) for s in self.duplicates],
        }

    # -- persistence ---------------------------------------------------------------------

    def to_parquet_bytes(self) -> bytes:
        """The items as stac-geoparquet; a manifest without items is still a valid parquet
        file (an empty table), so a 0-byte file can only mean a torn write."""
        dicts = [it.to_dict(transform_hrefs=False) for it in self.items]
        table = sgpa.parse_stac_items_to_arrow(dicts).read_all() if dicts else EMPTY_TABLE
        meta = dict(table.schema.metadata or {})
        meta[b"tessera:manifest"] = json.dumps(self.summary()).encode()
        buf = io.BytesIO()
        pq.write_table(table.replace_schema_metadata(meta), buf)
        return buf.getvalue()

    def save(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        """Write ``{url}.parquet`` (items), then ``{url}.json`` (summary, with the digest),
        each whole or not at all: a temporary name renamed into place on local disk, one PUT
        on an object store. A save killed between the two leaves files whose digests
        disagree, which :meth:`load` refuses."""
        fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        _put_whole(fs, path + ".parquet", self.to_parquet_bytes())
        _put_whole(fs, path + ".json", json.dumps(self.summary(), indent=2).encode())

    @classmethod
    def load(cls, url: str, storage_options: dict[str, Any] | None = None) -> SceneManifest:
        """Read a saved manifest; raises :class:`ManifestError` for one that is unreadable,
        truncated or half-written (never reads it as "no scenes")."""
        fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
        if not fs.exists(path + ".json"):
            raise FileNotFoundError(f"no scene manifest at {url} (materialise scene_manifest first)")
        fix = "re-materialise scene_manifest for this tile-year"
        try:
            summary = json.loads(fs.cat_file(path + ".json"))
            data = fs.cat_file(path + ".parquet")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ManifestError(f"scene manifest {url} is unreadable ({err}); {fix}") from None
        expected = sum((summary.get("counts") or {}).values()) if isinstance(summary, dict) else -1
        if not isinstance(summary, dict) or expected < 0 or not summary.get("digest"):
            raise ManifestError(f"scene manifest {url}.json is not a manifest summary; {fix}")
        items: list[pystac.Item] = []
        if data or expected:  # a 0-byte parquet was the old way to write zero items
            try:
                table = pq.read_table(io.BytesIO(data))
                items = ([_without_absent(pystac.Item.from_dict(d))
                          for d in sgpa.stac_table_to_items(table)] if table.num_rows else [])
            except Exception as err:  # pyarrow, stac-geoparquet: many kinds
                raise ManifestError(f"scene manifest {url}.parquet is unreadable "
                                    f"({len(data)} bytes: {err}); {fix}") from None
        manifest = cls(
            tile_id=summary["tile"],
            year=int(summary["year"]),
            items=items,
            skipped=[SkippedScene(**s) for s in summary.get("skipped", [])],
            duplicates=[SkippedScene(**s) for s in summary.get("duplicates", [])],
            catalog=summary.get("catalog") or {},
        )
        if manifest.digest() != summary["digest"]:
            raise ManifestError(
                f"scene manifest {url}: its items ({len(items)}) do not match its summary "
                f"({expected} scenes, digest {summary['digest'][:12]}), an interrupted save; "
                f"{fix}")
        return manifest


EMPTY_TABLE = pa.table({
    "id": pa.array([], pa.string()), "collection": pa.array([], pa.string()),
    "datetime": pa.array([], pa.timestamp("us", tz="UTC")), "geometry": pa.array([], pa.binary()),
    "assets": pa.array([], pa.string()), "tessera:sensor": pa.array([], pa.string()),
    "tessera:doy": pa.array([], pa.int64()),
})
"""A manifest without scenes: the columns every manifest has, no rows."""


class ManifestError(ValueError):
    """A saved manifest cannot be trusted (unreadable, truncated, half-written)."""


def _put_whole(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write ``data`` so that readers see the old object or the new one, never a part."""
    if isinstance(fs, LocalFileSystem):
        tmp = f"{path}.{uuid.uuid4().hex}.partial"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    else:
        fs.pipe_file(path, data)  # one PUT: object stores publish it whole or not at all


def _without_absent(item: pystac.Item) -> pystac.Item:
    """Drop the ``tessera:*`` properties a geoparquet round trip added as ``None``."""
    for key in [k for k, v in item.properties.items() if k.startswith("tessera:") and v is None]:
        del item.properties[key]
    return item


# --------------------------------------------------------------------------- searching


def search_window(year: int) -> tuple[datetime, datetime]:
    """The search interval of a tile-year: the calendar year plus one day each side, since a
    scene's solar day can differ from its UTC date."""
    return (datetime(year, 1, 1) - timedelta(days=1),
            datetime(year, 12, 31, 23, 59, 59) + timedelta(days=1))


def search_tile(
    catalog: Catalog, tile: Tile, year: int, collections: Mapping[str, str | None]
) -> dict[str, list[pystac.Item]]:
    """Search each configured collection (sensor → collection id; sensors without one are
    skipped) over the tile's footprint for the year; keyed by collection id, as
    :func:`build_manifest` takes them."""
    start, end = search_window(year)
    bbox = tile.bbox_lonlat()
    out: dict[str, list[pystac.Item]] = {}
    for coll in dict.fromkeys(c for c in collections.values() if c):
        out[coll] = catalog.search(collections=[coll], bbox=bbox, start=start, end=end)
    return out


# --------------------------------------------------------------------------- building


def build_manifest(
    tile: Tile,
    year: int,
    search_results: Mapping[str | None, Sequence[pystac.Item]],
    *,
    max_s2_cloud_cover: float = 100.0,
    catalog: Mapping[str, Any] | None = None,
    sources: Mapping[str, str] | None = None,
) -> SceneManifest:
    """Choose and annotate the scenes of one tile-year from per-collection search results.

    Scenes that no profile understands, with missing assets or unusable metadata, outside
    the year (by solar day), or above the S2 cloud limit are recorded as skipped with a
    reason; repeated publications of one acquisition are kept once (see
    :data:`DUPLICATE_RULE`) and the others recorded as duplicates with the reason.
    ``sources`` (collection → catalog) is written into each item as :data:`CATALOG_PROPERTY`.
    """
    kept: list[pystac.Item] = []
    skipped: list[SkippedScene] = []
    for collection, items in search_results.items():
        for item in items:
            reason = annotate(item, collection, year, max_s2_cloud_cover)
            if reason:
                skipped.append(SkippedScene(item.id, item.collection_id or collection or "",
                                            reason))
            else:
                if sources and collection in sources:
                    item.properties[CATALOG_PROPERTY] = sources[collection]
                kept.append(item)
    unique, dups = drop_duplicates(kept)
    unique.sort(key=lambda i: (item_datetime(i), i.id))
    skipped.sort(key=lambda s: (s.collection, s.item_id))
    return SceneManifest(tile.id, year, unique, skipped, dups, dict(catalog or {}))


def annotate(item: pystac.Item, collection: str | None, year: int,
             max_cloud: float = 100.0) -> str | None:
    """Write the ``tessera:*`` decisions into ``item``; return a skip reason or None."""
    if not item.collection_id and collection:
        item.collection_id = collection
    try:
        plan = load_plan(item, profile_for(item))
    except ProfileError as exc:
        return str(exc)
    if plan.day.year != year:
        return f"solar day {plan.day} outside {year}"
    if plan.sensor == "s2":
        cloud = item.properties.get("eo:cloud_cover")
        if cloud is not None and float(cloud) > max_cloud:
            return f"eo:cloud_cover {cloud} > {max_cloud}"
    item.properties.update(plan_properties(plan, item))
    return None


def drop_duplicates(
    items: Iterable[pystac.Item],
) -> tuple[list[pystac.Item], list[SkippedScene]]:
    """Keep one item per acquisition (see :data:`DUPLICATE_RULE`), deterministically."""
    groups: dict[tuple[str, ...], list[pystac.Item]] = defaultdict(list)
    for it in items:
        sensor = it.properties["tessera:sensor"]
        groups[acquisition_key(it, sensor)].append(it)
    kept, dups = [], []
    for key, group in groups.items():
        sensor = group[0].properties["tessera:sensor"]
        ranked = sorted(group, key=lambda i: i.id)  # ties: smallest id (sorts are stable)
        ranked.sort(key=lambda i: processing_rank(i, sensor), reverse=True)
        best = ranked[0]
        kept.append(best)
        for other in ranked[1:]:
            dups.append(SkippedScene(
                other.id, other.collection_id or "",
                f"duplicate of {best.id} (acquisition {'/'.join(key)}; kept "
                f"{_describe(best, sensor)} over {_describe(other, sensor)})",
            ))
    dups.sort(key=lambda s: s.item_id)
    return kept, dups


def _describe(item: pystac.Item, sensor: Sensor) -> str:
    version, stamp = processing_rank(item, sensor)
    return f"{item.id} [version {'.'.join(f'{v:02d}' for v in version)}, processed {stamp or '?'}]"

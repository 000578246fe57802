"""The scene manifest: the STAC items chosen for one tile-year, and why (DESIGN §1).

It is the lineage root. Every decision the pipeline takes per scene (sensor, solar day,
day-of-year, BOA offset, orbit direction, duplicates dropped, scenes skipped) is written into the
items' ``tessera:*`` properties, and the manifest's digest is recorded by every product built
from it. Stored as stac-geoparquet plus a small JSON summary.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import fsspec
import pyarrow.parquet as pq
import pystac
import stac_geoparquet.arrow as sgpa

from tessera_assets.grid import Tile
from tessera_assets.profiles import (
    ProfileError,
    Sensor,
    item_datetime,
    profile_for,
    s1_orbit,
    s2_boa_offset,
    solar_day,
)

MOSAIC_RULE = "per solar day, per pixel: the first granule (by item id) valid at the pixel wins"
RESAMPLING = {"spectral": "bilinear", "scl": "nearest", "qa_pixel": "nearest", "sar": "bilinear"}


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

    def sensor_items(self, sensor: Sensor) -> list[pystac.Item]:
        return [it for it in self.items if it.properties["tessera:sensor"] == sensor]

    def days(self, sensor: Sensor) -> dict[int, list[pystac.Item]]:
        """Items of one sensor grouped by day-of-year, granules sorted by id (mosaic order)."""
        out: dict[int, list[pystac.Item]] = defaultdict(list)
        for it in self.sensor_items(sensor):
            out[int(it.properties["tessera:doy"])].append(it)
        return {d: sorted(v, key=lambda i: i.id) for d, v in sorted(out.items())}

    def counts(self) -> dict[str, int]:
        return {s: len(self.sensor_items(s)) for s in ("s2", "s1", "landsat")}

    def digest(self) -> str:
        """sha256 over what determines the pixels: ids, times, hrefs and decisions."""
        rows = []
        for it in sorted(self.items, key=lambda i: i.id):
            rows.append({
                "id": it.id,
                "collection": it.collection_id,
                "datetime": item_datetime(it).isoformat(),
                "hrefs": {k: a.href for k, a in sorted(it.assets.items())},
                "decisions": {k: v for k, v in sorted(it.properties.items())
                              if k.startswith("tessera:")},
            })
        blob = json.dumps({"tile": self.tile_id, "year": self.year, "items": rows},
                          sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    def summary(self) -> dict[str, Any]:
        return {
            "tile": self.tile_id,
            "year": self.year,
            "digest": self.digest(),
            "counts": self.counts(),
            "days": {s: len(self.days(s)) for s in ("s2", "s1", "landsat")},
            "mosaic_rule": MOSAIC_RULE,
            "resampling": RESAMPLING,
            "skipped": [vars(s) for s in self.skipped],
            "duplicates": [vars(s) for s in self.duplicates],
        }

    # -- persistence ---------------------------------------------------------------------

    def to_parquet_bytes(self) -> bytes:
        dicts = [it.to_dict(transform_hrefs=False) for it in self.items]
        buf = io.BytesIO()
        if dicts:
            table = sgpa.parse_stac_items_to_arrow(dicts).read_all()
            meta = dict(table.schema.metadata or {})
            meta[b"tessera:manifest"] = json.dumps(self.summary()).encode()
            pq.write_table(table.replace_schema_metadata(meta), buf)
        return buf.getvalue()

    def save(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        """Write ``{url}.parquet`` (items) and ``{url}.json`` (summary) through fsspec."""
        fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(path + ".parquet", "wb") as f:
            f.write(self.to_parquet_bytes())
        with fs.open(path + ".json", "w") as f:
            f.write(json.dumps(self.summary(), indent=2))

    @classmethod
    def load(cls, url: str, storage_options: dict[str, Any] | None = None) -> SceneManifest:
        fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
        if not fs.exists(path + ".json"):
            raise FileNotFoundError(f"no scene manifest at {url} (materialise scene_manifest first)")
        with fs.open(path + ".json") as f:
            summary = json.load(f)
        items: list[pystac.Item] = []
        with fs.open(path + ".parquet", "rb") as f:
            data = f.read()
        if data:
            table = pq.read_table(io.BytesIO(data))
            items = [pystac.Item.from_dict(d) for d in sgpa.stac_table_to_items(table)]
        return cls(
            tile_id=summary["tile"],
            year=int(summary["year"]),
            items=items,
            skipped=[SkippedScene(**s) for s in summary.get("skipped", [])],
            duplicates=[SkippedScene(**s) for s in summary.get("duplicates", [])],
        )


def build_manifest(
    tile: Tile,
    year: int,
    search_results: dict[str, Sequence[pystac.Item]],
    *,
    max_s2_cloud_cover: float = 100.0,
) -> SceneManifest:
    """Choose and annotate the scenes of one tile-year from per-collection search results.

    Scenes outside the year (by solar day), with missing assets, or above the S2 cloud limit
    are recorded as skipped with a reason; repeated publications of one acquisition are kept
    once (the latest processing, deterministically) and the others recorded as duplicates.
    """
    kept: list[pystac.Item] = []
    skipped: list[SkippedScene] = []
    for collection, items in search_results.items():
        for item in items:
            reason = _annotate(item, collection, year, max_s2_cloud_cover)
            if reason:
                skipped.append(SkippedScene(item.id, collection, reason))
            else:
                kept.append(item)
    unique, dups = _drop_duplicates(kept)
    unique.sort(key=lambda i: (item_datetime(i), i.id))
    return SceneManifest(tile.id, year, unique, skipped, dups)


def _annotate(item: pystac.Item, collection: str, year: int, max_cloud: float) -> str | None:
    """Write the tessera:* decisions into ``item``; return a skip reason or None."""
    item = item if item.collection_id else _with_collection(item, collection)
    try:
        profile = profile_for(item)
    except ProfileError as exc:
        return str(exc)
    missing = profile.missing_assets(item)
    if missing:
        return f"missing assets {missing}"
    day: date = solar_day(item)
    if day.year != year:
        return f"solar day {day} outside {year}"
    props = item.properties
    props["tessera:sensor"] = profile.sensor
    props["tessera:solar_day"] = day.isoformat()
    props["tessera:doy"] = day.timetuple().tm_yday
    props["tessera:profile"] = profile.name
    if profile.sensor == "s2":
        cloud = props.get("eo:cloud_cover")
        if cloud is not None and float(cloud) > max_cloud:
            return f"eo:cloud_cover {cloud} > {max_cloud}"
        decision = s2_boa_offset(item)
        props["tessera:boa_offset"] = decision.value
        props["tessera:boa_reason"] = decision.reason
    elif profile.sensor == "s1":
        try:
            props["tessera:orbit"] = s1_orbit(item).value
        except ProfileError as exc:
            return str(exc)
    return None


def _with_collection(item: pystac.Item, collection: str) -> pystac.Item:
    item.collection_id = collection
    return item


def _acquisition_key(item: pystac.Item) -> tuple[Any, ...]:
    props = item.properties
    grid = props.get("grid:code") or props.get("s2:mgrs_tile") or props.get("landsat:wrs_path")
    return (
        props["tessera:sensor"],
        props.get("platform", "").lower(),
        item_datetime(item).replace(microsecond=0).isoformat(),
        grid,
        props.get("tessera:orbit"),
    )


def _drop_duplicates(
    items: Iterable[pystac.Item],
) -> tuple[list[pystac.Item], list[SkippedScene]]:
    groups: dict[tuple[Any, ...], list[pystac.Item]] = defaultdict(list)
    for it in items:
        groups[_acquisition_key(it)].append(it)
    kept, dups = [], []
    for group in groups.values():
        # Latest processing wins; ties broken by id so the choice never depends on order.
        group.sort(key=lambda i: (str(i.properties.get("s2:processing_baseline", "")),
                                  str(i.properties.get("updated", "")), i.id), reverse=True)
        kept.append(group[0])
        dups.extend(SkippedScene(d.id, d.collection_id or "", f"duplicate of {group[0].id}")
                    for d in group[1:])
    return kept, dups

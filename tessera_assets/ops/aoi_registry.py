"""Registered areas of interest: the AOI, its years and the tiles it resolved to, one JSON record
per AOI under ``{root}/aois/``. Registering an AOI is what adds tile partitions.

Also here, because it is how an AOI's data goes: :func:`delete_partition_data` removes an
AOI's regions from every store when asked. AOI *requests* (files dropped into a folder) are
:mod:`tessera_assets.ops.aoi_requests`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import fsspec
import shapely
from pydantic import BaseModel, Field
from shapely.geometry import mapping

from tessera_assets.aoi import AoiError, load_aoi, tiles_for_aoi
from tessera_assets.grid import GridError, Tile

if TYPE_CHECKING:
    from tessera_assets.config import PipelineSettings

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
GEOJSON_SUFFIXES = (".geojson", ".json")


class AoiRecord(BaseModel):
    name: str
    geometry: dict[str, Any]
    years: list[int]
    tile_size: int
    tiles: list[str]
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())

    def tile_objects(self) -> list[Tile]:
        return [Tile.parse(t) for t in self.tiles]


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise AoiError(f"AOI name {name!r} must be 1-64 letters, digits, '_', '.', '-' "
                       "starting with a letter or digit")
    return name


def derive_name(spec: Any, years: Iterable[int] = ()) -> str:
    """A default AOI name: the GeoJSON's ``properties.name``, else the file's stem, else
    ``aoi-`` + a short hash of the spec and years (stable, so re-adding names it the same)."""
    if isinstance(spec, str) and spec.strip().endswith(GEOJSON_SUFFIXES) and "{" not in spec:
        text = None
        try:
            with fsspec.open(spec.strip(), "r") as f:
                text = f.read()
        except (FileNotFoundError, OSError):
            pass
        named = _geojson_name(text) if text else None
        if named:
            return sanitise_name(named)
        return sanitise_name(PurePosixPath(spec.strip()).stem)
    if isinstance(spec, str) and spec.strip().startswith("{"):
        named = _geojson_name(spec)
        if named:
            return sanitise_name(named)
    if isinstance(spec, dict):
        named = _geojson_name(json.dumps(spec))
        if named:
            return sanitise_name(named)
    blob = json.dumps([spec if not isinstance(spec, tuple) else list(spec), sorted(years)],
                      sort_keys=True, default=str)
    return f"aoi-{hashlib.sha1(blob.encode()).hexdigest()[:8]}"


def _geojson_name(text: str) -> str | None:
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(doc, dict):
        return None
    props = doc.get("properties") or {}
    if not props and doc.get("type") == "FeatureCollection" and len(doc.get("features") or []) == 1:
        props = doc["features"][0].get("properties") or {}
    name = props.get("name") if isinstance(props, dict) else None
    return str(name) if name else None


def sanitise_name(text: str) -> str:
    """``text`` made a valid AOI name (runs of other characters become ``-``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-._")[:64]
    return name or "aoi"


@dataclass(frozen=True)
class RemovalPlan:
    """What ``aoi remove --delete-data`` does: partitions no other AOI needs go, and the data
    of tile-years no other AOI covers is deleted."""

    name: str
    drop_tiles: list[str]
    """Tiles no other AOI uses: removed from the dynamic partitions."""
    delete_regions: dict[str, list[int]]
    """Tile → years only this AOI covers: their regions are deleted from every store."""


class AoiRegistry:
    """AOI records in an fsspec folder (local or object storage)."""

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None) -> None:
        self.fs, path = fsspec.core.url_to_fs(root, **(storage_options or {}))
        self.path = path.rstrip("/") + "/aois"

    def _file(self, name: str) -> str:
        return f"{self.path}/{name}.json"

    def resolve(self, name: str, spec: Any, years: list[int], tile_size: int,
                crs: str | None = None) -> AoiRecord:
        """The record an AOI would get (validated, tiles resolved), without saving it."""
        check_name(name)
        if not years:
            raise AoiError("an AOI needs at least one year")
        geom = load_aoi(spec, crs=crs)
        try:
            tiles = tiles_for_aoi(geom, tile_size)
        except GridError as exc:
            raise AoiError(str(exc)) from exc
        if not tiles:
            raise AoiError("AOI covers no tile")
        return AoiRecord(name=name, geometry=mapping(geom), years=sorted(set(years)),
                         tile_size=tile_size, tiles=[t.id for t in tiles])

    def save(self, record: AoiRecord) -> AoiRecord:
        self.fs.makedirs(self.path, exist_ok=True)
        with self.fs.open(self._file(record.name), "w") as f:
            f.write(record.model_dump_json(indent=2))
        return record

    def add(self, name: str, spec: Any, years: list[int], tile_size: int,
            crs: str | None = None) -> AoiRecord:
        return self.save(self.resolve(name, spec, years, tile_size, crs=crs))

    def exists(self, name: str) -> bool:
        return self.fs.exists(self._file(name))

    def get(self, name: str) -> AoiRecord:
        if not self.fs.exists(self._file(name)):
            raise KeyError(f"no AOI named {name!r}; registered: {[r.name for r in self.list()]}")
        with self.fs.open(self._file(name)) as f:
            return AoiRecord.model_validate(json.load(f))

    def list(self) -> list[AoiRecord]:
        if not self.fs.exists(self.path):
            return []
        out = []
        for p in sorted(self.fs.glob(f"{self.path}/*.json")):
            with self.fs.open(p) as f:
                out.append(AoiRecord.model_validate(json.load(f)))
        return out

    def remove(self, name: str) -> AoiRecord:
        record = self.get(name)
        self.fs.rm(self._file(name))
        return record

    def geometry(self, name: str) -> shapely.Geometry:
        return shapely.geometry.shape(self.get(name).geometry)

    def tile_years(self, exclude: str | None = None) -> dict[str, set[int]]:
        """Every registered tile with the union of its AOIs' years (``exclude``: leave one
        AOI out)."""
        out: dict[str, set[int]] = {}
        for record in self.list():
            if record.name == exclude:
                continue
            for tile in record.tiles:
                out.setdefault(tile, set()).update(record.years)
        return out

    def removal_plan(self, name: str) -> RemovalPlan:
        record = self.get(name)
        others = self.tile_years(exclude=name)
        drop = [t for t in record.tiles if t not in others]
        regions = {}
        for tile in record.tiles:
            years = sorted(set(record.years) - others.get(tile, set()))
            if years:
                regions[tile] = years
        return RemovalPlan(name=name, drop_tiles=drop, delete_regions=regions)


# ------------------------------------------------------------------------------ data removal


def delete_partition_data(settings: PipelineSettings, tile: Tile, years: Iterable[int]) -> int:
    """Delete one tile's regions for ``years`` from every store (cubes, embeddings, every
    pyramid level), its STAC Items, scene manifests and previews. Returns how many regions had a commit record.

    Each region is un-committed first (ZoneStore.delete_tile), so a reader never sees half a
    deletion as data."""
    from tessera_assets.products.registry import PRODUCTS, manifest_url, open_pyramid, open_store
    from tessera_assets.products.stac_out import unpublish

    s = settings
    # Deleting needs only the layout: stores are opened with whatever model stamp they hold.
    # The pyramid's finer levels have stores of their own (the coarsest is embeddings_coarse).
    stores = [open_store(product, s) for product in PRODUCTS] + open_pyramid(s)[:-1]
    fs, root = fsspec.core.url_to_fs(s.root, **s.storage_options)
    root = root.rstrip("/")
    committed = 0
    for year in sorted(set(years) & set(s.years)):
        unpublish(s, tile, year)  # the STAC index never lists a region being deleted
        for store in stores:
            if store.read_lineage(tile, year) is not None:
                committed += 1
            store.delete_tile(tile, year)
        manifest = manifest_url(root, tile.id, year)
        for path in (f"{manifest}.parquet", f"{manifest}.json",
                     *fs.glob(f"{root}/previews/*/{tile.id}/{year}.png")):
            if fs.exists(path):
                fs.rm(path)
    return committed

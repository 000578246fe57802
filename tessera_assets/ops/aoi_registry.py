"""Registered areas of interest: the AOI, its years and the tiles it resolved to, one JSON record
per AOI under ``{root}/aois/``. Registering an AOI is what adds tile partitions.

Also here, because they are the two other ways AOIs come and go:

- :class:`AoiRequestInbox` — AOI *requests* dropped as GeoJSON files into a folder or bucket.
  Each is validated, then moved to ``accepted/`` (with a ``.result.json``) or ``rejected/``
  (with a ``.error.txt`` saying why), so the requester sees the outcome where they left the
  file. The Dagster sensor only turns the outcomes into partition requests.
- :func:`delete_partition_data` — removing an AOI's regions from every store when asked.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

import fsspec
import shapely
from pydantic import BaseModel, Field
from shapely.geometry import mapping

from tessera_assets.aoi import AoiError, load_aoi, tiles_for_aoi
from tessera_assets.grid import GridError, Tile

if TYPE_CHECKING:
    from tessera_assets.config import PipelineSettings

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_PARTITIONS = 100_000
"""DESIGN §3: keep at most this many tile × year partitions per asset."""
MAX_REQUEST_BYTES = 10 * 2**20
REQUEST_SUFFIXES = (".geojson", ".json")


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
    if isinstance(spec, str) and spec.strip().endswith(REQUEST_SUFFIXES) and "{" not in spec:
        text = None
        try:
            with fsspec.open(spec.strip(), "r") as f:
                text = f.read()
        except (FileNotFoundError, OSError):
            pass
        named = _geojson_name(text) if text else None
        if named:
            return _sanitise(named)
        return _sanitise(PurePosixPath(spec.strip()).stem)
    if isinstance(spec, str) and spec.strip().startswith("{"):
        named = _geojson_name(spec)
        if named:
            return _sanitise(named)
    if isinstance(spec, dict):
        named = _geojson_name(json.dumps(spec))
        if named:
            return _sanitise(named)
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


def _sanitise(text: str) -> str:
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
    """Delete one tile's regions for ``years`` from every store (cubes, embeddings, coarse),
    its scene manifests and previews. Returns how many regions had a commit record.

    Each region is un-committed first (ZoneStore.delete_tile), so a reader never sees half a
    deletion as data."""
    from tessera_assets.products.coarse import coarse_embeddings_schema
    from tessera_assets.products.cubes import CUBE_PRODUCTS, cube_schema
    from tessera_assets.products.embeddings import embeddings_schema
    from tessera_assets.store.zone_store import ZoneStore

    s = settings
    placeholder = {"model_name": "tessera", "build_version": "delete"}
    schemas = {p: cube_schema(p, s.years, s.tile_size) for p in CUBE_PRODUCTS}
    schemas["embeddings"] = embeddings_schema(s.years, s.tile_size, **placeholder)
    schemas["embeddings_coarse"] = coarse_embeddings_schema(
        s.years, s.tile_size, s.coarse_resolution, **placeholder)
    fs, root = fsspec.core.url_to_fs(s.root, **s.storage_options)
    root = root.rstrip("/")
    committed = 0
    for year in sorted(set(years) & set(s.years)):
        for product, schema in schemas.items():
            store = ZoneStore(s.root, product, schema, s.storage_options)
            if store.read_lineage(tile, year) is not None:
                committed += 1
            store.delete_tile(tile, year)
        for path in (f"{root}/scene_manifest/{tile.id}/{year}.parquet",
                     f"{root}/scene_manifest/{tile.id}/{year}.json",
                     *fs.glob(f"{root}/previews/*/{tile.id}/{year}.png")):
            if fs.exists(path):
                fs.rm(path)
    return committed


# ------------------------------------------------------------------------------ AOI requests


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
    from tessera_assets.config import parse_years

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
    name = str(props.get("name") or _sanitise(PurePosixPath(file_name).stem))
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
            if (info.get("type") == "file" and name.endswith(REQUEST_SUFFIXES)
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

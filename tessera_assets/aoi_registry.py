"""Registered areas of interest: the AOI, its years and the tiles it resolved to, one JSON record
per AOI under ``{root}/aois/``. Registering an AOI is what adds tile partitions."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import fsspec
import shapely
from pydantic import BaseModel, Field
from shapely.geometry import mapping

from tessera_assets.aoi import AoiError, load_aoi
from tessera_assets.grid import Tile, tiles_for_geometry

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class AoiRecord(BaseModel):
    name: str
    geometry: dict[str, Any]
    years: list[int]
    tile_size: int
    tiles: list[str]
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())

    def tile_objects(self) -> list[Tile]:
        return [Tile.parse(t) for t in self.tiles]


class AoiRegistry:
    """AOI records in an fsspec folder (local or object storage)."""

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None) -> None:
        self.fs, path = fsspec.core.url_to_fs(root, **(storage_options or {}))
        self.path = path.rstrip("/") + "/aois"

    def _file(self, name: str) -> str:
        return f"{self.path}/{name}.json"

    def add(self, name: str, spec: Any, years: list[int], tile_size: int,
            crs: str | None = None) -> AoiRecord:
        if not _NAME.match(name):
            raise AoiError(f"AOI name {name!r} must be 1-64 letters, digits, '_', '.', '-'")
        geom = load_aoi(spec, crs=crs)
        tiles = tiles_for_geometry(geom, tile_size)
        if not tiles:
            raise AoiError("AOI covers no tile")
        record = AoiRecord(name=name, geometry=mapping(geom), years=sorted(set(years)),
                           tile_size=tile_size, tiles=[t.id for t in tiles])
        self.fs.makedirs(self.path, exist_ok=True)
        with self.fs.open(self._file(name), "w") as f:
            f.write(record.model_dump_json(indent=2))
        return record

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

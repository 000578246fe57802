"""Pipeline settings: one pydantic object that every layer reads, loaded from a JSON file and
``TESSERA_*`` environment variables so the same code runs on a laptop and on Kubernetes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tessera_assets.grid import DEFAULT_TILE_SIZE, PIXEL_SIZE, STORAGE_CHUNK

CONFIG_ENV = "TESSERA_CONFIG"
ENV_PREFIX = "TESSERA_"


class CatalogSettings(BaseModel):
    """Where scenes are searched: a stac-geoparquet folder/file or a STAC API URL."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["geoparquet", "stac-api"] = "geoparquet"
    url: str = "./data/demo/catalog"
    s2_collection: str = "sentinel-2-c1-l2a"
    s1_collection: str = "sentinel-1-rtc"
    landsat_collection: str = "landsat-c2-l2"
    max_s2_cloud_cover: float = Field(100.0, ge=0, le=100)


class InferenceSettings(BaseModel):
    """Model and Ray settings for the embeddings asset."""

    model_config = ConfigDict(extra="forbid")
    model_source: str = "./data/models/demo-v2-nano.pt"
    family: str | None = None
    model_sha256: str | None = None
    norm: str | None = None
    batch_size: int = Field(1024, gt=0)
    ray_address: str = "local"
    num_workers: int = Field(0, ge=0, description="actors; 0 = one per GPU, else one per 2 CPUs")
    gpus_per_worker: float = Field(0.0, ge=0)
    cpus_per_worker: float = Field(1.0, gt=0)
    strip_rows: int = Field(64, gt=0, description="tile rows per inference task")


class PipelineSettings(BaseModel):
    """Everything a run needs; its digest is recorded in every region's lineage."""

    model_config = ConfigDict(extra="forbid")
    root: str = "./data"
    storage_options: dict[str, Any] = Field(default_factory=dict)
    tile_size: int = DEFAULT_TILE_SIZE
    years: list[int] = Field(default_factory=lambda: list(range(2017, 2026)))
    coarse_resolution: float = 160.0
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    s2_min_coverage: float = Field(
        0.0, ge=0, le=1, description="skip S2 days whose valid fraction over the tile is below"
    )

    @field_validator("tile_size")
    @classmethod
    def _tile_multiple_of_chunk(cls, v: int) -> int:
        if v <= 0 or v % STORAGE_CHUNK:
            raise ValueError(f"tile_size must be a positive multiple of {STORAGE_CHUNK}")
        return v

    @field_validator("years")
    @classmethod
    def _years_sorted(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("years must not be empty")
        if any(y < 2015 or y > 2100 for y in v):
            raise ValueError(f"years outside the Sentinel era: {v}")
        return sorted(set(v))

    @model_validator(mode="after")
    def _coarse_divides_tile(self) -> PipelineSettings:
        span = self.tile_size * PIXEL_SIZE
        factor = self.coarse_resolution / PIXEL_SIZE
        if factor != int(factor) or self.tile_size % int(factor):
            valid = [int(PIXEL_SIZE * f) for f in range(2, self.tile_size + 1)
                     if self.tile_size % f == 0][:12]
            raise ValueError(
                f"coarse_resolution {self.coarse_resolution} m must divide the tile span "
                f"{span} m into whole 10 m blocks; valid choices include {valid} m"
            )
        return self

    @property
    def coarse_factor(self) -> int:
        return int(self.coarse_resolution / PIXEL_SIZE)

    def digest(self) -> str:
        """Stable hash of the settings that change results (not where they are stored)."""
        payload = self.model_dump(exclude={"root", "storage_options"})
        payload["inference"].pop("ray_address", None)
        payload["inference"].pop("num_workers", None)
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> PipelineSettings:
        """Read settings from ``path`` (or ``$TESSERA_CONFIG``), then apply ``TESSERA_*``
        variables (``TESSERA_ROOT``, ``TESSERA_TILE_SIZE``, ``TESSERA_YEARS=2019-2024``,
        ``TESSERA_CATALOG_URL``, ``TESSERA_MODEL``, ``TESSERA_RAY_ADDRESS``), then ``overrides``."""
        data: dict[str, Any] = {}
        path = path or os.environ.get(CONFIG_ENV)
        if path:
            p = Path(path)
            if not p.exists():
                raise FileNotFoundError(f"settings file {p} (from {CONFIG_ENV}) does not exist")
            data = json.loads(p.read_text())
        _apply_env(data)
        data.update(overrides)
        return cls.model_validate(data)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.model_dump_json(indent=2))
        return p


def parse_years(text: str) -> list[int]:
    """``"2019-2024"``, ``"2019,2021"`` or ``"2024"`` → sorted list of years."""
    years: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = (int(x) for x in part.split("-", 1))
            if b < a:
                raise ValueError(f"year range {part} runs backwards")
            years.update(range(a, b + 1))
        else:
            years.add(int(part))
    if not years:
        raise ValueError(f"no years in {text!r}")
    return sorted(years)


def _apply_env(data: dict[str, Any]) -> None:
    env = os.environ
    simple = {"ROOT": "root", "TILE_SIZE": "tile_size", "COARSE_RESOLUTION": "coarse_resolution"}
    for key, field in simple.items():
        if ENV_PREFIX + key in env:
            data[field] = env[ENV_PREFIX + key]
    if ENV_PREFIX + "YEARS" in env:
        data["years"] = parse_years(env[ENV_PREFIX + "YEARS"])
    nested = {
        "CATALOG_KIND": ("catalog", "kind"),
        "CATALOG_URL": ("catalog", "url"),
        "MODEL": ("inference", "model_source"),
        "MODEL_SHA256": ("inference", "model_sha256"),
        "RAY_ADDRESS": ("inference", "ray_address"),
        "BATCH_SIZE": ("inference", "batch_size"),
    }
    for key, (section, field) in nested.items():
        if ENV_PREFIX + key in env:
            data.setdefault(section, {})[field] = env[ENV_PREFIX + key]

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
    """Where scenes are searched and how their files are read.

    ``preset`` names a real catalog (:mod:`tessera_assets.catalog.presets`: ``earth-search``,
    ``planetary-computer``, ``cdse``, ``nasa-cmr-opera``, ``demo``); it supplies ``kind``,
    ``url`` and the collection of each sensor, and any of them given explicitly wins. A
    sensor whose collection is ``None`` has no scenes (e.g. Sentinel-1 on Earth Search).
    Without a preset the fields mean what they say (the demo archive by default).
    """

    model_config = ConfigDict(extra="forbid")
    preset: str | None = None
    kind: Literal["geoparquet", "stac-api"] = "geoparquet"
    url: str = "./data/demo/catalog"
    s2_collection: str | None = "sentinel-2-c1-l2a"
    s1_collection: str | None = "sentinel-1-rtc"
    landsat_collection: str | None = "landsat-c2-l2"
    max_s2_cloud_cover: float = Field(100.0, ge=0, le=100)
    on_unreadable: Literal["fail", "skip"] = Field(
        "fail", description="a scene whose asset cannot be read fails the partition, or is "
                            "skipped and recorded (by item id, asset and reason)")
    search_timeout_s: float = Field(30.0, gt=0, description="per HTTP request of a search")
    search_retries: int = Field(4, ge=0, description="retries of a whole search (429/5xx, "
                                                     "timeouts, cut-off bodies)")
    requests_per_second: float | None = Field(
        None, gt=0, description="pace of catalog requests; None = the preset's hint")
    read_retries: int = Field(5, ge=0, description="GDAL_HTTP_MAX_RETRY for COG reads")
    read_retry_delay_s: float = Field(1.0, gt=0, description="GDAL_HTTP_RETRY_DELAY (doubles)")
    read_timeout_s: int = Field(60, gt=0, description="GDAL_HTTP_TIMEOUT per HTTP request")
    day_retries: int = Field(2, ge=0, description="retries of a whole day's load after "
                                                  "transient read errors")
    check_assets: bool = Field(True, description="open every asset's header before a cube is "
                                                 "built, so unreadable scenes are known "
                                                 "before anything is written")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("preset"):
            return data
        from tessera_assets.catalog.presets import PresetError, get_preset

        try:
            preset = get_preset(str(data["preset"]))
        except PresetError as err:
            raise ValueError(str(err)) from None
        out = dict(data)
        out.setdefault("kind", preset.kind)
        out.setdefault("url", preset.url)
        for sensor in ("s2", "s1", "landsat"):
            out.setdefault(f"{sensor}_collection", preset.collections.get(sensor))
        return out

    def collections(self) -> dict[str, str]:
        """Collection id per sensor (``s2``, ``s1``, ``landsat``), sensors without one left out."""
        found = {"s2": self.s2_collection, "s1": self.s1_collection,
                 "landsat": self.landsat_collection}
        return {sensor: coll for sensor, coll in found.items() if coll}


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



class PlannerSettings(BaseModel):
    """Prices and throughput the backfill planner (:mod:`tessera_assets.ops.planner`) turns tiles,
    years and scenes into hours and dollars with, plus the budget a backfill must stay under.

    Defaults and where they come from are in docs/operations.md ("Planning and budget"):
    GPU throughput is the dClimate L40S measurement for v1.1 (12,294 px/s) scaled by model
    cost, the GPU price the same campaign's on-demand L40S hour."""

    model_config = ConfigDict(extra="forbid")
    budget_usd: float | None = Field(
        None, ge=0, description="a backfill whose estimated cost is above this refuses to start")
    gpu_hour_usd: float = Field(1.861, ge=0, description="price of one GPU-hour")
    cpu_hour_usd: float = Field(0.045, ge=0, description="price of one vCPU-hour")
    egress_gb_usd: float = Field(0.02, ge=0, description="price of one GB read from the archive")
    device: Literal["gpu", "cpu"] = Field("gpu", description="where inference is planned to run")
    px_per_s: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {
            "v1.0": {"gpu": 24_000.0, "cpu": 15.0},
            "v1.1": {"gpu": 12_294.0, "cpu": 8.0},
            "v2-nano": {"gpu": 250_000.0, "cpu": 300.0},
            "v2-small": {"gpu": 90_000.0, "cpu": 70.0},
            "v2-medium": {"gpu": 35_000.0, "cpu": 25.0},
            "v2-large": {"gpu": 17_000.0, "cpu": 12.0},
        },
        description="embedded pixels per second per GPU / per CPU core, by model family")
    input_bytes_per_px: dict[str, float] = Field(
        default_factory=lambda: {"s2": 5.6, "s1": 4.0, "landsat": 0.9},
        description="compressed archive bytes read per 10 m tile pixel per scene, by sensor")
    ingest_cpu_s_per_mpx: dict[str, float] = Field(
        default_factory=lambda: {"s2": 1.5, "s1": 0.6, "landsat": 0.4},
        description="CPU seconds per tile megapixel per scene (decode, reproject, mask)")
    embedded_fraction: float = Field(
        1.0, gt=0, le=1, description="share of tile pixels that get embedded (land)")


class SceneWatchSettings(BaseModel):
    """How the STAC sensor looks for new scenes and when a year counts as complete."""

    model_config = ConfigDict(extra="forbid")
    interval_s: int = Field(600, ge=30, description="seconds between sensor ticks")
    lookback_days: float = Field(
        14.0, gt=0, description="window behind the newest acquisition seen that every tick "
                                "re-reads, for scenes a catalog publishes late")
    provisional_grace_days: int = Field(
        30, ge=0, description="a year stays provisional this long after it ends (late scenes)")
    provisional_end_gap_days: int = Field(
        20, ge=0, description="... or while its manifest's last scene is more than this many "
                              "days before the year's end")


class PreviewSettings(BaseModel):
    """PNG previews written beside the stores and shown in the Dagster UI."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    max_px: int = Field(512, ge=16, description="longest side of the PNG written to storage")
    inline_px: int = Field(96, ge=8, description="longest side of the copy inlined in metadata")
    quicklook_days: int = Field(6, ge=1, description="least cloudy S2 days in the quicklook")


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
    # Operations (docs/operations.md): they change no pixel.
    planner: PlannerSettings = Field(default_factory=PlannerSettings)
    aoi_requests_url: str | None = Field(
        None, description="folder or bucket (fsspec URL) the AOI request sensor watches; "
                          "None = {root}/aoi_requests")
    scene_watch: SceneWatchSettings = Field(default_factory=SceneWatchSettings)
    previews: PreviewSettings = Field(default_factory=PreviewSettings)

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
        """Stable hash of the settings that change results: not where they are stored, nor
        operations settings (planner prices, budget, sensors, previews)."""
        payload = self.model_dump(exclude={"root", "storage_options", "planner",
                                           "aoi_requests_url", "scene_watch", "previews"})
        payload["inference"].pop("ray_address", None)
        payload["inference"].pop("num_workers", None)
        for how_not_what in ("search_timeout_s", "search_retries", "requests_per_second",
                             "read_retries", "read_retry_delay_s", "read_timeout_s",
                             "day_retries", "check_assets"):
            payload["catalog"].pop(how_not_what, None)
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
        "CATALOG_PRESET": ("catalog", "preset"),
        "CATALOG_KIND": ("catalog", "kind"),
        "CATALOG_URL": ("catalog", "url"),
        "CATALOG_ON_UNREADABLE": ("catalog", "on_unreadable"),
        "MODEL": ("inference", "model_source"),
        "MODEL_SHA256": ("inference", "model_sha256"),
        "RAY_ADDRESS": ("inference", "ray_address"),
        "BATCH_SIZE": ("inference", "batch_size"),
    }
    for key, (section, field) in nested.items():
        if ENV_PREFIX + key in env:
            data.setdefault(section, {})[field] = env[ENV_PREFIX + key]

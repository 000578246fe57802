"""Pipeline settings: one pydantic object that every layer reads, loaded from a JSON file and
``TESSERA_*`` environment variables so the same code runs on a laptop and on Kubernetes.

:meth:`PipelineSettings.load` layers, lowest first: field defaults, the JSON file named by
``TESSERA_CONFIG``, the short environment names in :data:`ENV_ALIASES` (``TESSERA_MODEL``, ...),
then pydantic-settings' ``TESSERA_<FIELD>`` / ``TESSERA_<SECTION>__<FIELD>`` variables, then the
caller's overrides. Constructing :class:`PipelineSettings` directly reads nothing from the
environment, so tests and the demo are not steered by a developer's shell.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as EnvDecodeError

from tessera_assets.catalog.settings import CatalogSettings
from tessera_assets.grid import DEFAULT_TILE_SIZE, check_tile_size, coarsen_factor

__all__ = ["CatalogSettings", "InferenceSettings", "PipelineSettings", "parse_years"]

CONFIG_ENV = "TESSERA_CONFIG"
SECRETS_FILE_ENV = "TESSERA_SECRETS_FILE"
"""A JSON file of credentials (``{"storage_options": {"key": ..., "secret": ...}}``), read
when settings are loaded and again at run time; never copied into saved settings."""
SECRET_OPTION_NAMES = frozenset({"key", "sas", "sig"})
SECRET_OPTION_PARTS = ("secret", "token", "password", "credential", "access_key",
                       "account_key", "connection_string", "headers", "signature")
ENV_PREFIX = "TESSERA_"
ENV_NESTED_DELIMITER = "__"
ENV_ALIASES: dict[str, tuple[str, str]] = {
    "TESSERA_CATALOG_PRESET": ("catalog", "preset"),
    "TESSERA_CATALOG_KIND": ("catalog", "kind"),
    "TESSERA_CATALOG_URL": ("catalog", "url"),
    "TESSERA_CATALOG_ON_UNREADABLE": ("catalog", "on_unreadable"),
    "TESSERA_MODEL": ("inference", "model_source"),
    "TESSERA_MODEL_SHA256": ("inference", "model_sha256"),
    "TESSERA_RAY_ADDRESS": ("inference", "ray_address"),
    "TESSERA_BATCH_SIZE": ("inference", "batch_size"),
}
"""Short names people already use for nested fields; the ``TESSERA_<SECTION>__<FIELD>``
spelling of the same field wins when both are set."""
MAX_YEAR_SPAN = 200
"""A year range wider than this is a typo, refused before it is expanded."""
RETIRED_SETTINGS = frozenset({"s2_min_coverage"})
"""Settings that never changed a result and were removed; files that still name them (every
saved settings file did) load, and the key is dropped."""


class InferenceSettings(BaseModel):
    """Model and Ray settings for the embeddings asset."""

    model_config = ConfigDict(extra="forbid")
    model_source: str = "./data/models/demo-v2-nano.pt"
    family: str | None = None
    model_sha256: str | None = None
    norm: str | None = None
    batch_size: int = Field(1024, gt=0)
    ray_address: str = Field(
        "auto", description="the long-lived Ray cluster runs attach to: 'auto' = $RAY_ADDRESS or "
        "the local cluster of `tessera-assets ray up`; 'host:port' or 'ray://host:10001'")
    slot_resource: str = Field(
        "inference_slot", description="Ray resource one inference actor occupies: 'GPU' in "
        "production; a custom resource stands in for GPUs on CPU clusters")
    slots_per_worker: float = Field(1.0, gt=0, description="slot units each actor asks for")
    num_workers: int = Field(0, ge=0, description="actors; 0 = one per slot of the cluster")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs (torch threads) per actor")
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
    device: Literal["auto", "gpu", "cpu"] = Field(
        "auto", description="where inference is priced: 'auto' = the device the inference "
        "service runs on (GPU when inference.slot_resource is 'GPU', else CPU cores)")
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


class CoverageSettings(BaseModel):
    """Thresholds of the blocking ``coverage`` check of each cube (issue 10.5): a partition
    whose scenes were skipped or that observed almost nothing must not look like success."""

    model_config = ConfigDict(extra="forbid")
    max_skipped_fraction: float = Field(
        0.2, ge=0, le=1, description="most of a sensor's scenes that may be skipped as "
                                     "unreadable (on_unreadable='skip')")
    min_observed_fraction: float = Field(
        0.01, ge=0, le=1, description="least fraction of tile pixels with at least one "
                                      "observation, for a sensor that has scenes")
    allow_emptied_days: bool = Field(
        False, description="whether a day whose every granule was skipped may pass")


class PipelineSettings(BaseSettings):
    """Everything a run needs; its digest is recorded in every region's lineage."""

    model_config = SettingsConfigDict(
        extra="forbid", env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED_DELIMITER,
        env_parse_none_str="null")
    root: str = "./data"
    storage_options: dict[str, Any] = Field(default_factory=dict)
    tile_size: int = DEFAULT_TILE_SIZE
    years: Annotated[list[int], NoDecode] = Field(default_factory=lambda: list(range(2017, 2026)))
    coarse_resolution: float = 160.0
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    # Operations (docs/operations.md): they change no pixel.
    planner: PlannerSettings = Field(default_factory=PlannerSettings)
    aoi_requests_url: str | None = Field(
        None, description="folder or bucket (fsspec URL) the AOI request sensor watches; "
                          "None = {root}/aoi_requests")
    scene_watch: SceneWatchSettings = Field(default_factory=SceneWatchSettings)
    previews: PreviewSettings = Field(default_factory=PreviewSettings)
    coverage: CoverageSettings = Field(default_factory=CoverageSettings)
    executor: Literal["multiprocess", "in_process"] = Field(
        "in_process", description="how a run executes its steps: all in the run's process "
        "(one run per partition already isolates partitions; on Kubernetes each run is a pod), "
        "or one process per step")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the constructor's arguments: the environment is read by :meth:`load`."""
        return (init_settings,)

    @field_serializer("storage_options")
    def _storage_options_without_secrets(self, options: dict[str, Any]) -> dict[str, Any]:
        """Credentials never leave the process in a dump (saved settings, the Dagster resource
        config, Ray task arguments): they are read at run time (:meth:`with_runtime_secrets`)."""
        return public_options(options)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, (masked_options(value) if name == "storage_options" else value)

    @model_validator(mode="before")
    @classmethod
    def _drop_retired(cls, data: Any) -> Any:
        if isinstance(data, dict) and RETIRED_SETTINGS.intersection(data):
            return {k: v for k, v in data.items() if k not in RETIRED_SETTINGS}
        return data

    @field_validator("tile_size")
    @classmethod
    def _valid_tile_size(cls, v: int) -> int:
        return check_tile_size(v)

    @field_validator("years", mode="before")
    @classmethod
    def _years_from_text(cls, v: Any) -> Any:
        if isinstance(v, str):  # TESSERA_YEARS: "2019-2024", "2019,2021" or a JSON list
            return json.loads(v) if v.lstrip().startswith("[") else parse_years(v)
        return v

    @field_validator("years")
    @classmethod
    def _years_sorted(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("years must not be empty")
        if any(y < 2015 or y > 2100 for y in v):
            raise ValueError(f"years outside the Sentinel era: {v}")
        return sorted(set(v))

    @field_validator("coarse_resolution")
    @classmethod
    def _coarse_divides_tile(cls, v: float, info: ValidationInfo) -> float:
        if "tile_size" in info.data:  # else tile_size has its own error already
            coarsen_factor(info.data["tile_size"], v)
        return v

    @property
    def coarse_factor(self) -> int:
        """10 m pixels per coarse pixel side."""
        return coarsen_factor(self.tile_size, self.coarse_resolution)

    def digest(self) -> str:
        """Stable hash of the settings that change results: not where they are stored, nor
        operations settings (planner prices, budget, sensors, previews, coverage checks)."""
        payload = self.model_dump(exclude={"root", "storage_options", "planner",
                                           "aoi_requests_url", "scene_watch", "previews",
                                           "coverage"})
        payload["inference"].pop("ray_address", None)
        for how_not_what in ("num_workers", "slot_resource", "slots_per_worker",
                             "cpus_per_worker"):
            payload["inference"].pop(how_not_what, None)
        payload.pop("executor", None)
        for how_not_what in ("search_timeout_s", "search_retries", "requests_per_second",
                             "read_retries", "read_retry_delay_s", "read_timeout_s",
                             "day_retries", "check_assets", "auth", "credentials_env"):
            payload["catalog"].pop(how_not_what, None)
        for sensor in ("s2", "s1", "landsat"):  # a catalog per sensor: only where one is named
            own = payload["catalog"].pop(sensor, None)
            if own is not None:
                payload["catalog"][sensor] = {k: v for k, v in own.items()
                                              if k not in ("auth", "credentials_env")}
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> PipelineSettings:
        """Read settings from ``path`` (or ``$TESSERA_CONFIG``), then apply ``TESSERA_*``
        variables (:data:`ENV_ALIASES`, then ``TESSERA_ROOT``, ``TESSERA_TILE_SIZE``,
        ``TESSERA_YEARS=2019-2024``, ``TESSERA_CATALOG__URL``, ...), then ``overrides``
        (top-level fields, each replacing what came before)."""
        data: dict[str, Any] = {}
        path = path or os.environ.get(CONFIG_ENV)
        if path:
            p = Path(path)
            if not p.exists():
                raise FileNotFoundError(f"settings file {p} (from {CONFIG_ENV}) does not exist")
            data = _json_file(p)
        data = _merged(data, _secrets_file(os.environ))
        data = _merged(data, _aliased_environment())
        try:
            data = _merged(data, EnvSettingsSource(cls)())
            data.update(overrides)
            return cls.model_validate(data)
        except ValidationError as err:
            raise SettingsError.from_validation(err, path) from None
        except EnvDecodeError as err:  # a TESSERA_* variable that is not valid JSON
            field = re.search(r'field "([^"]+)"', str(err))
            env = ENV_PREFIX + (field.group(1).upper() if field else "*")
            raise SettingsError(f"invalid settings: {env} is not valid JSON ({err}); fix the "
                                "variable and run again") from None

    def with_runtime_secrets(self, config_path: str | Path | None = None,
                             environ: Mapping[str, str] | None = None) -> PipelineSettings:
        """These settings with the credentials of ``storage_options`` read now, where the run
        executes: from the settings file (``config_path`` or ``$TESSERA_CONFIG``), the secrets
        file (``$TESSERA_SECRETS_FILE``) and ``TESSERA_STORAGE_OPTIONS__*`` variables, later
        sources winning. Only secret keys are taken from them (:func:`is_secret_option`)."""
        secrets = runtime_secrets(config_path, environ)
        if not secrets:
            return self
        options = _merged(self.storage_options, secrets)
        return self.model_copy(update={"storage_options": options})

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
            a, b = (_year(x, text) for x in part.split("-", 1))
            if b < a:
                raise ValueError(f"year range {part} runs backwards")
            if b - a > MAX_YEAR_SPAN:  # before building it: "1-2000000000" is 2e9 ints
                raise ValueError(f"year range {part} spans more than {MAX_YEAR_SPAN} years")
            years.update(range(a, b + 1))
        else:
            years.add(_year(part, text))
    if not years:
        raise ValueError(f"no years in {text!r}")
    return sorted(years)


def _year(part: str, text: str) -> int:
    if not part.strip().isdigit():
        raise ValueError(f"years {text!r}: {part.strip()!r} is not a year (write e.g. 2024, "
                         "2019-2024 or 2019,2021)")
    return int(part)


class SettingsError(ValueError):
    """Settings that cannot be used, said in one line: the field, the value's problem, where
    it was set and how to fix it (instead of pydantic's multi-line report)."""

    def __init__(self, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or []

    @classmethod
    def from_validation(cls, err: ValidationError, path: str | Path | None) -> SettingsError:
        parts = []
        fields = [".".join(str(x) for x in e["loc"]) for e in err.errors()]
        for e in err.errors()[:3]:
            loc = [str(x) for x in e["loc"]]
            field = ".".join(loc) or "settings"
            env = ENV_PREFIX + ENV_NESTED_DELIMITER.join(loc).upper()
            msg = e["msg"].removeprefix("Value error, ")
            where = f"{path} or {env}" if path else env
            parts.append(f"{field}: {msg} (set in {where})")
        more = f" (+{err.error_count() - 3} more)" if err.error_count() > 3 else ""
        return cls(f"invalid settings: {'; '.join(parts)}{more}; fix the value and run again",
                   fields)


def is_secret_option(name: str) -> bool:
    """Whether a storage option holds a credential (s3fs ``key``/``secret``/``token``,
    ``aws_secret_access_key``, Azure ``account_key``/``sas_token``, GCS ``token``, ...)."""
    lower = name.lower()
    return lower in SECRET_OPTION_NAMES or any(part in lower for part in SECRET_OPTION_PARTS)


def public_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without credentials (nested dicts such as ``client_kwargs`` included)."""
    return {k: public_options(v) if isinstance(v, Mapping) else v
            for k, v in options.items() if not is_secret_option(str(k))}


def secret_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Only the credentials of ``options``, nesting kept."""
    out: dict[str, Any] = {}
    for k, v in options.items():
        if is_secret_option(str(k)):
            out[k] = v
        elif isinstance(v, Mapping) and (inner := secret_options(v)):
            out[k] = inner
    return out


def masked_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with credential values shown as ``'***'`` (for repr and logs)."""
    return {k: "***" if is_secret_option(str(k)) else
            masked_options(v) if isinstance(v, Mapping) else v for k, v in options.items()}


def runtime_secrets(config_path: str | Path | None = None,
                    environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The storage credentials available to this process (see
    :meth:`PipelineSettings.with_runtime_secrets`), as nested ``storage_options``."""
    env = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    path = config_path or env.get(CONFIG_ENV)
    if path and Path(path).is_file():
        found = secret_options(_json_file(Path(path)).get("storage_options") or {})
    found = _merged(found, secret_options(
        _secrets_file(env).get("storage_options") or {}))
    prefix = f"{ENV_PREFIX}STORAGE_OPTIONS{ENV_NESTED_DELIMITER}"
    for name, value in env.items():
        if name.upper().startswith(prefix):
            path_keys = name[len(prefix):].lower().split(ENV_NESTED_DELIMITER)
            if any(is_secret_option(k) for k in path_keys):
                node = found
                for k in path_keys[:-1]:
                    node = node.setdefault(k, {})
                node[path_keys[-1]] = value
    return found


def _json_file(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"settings file {path} is not readable JSON: {err}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"settings file {path} must hold a JSON object")
    return doc


def _secrets_file(environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``$TESSERA_SECRETS_FILE`` document (only its ``storage_options`` is used)."""
    name = environ.get(SECRETS_FILE_ENV)
    if not name:
        return {}
    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"secrets file {path} (from {SECRETS_FILE_ENV}) does not exist")
    doc = _json_file(path)
    unknown = sorted(set(doc) - {"storage_options"})
    if unknown:
        raise ValueError(f"secrets file {path}: only 'storage_options' may be given, "
                         f"not {unknown}")
    return {"storage_options": doc.get("storage_options") or {}}


def _aliased_environment() -> dict[str, Any]:
    """The :data:`ENV_ALIASES` that are set, as nested settings."""
    found: dict[str, Any] = {}
    for name, (section, field) in ENV_ALIASES.items():
        if name in os.environ:
            found.setdefault(section, {})[field] = os.environ[name]
    return found


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid on top, sections merged key by key."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out

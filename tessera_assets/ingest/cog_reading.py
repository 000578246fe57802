"""How COGs are read (DESIGN §6): GDAL/rasterio settings for cloud reads, retries, and
checking that a scene's assets can be opened before a cube is built.

odc-stac does not take GDAL's HTTP settings from ``GDAL_HTTP_*`` environment variables: its
reads run with its own defaults (10 retries, 0.5 s) unless :func:`odc.stac.configure_rio` is
called (measured, see environment-notes). :func:`configure_reads` does that once per process
and configuration; :func:`read_env` applies the same options to reads we do ourselves and to
the thread that calls odc-stac (odc-stac copies the calling thread's GDAL options into its
readers).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pystac
import rasterio

from tessera_assets.catalog.presets import (
    EARTHDATA_TOKEN_ENV,
    get_preset,
    is_earthdata,
    needs_signing,
    planetary_computer_signer,
    preset_for_url,
    read_aws_session,
    read_gdal_options,
)

if TYPE_CHECKING:
    from tessera_assets.config import CatalogSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

ALLOWED_EXTENSIONS = (".tif", ".tiff", ".jp2")
"""Files GDAL may fetch over HTTP: anything else (sidecars like ``.aux.xml``, ``.ovr``)
would cost a request each per open."""

_PERMANENT = (
    "http response code: 400", "http response code: 401", "http response code: 403",
    "http response code: 404", "http response code: 405", "http response code: 410",
    "http response code: 416", "no such file", "does not exist", "not recognized as",
    "not a supported file format", "not allowed", "access denied", "forbidden",
    "tiffreadencodedtile", "tiffreaddirectory", "tiff read error", "ireadblock failed",
    "read error at", "corrupt",
)
"""Read errors that another attempt cannot fix: missing or forbidden files (4xx), files GDAL
cannot parse, truncated or corrupt TIFF data. Everything else (5xx, 429, timeouts, dropped or
cut-off transfers, DNS hiccups) is worth retrying."""


@dataclass(frozen=True)
class ReadConfig:
    """How scenes are read: GDAL HTTP behaviour, our own retries, and what to do with a scene
    that cannot be read (``on_unreadable``: fail the partition, or skip and record it)."""

    max_retry: int = 5
    retry_delay_s: float = 1.0
    timeout_s: int = 60
    connect_timeout_s: int = 15
    low_speed_time_s: int = 30
    """Abort a transfer that stays below 1 byte/s this long (a stalled connection)."""
    curl_cache_bytes: int = 128 * 1024 * 1024
    allowed_extensions: tuple[str, ...] = ALLOWED_EXTENSIONS
    on_unreadable: Literal["fail", "skip"] = "fail"
    day_retries: int = 2
    day_backoff_s: float = 2.0
    day_max_backoff_s: float = 30.0
    check_assets: bool = True
    check_workers: int = 8
    extra: Mapping[str, str] = field(default_factory=dict)
    """More GDAL options (a preset's endpoint or auth header); never recorded anywhere."""
    aws: Mapping[str, Any] | None = None
    """rasterio ``AWSSession`` arguments for ``s3://`` hrefs (requester pays, endpoint)."""

    def gdal_options(self) -> dict[str, str]:
        """GDAL config options for COG reads over HTTP/S3."""
        opts = {
            "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
            "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ",".join(
                sorted({e for ext in self.allowed_extensions for e in (ext, ext.upper())})),
            "CPL_VSIL_CURL_CACHE_SIZE": str(self.curl_cache_bytes),
            "GDAL_INGESTED_BYTES_AT_OPEN": "32768",
            "GDAL_HTTP_MULTIRANGE": "YES",
            "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
            "GDAL_HTTP_MAX_RETRY": str(self.max_retry),
            "GDAL_HTTP_RETRY_DELAY": f"{self.retry_delay_s:g}",
            "GDAL_HTTP_TIMEOUT": str(self.timeout_s),
            "GDAL_HTTP_CONNECTTIMEOUT": str(self.connect_timeout_s),
            "GDAL_HTTP_LOW_SPEED_TIME": str(self.low_speed_time_s),
            "GDAL_HTTP_LOW_SPEED_LIMIT": "1",
            "VSI_CACHE": "TRUE",
            "VSI_CACHE_SIZE": str(8 * 1024 * 1024),
        }
        opts.update(self.extra)
        return opts

    def redacted(self) -> dict[str, Any]:
        """The configuration with secrets masked, for logs and lineage."""
        opts = {k: ("***" if _secret(k) else v) for k, v in self.gdal_options().items()}
        aws = {k: ("***" if _secret(k) else v) for k, v in (self.aws or {}).items()}
        return {"gdal": opts, "aws": aws or None, "on_unreadable": self.on_unreadable,
                "day_retries": self.day_retries, "check_assets": self.check_assets}

    @classmethod
    def from_settings(cls, settings: CatalogSettings,
                      environ: Mapping[str, str] | None = None, **overrides: Any) -> ReadConfig:
        """Read settings of a catalog configuration, with its preset's endpoint and
        credentials (from ``environ``, default the process environment)."""
        preset = get_preset(settings.preset) if settings.preset else preset_for_url(settings.url)
        cfg = cls(
            max_retry=settings.read_retries, retry_delay_s=settings.read_retry_delay_s,
            timeout_s=settings.read_timeout_s, on_unreadable=settings.on_unreadable,
            day_retries=settings.day_retries, check_assets=settings.check_assets,
            extra=read_gdal_options(preset, environ), aws=read_aws_session(preset, environ),
        )
        return replace(cfg, **overrides) if overrides else cfg


def _secret(key: str) -> bool:
    k = key.upper()
    return any(s in k for s in ("SECRET", "TOKEN", "HEADERS", "PASSWORD", "ACCESS_KEY"))


_applied: tuple[Any, ...] | None = None
_applied_lock = threading.Lock()


def configure_reads(cfg: ReadConfig) -> None:
    """Make odc-stac read with ``cfg`` (process-wide; repeated calls with the same
    configuration do nothing)."""
    global _applied
    import odc.stac

    key = (tuple(sorted(cfg.gdal_options().items())),
           tuple(sorted((cfg.aws or {}).items())) if cfg.aws is not None else None)
    with _applied_lock:
        if key == _applied:
            return
        odc.stac.configure_rio(cloud_defaults=True, aws=dict(cfg.aws) if cfg.aws else None,
                               **cfg.gdal_options())
        _applied = key
    log.debug("odc-stac GDAL configuration: %s", cfg.redacted())


def href_options(hrefs: Iterable[str], environ: Mapping[str, str] | None = None
                 ) -> dict[str, str]:
    """GDAL options that particular hrefs need: the Earthdata bearer token for ASF/NASA hosts
    (when ``EARTHDATA_TOKEN`` is set)."""
    env = os.environ if environ is None else environ
    token = env.get(EARTHDATA_TOKEN_ENV)
    if token and any(is_earthdata(h) for h in hrefs):
        return {"GDAL_HTTP_HEADERS": f"Authorization: Bearer {token}"}
    return {}


@contextmanager
def read_env(cfg: ReadConfig, hrefs: Iterable[str] = ()) -> Iterator[None]:
    """GDAL options of ``cfg`` (plus what ``hrefs`` need) for reads in this thread."""
    opts = {**cfg.gdal_options(), **href_options(hrefs)}
    if "GDAL_HTTP_HEADERS" in cfg.extra:
        opts["GDAL_HTTP_HEADERS"] = cfg.extra["GDAL_HTTP_HEADERS"]
    with rasterio.Env(**opts):
        yield


def signed(items: Iterable[pystac.Item], keys: Iterable[str] | None = None
           ) -> list[pystac.Item]:
    """Items whose Planetary Computer blob hrefs (of ``keys``, default all assets) carry a
    fresh SAS token: copies, other items unchanged. Signing happens at read time, so tokens
    never reach the manifest and never expire between search and read."""
    wanted = None if keys is None else set(keys)
    out = []
    for item in items:
        todo = [k for k, a in item.assets.items()
                if (wanted is None or k in wanted) and needs_signing(a.href)]
        if not todo:
            out.append(item)
            continue
        sign = planetary_computer_signer()
        copy = item.clone()
        for key in todo:
            copy.assets[key].href = sign(copy.assets[key].href)
        out.append(copy)
    return out


def is_transient(err: BaseException) -> bool:
    """Whether another attempt may succeed (see :data:`_PERMANENT`)."""
    text = " ".join(str(e) for e in _chain(err)).lower()
    if any(p in text for p in ("http response code: 429", "http response code: 5",
                                "timed out", "timeout", "connection", "transfer closed",
                                "recv failure", "reset by peer")):
        return True
    return not any(p in text for p in _PERMANENT)


def _chain(err: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        out.append(e)
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return out


def retry(
    fn: Callable[[], T],
    *,
    attempts: int,
    backoff_s: float,
    max_backoff_s: float = 30.0,
    transient: Callable[[BaseException], bool] = is_transient,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    what: str = "read",
) -> T:
    """Call ``fn`` up to ``attempts`` times while it fails transiently, sleeping an
    exponentially growing delay with jitter (×[0.5, 1.5)) in between. A permanent error, or
    the last transient one, is raised unchanged."""
    rng = rng or random.Random()
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as err:
            if attempt == attempts or not transient(err):
                raise
            delay = min(max_backoff_s, backoff_s * 2 ** (attempt - 1)) * (0.5 + rng.random())
            log.warning("%s failed (attempt %d/%d: %s); retrying in %.2f s",
                        what, attempt, attempts, err, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class Unreadable:
    """A scene asset that cannot be read, and why."""

    item_id: str
    asset: str
    href: str
    reason: str

    def as_record(self) -> dict[str, str]:
        return {"item_id": self.item_id, "asset": self.asset, "href": _public(self.href),
                "reason": self.reason}

    def __str__(self) -> str:
        return f"item {self.item_id} asset {self.asset!r} ({_public(self.href)}): {self.reason}"


def _public(href: str) -> str:
    """An href without its query string (SAS tokens and other signatures)."""
    return href.split("?", 1)[0]


def check_assets(
    targets: Iterable[tuple[pystac.Item, str]], cfg: ReadConfig
) -> list[Unreadable]:
    """Open the header of every (item, asset) — a ranged GET or two each, which GDAL's cache
    then reuses for the pixel reads — and report the ones that cannot be opened. Done before
    a cube is built, so an unreadable scene is known (and skipped or fatal) before anything
    is written."""
    pairs = list(targets)
    if not pairs:
        return []
    def probe(pair: tuple[pystac.Item, str]) -> Unreadable | None:
        item, key = pair
        try:
            (ready,) = signed([item], [key])
        except Exception as err:
            return Unreadable(item.id, key, item.assets[key].href, _short(err))
        href = ready.assets[key].href
        try:
            with read_env(cfg, [href]):
                retry(lambda: _open_header(href), attempts=cfg.day_retries + 1,
                      backoff_s=cfg.day_backoff_s, max_backoff_s=cfg.day_max_backoff_s,
                      what=f"opening {item.id}/{key}")
        except Exception as err:
            return Unreadable(item.id, key, item.assets[key].href, _short(err))
        return None

    with ThreadPoolExecutor(max_workers=max(1, min(cfg.check_workers, len(pairs)))) as pool:
        return [u for u in pool.map(probe, pairs) if u is not None]


def _open_header(href: str) -> None:
    with rasterio.open(href, sharing=False) as src:
        if src.count < 1:
            raise rasterio.errors.RasterioIOError(f"{href} has no bands")


def _short(err: BaseException, limit: int = 300) -> str:
    text = f"{type(err).__name__}: {err}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"

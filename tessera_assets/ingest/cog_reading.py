"""How COGs are read (DESIGN §6): GDAL/rasterio settings for cloud reads, the retry policy
for whole granule reads, and checking that a scene's assets can be opened before a cube is
built.

:func:`read_env` applies the options to the reads of a thread: the cubes read granules
themselves (:mod:`tessera_assets.ingest.granule_read`), one environment per granule.
odc-stac does not take GDAL's HTTP settings from ``GDAL_HTTP_*`` environment variables: its
reads run with its own defaults (10 retries, 0.5 s) unless :func:`odc.stac.configure_rio` is
called (measured, see environment-notes); :func:`configure_reads` does that, for code that
loads with odc-stac.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import pystac
import rasterio
import rasterio.shutil
from rasterio.session import AWSSession, DummySession, Session

from tessera_assets.catalog.signing import (
    href_options,
    read_aws_session,
    read_gdal_options,
    redact,
    signed,
)
from tessera_assets.retry import RetryPolicy, describe

if TYPE_CHECKING:
    from tessera_assets.catalog.settings import CatalogSettings

log = logging.getLogger(__name__)

ALLOWED_EXTENSIONS = (".tif", ".tiff", ".jp2")
"""Files GDAL may fetch over HTTP: anything else (sidecars like ``.aux.xml``, ``.ovr``)
would cost a request each per open."""


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
        return {"gdal": redact(self.gdal_options()), "aws": redact(self.aws or {}) or None, "on_unreadable": self.on_unreadable,
                "day_retries": self.day_retries, "check_assets": self.check_assets}

    @classmethod
    def from_settings(cls, settings: CatalogSettings,
                      environ: Mapping[str, str] | None = None, **overrides: Any) -> ReadConfig:
        """Read settings of a catalog configuration, with its preset's endpoint and
        credentials (from ``environ``, default the process environment)."""
        preset = settings.resolved_preset()  # a mirror's auth override applies to reads too
        environ = settings.credentials_environ(environ)
        cfg = cls(
            max_retry=settings.read_retries, retry_delay_s=settings.read_retry_delay_s,
            timeout_s=settings.read_timeout_s, on_unreadable=settings.on_unreadable,
            day_retries=settings.day_retries, check_assets=settings.check_assets,
            extra=read_gdal_options(preset, environ), aws=read_aws_session(preset, environ),
        )
        return replace(cfg, **overrides) if overrides else cfg

    def retry_policy(self) -> RetryPolicy:
        """How a whole granule read (or header check) is retried after GDAL's own per-request
        retries gave up: ``day_retries`` more attempts with jittered exponential backoff."""
        return RetryPolicy(attempts=self.day_retries + 1, backoff_s=self.day_backoff_s,
                           max_backoff_s=self.day_max_backoff_s)


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


UNCACHED_PREFIXES = "/vsicurl/:/vsis3/:/vsigs/:/vsiaz/:/vsiadls/:/vsioss/:/vsiswift/"
"""``CPL_VSIL_CURL_NON_CACHED`` of a fresh read: GDAL keeps what a cut-off transfer delivered
(and the file's size) in its per-process cache, so a retry that reads through the cache fails
exactly like the first attempt without a single request; a fresh read fetches again."""


@contextmanager
def read_env(cfg: ReadConfig, hrefs: Iterable[str] = (), *, fresh: bool = False
             ) -> Iterator[None]:
    """GDAL options of ``cfg`` (plus what ``hrefs`` need) for reads in this thread;
    ``fresh`` bypasses GDAL's cache of remote files (for retries)."""
    hrefs = list(hrefs)
    opts = {**cfg.gdal_options(), **href_options(hrefs)}
    if fresh:
        opts["CPL_VSIL_CURL_NON_CACHED"] = UNCACHED_PREFIXES
    if "GDAL_HTTP_HEADERS" in cfg.extra:
        opts["GDAL_HTTP_HEADERS"] = cfg.extra["GDAL_HTTP_HEADERS"]
    with rasterio.Env(session=_session(cfg, hrefs), **opts):
        yield


_sessions = threading.local()


def _session(cfg: ReadConfig, hrefs: list[str]) -> Session:
    """The rasterio session for reading ``hrefs``: AWS only for ``s3://`` hrefs, one per
    thread and configuration.

    ``rasterio.Env()`` without a session builds a new boto3 session (~30 ms) whenever
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` are set, also for local or HTTP files, and
    an explicit ``s3://`` read must use the preset's session (requester pays, endpoint). The
    same cost inside rasterio's ``reproject`` (rasterio#3331) cannot be avoided from here:
    docs/operations.md ("S3 credentials and rasterio") says how to give keys instead."""
    if not any(h.startswith("s3://") for h in hrefs):
        return DummySession()
    key = tuple(sorted((cfg.aws or {}).items()))
    cache: dict[tuple, Session] = _sessions.__dict__.setdefault("by_config", {})
    if key not in cache:
        cache[key] = AWSSession(**dict(key)) if cfg.aws else Session.from_environ()
    return cache[key]


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
    is written.

    Per item: one signing and one GDAL environment, and a bare GDAL open per asset
    (``rasterio.shutil.exists``: no CRS or metadata parsing, a fifth of ``rasterio.open``'s
    cost). Only an asset that does not open goes through the full probe (retries, GDAL's
    error text)."""
    by_item: dict[str, tuple[pystac.Item, list[str]]] = {}
    for item, key in targets:
        by_item.setdefault(item.id, (item, []))[1].append(key)
    if not by_item:
        return []

    def probe_item(entry: tuple[pystac.Item, list[str]]) -> list[Unreadable]:
        item, keys = entry
        try:
            (ready,) = signed([item], keys, timeout_s=cfg.timeout_s, policy=cfg.retry_policy())
        except Exception as err:
            return [Unreadable(item.id, k, item.assets[k].href, _short(err)) for k in keys]
        hrefs = {k: ready.assets[k].href for k in keys}
        with read_env(cfg, hrefs.values()):
            failed = [k for k in keys if not _opens(hrefs[k])]
        return [u for k in failed if (u := _probe(item, k, hrefs[k], cfg)) is not None]

    workers = max(1, min(cfg.check_workers, len(by_item)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [u for found in pool.map(probe_item, by_item.values()) for u in found]


def _opens(href: str) -> bool:
    try:
        return rasterio.shutil.exists(href)
    except Exception:
        return False


def _probe(item: pystac.Item, key: str, href: str, cfg: ReadConfig) -> Unreadable | None:
    """Open one asset's header with the retry policy; the reason it cannot be, if so."""
    attempt = Attempts()

    def once() -> None:
        with read_env(cfg, [href], fresh=attempt.next() > 1):
            _open_header(href)

    try:
        cfg.retry_policy().call(once, what=f"opening {item.id}/{key}")
    except Exception as err:
        return Unreadable(item.id, key, item.assets[key].href, attempt.reason(err))
    return None


class Attempts:
    """Counts the attempts of one retried read: the first reads through GDAL's cache, every
    later one is fresh (see :data:`UNCACHED_PREFIXES`); the reason of a final failure says
    how often it failed and keeps GDAL's root error text."""

    def __init__(self) -> None:
        self.count = 0

    def next(self) -> int:
        self.count += 1
        return self.count

    def reason(self, err: BaseException) -> str:
        text = describe(err)
        return text if self.count <= 1 else f"{text} (failed {self.count} attempts)"


def _open_header(href: str) -> None:
    with rasterio.open(href, sharing=False) as src:
        if src.count < 1:
            raise rasterio.errors.RasterioIOError(f"{href} has no bands")


def _short(err: BaseException) -> str:
    return describe(err)

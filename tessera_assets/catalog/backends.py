"""Scene catalogs (DESIGN §6): stac-geoparquet files through rustac's DuckDB, and STAC APIs.

Both backends answer the same question: the items of some collections that intersect a lon/lat
box within a time window, sorted by (datetime, id) so the scene manifest is reproducible.

The geoparquet backend never downloads anything: rustac's embedded DuckDB would fetch its
spatial/icu/parquet extensions from the internet, so we lay out the copies shipped as PyPI
packages (``duckdb-extension-*``) as a local extension directory and forbid installs.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from datetime import time as dtime
from importlib import util as importlib_util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import pystac

from tessera_assets.catalog.presets import (
    PresetError,
    RateHints,
    check_credentials,
    get_preset,
    preset_for_url,
    search_headers,
)

if TYPE_CHECKING:
    from tessera_assets.config import CatalogSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

BBox = tuple[float, float, float, float]
TimeLike = datetime | date | str

DUCKDB_EXTENSIONS = ("spatial", "icu", "parquet")
EXTENSION_DIR_ENV = "TESSERA_DUCKDB_EXTENSION_DIR"
RETRY_STATUSES = (408, 429, 500, 502, 503, 504)


class CatalogError(RuntimeError):
    """A catalog cannot answer: missing files, bad search parameters, unreachable API."""


@runtime_checkable
class Catalog(Protocol):
    """What the pipeline needs from any scene catalog."""

    def search(
        self,
        *,
        collections: Sequence[str | None],
        bbox: BBox,
        start: TimeLike,
        end: TimeLike,
        query: dict[str, Any] | None = None,
        filter: dict[str, Any] | str | None = None,
    ) -> list[pystac.Item]: ...


# --------------------------------------------------------------------------- search parameters


def check_bbox(bbox: Sequence[float]) -> BBox:
    """Validate a (west, south, east, north) lon/lat box; antimeridian boxes are not accepted."""
    try:
        west, south, east, north = (float(v) for v in bbox)
    except (TypeError, ValueError) as err:
        raise CatalogError(f"bbox must be 4 numbers (west, south, east, north), got {bbox!r}") from err
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90 and -90 <= north <= 90):
        raise CatalogError(f"bbox {bbox!r} is outside lon [-180, 180] / lat [-90, 90]: is it in EPSG:4326?")
    if west > east or south > north:
        raise CatalogError(f"bbox {bbox!r} has min > max (expected west, south, east, north)")
    return west, south, east, north


def to_utc(value: TimeLike, *, end: bool = False) -> datetime:
    """A timezone-aware UTC datetime. Dates cover whole days (``end``: the day's last instant);
    naive datetimes are taken as UTC."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError as err:
            raise CatalogError(f"cannot parse {value!r} as an ISO date or datetime") from err
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, dtime.max if end else dtime.min, UTC)
    raise CatalogError(f"expected a datetime, date or ISO string, got {type(value).__name__}")


def datetime_interval(start: TimeLike, end: TimeLike) -> str:
    """RFC 3339 interval ``start/end`` (inclusive), as STAC searches expect."""
    first, last = to_utc(start), to_utc(end, end=True)
    if first > last:
        raise CatalogError(f"start {first.isoformat()} is after end {last.isoformat()}")
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    return f"{first.strftime(fmt)}/{last.strftime(fmt)}"


def _check_collections(collections: Sequence[str | None]) -> list[str]:
    """Distinct collection ids. ``None`` entries stand for a sensor the catalog does not
    serve (a preset without Sentinel-1, say) and are dropped: searching only those finds
    nothing, searching none at all is a mistake."""
    if isinstance(collections, str):
        collections = [collections]
    if not collections:
        raise CatalogError("at least one collection is needed")
    return list(dict.fromkeys(c for c in collections if c is not None))


_QUERY_OPS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def query_to_cql2(query: dict[str, Any]) -> dict[str, Any]:
    """Translate a STAC API ``query`` object (e.g. ``{"eo:cloud_cover": {"lt": 20}}``) into
    CQL2-JSON, for backends that only implement ``filter``."""
    clauses: list[dict[str, Any]] = []
    for prop, conditions in query.items():
        if not isinstance(conditions, dict):
            raise CatalogError(f"query for {prop!r} must map operators to values, got {conditions!r}")
        for op, value in conditions.items():
            if op == "in":
                clauses.append({"op": "in", "args": [{"property": prop}, list(value)]})
            elif op in _QUERY_OPS:
                clauses.append({"op": _QUERY_OPS[op], "args": [{"property": prop}, value]})
            else:
                raise CatalogError(f"unsupported query operator {op!r} (use {sorted(_QUERY_OPS)} or in)")
    if not clauses:
        raise CatalogError("empty query")
    return clauses[0] if len(clauses) == 1 else {"op": "and", "args": clauses}


def _combine_filters(
    query: dict[str, Any] | None, filter: dict[str, Any] | str | None
) -> dict[str, Any] | str | None:
    if not query:
        return filter
    translated = query_to_cql2(query)
    if filter is None:
        return translated
    if isinstance(filter, str):
        raise CatalogError("combine query with a CQL2-JSON filter, not CQL2 text")
    return {"op": "and", "args": [translated, filter]}


def sort_items(items: Iterable[pystac.Item]) -> list[pystac.Item]:
    """Deterministic order: by datetime (or start_datetime), then id."""

    def key(item: pystac.Item) -> tuple[datetime, str]:
        when = item.datetime or item.common_metadata.start_datetime
        return (to_utc(when) if when else datetime.min.replace(tzinfo=UTC), item.id)

    return sorted(items, key=key)


# --------------------------------------------------------------------------- geoparquet + DuckDB


def _read_footer(path: Path) -> tuple[str, str] | None:
    """(DuckDB version, platform) from a ``.duckdb_extension`` file's metadata footer.

    The last 512 bytes hold 8 fields of 32 bytes (then the signature); field 5 is the DuckDB
    version the extension was built for and field 6 its platform, e.g. ``v1.5.5`` and
    ``linux_amd64``.
    """
    try:
        with path.open("rb") as f:
            f.seek(-512, os.SEEK_END)
            footer = f.read(256)
    except OSError:
        return None
    fields = [footer[i * 32 : (i + 1) * 32].rstrip(b"\0").decode("ascii", "replace") for i in range(8)]
    version, plat = fields[5], fields[6]
    if not version.startswith("v") or not plat:
        return None
    return version, plat


def _fallback_platform() -> str:
    system = {"Linux": "linux", "Darwin": "osx", "Windows": "windows"}.get(platform.system(), "linux")
    machine = platform.machine().lower()
    arch = "arm64" if machine in ("arm64", "aarch64") else "amd64"
    return f"{system}_{arch}"


def _packaged_extension(name: str) -> Path:
    """The ``.duckdb_extension`` file shipped by the ``duckdb-extension-<name>`` package."""
    spec = importlib_util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        raise CatalogError(
            f"the duckdb-extension-{name} package is not installed; it provides DuckDB's {name} "
            f"extension offline (pip install duckdb-extension-{name}==<DuckDB version>)"
        )
    found = sorted(
        p
        for root in spec.submodule_search_locations
        for p in Path(root).rglob(f"{name}.duckdb_extension")
    )
    if not found:
        raise CatalogError(f"duckdb-extension-{name} is installed but holds no {name}.duckdb_extension")
    return found[-1]


def default_extension_cache() -> Path:
    if os.environ.get(EXTENSION_DIR_ENV):
        return Path(os.environ[EXTENSION_DIR_ENV])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "tessera_assets" / "duckdb-extensions"


def duckdb_extension_directory(cache_dir: Path | str | None = None) -> Path:
    """Lay out the packaged DuckDB extensions as ``<dir>/<version>/<platform>/<name>.duckdb_extension``.

    This is the layout DuckDB searches when given an ``extension_directory``. Version and
    platform come from each file's footer (falling back to the package's folder name and this
    machine), so a DuckDB upgrade gets a new folder instead of a stale file. Files are linked
    (copied where links are not possible); nothing is downloaded.
    """
    root = Path(cache_dir) if cache_dir is not None else default_extension_cache()
    for name in DUCKDB_EXTENSIONS:
        source = _packaged_extension(name)
        footer = _read_footer(source)
        version, plat = footer or (source.parent.name, _fallback_platform())
        target = root / version / plat / f"{name}.duckdb_extension"
        if target.exists() and target.stat().st_size == source.stat().st_size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            tmp.symlink_to(source.resolve())
        except OSError:
            shutil.copyfile(source, tmp)
        tmp.replace(target)  # atomic: concurrent processes never see a partial file
    return root


def _parquet_files(source: str | Path | Sequence[str | Path]) -> list[Path]:
    sources = [source] if isinstance(source, str | Path) else list(source)
    files: list[Path] = []
    for s in sources:
        path = Path(s).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.parquet") if p.is_file())
            if not found:
                raise CatalogError(f"no stac-geoparquet (*.parquet) files in {path}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise CatalogError(f"stac-geoparquet catalog not found: {path}")
    if not files:
        raise CatalogError("no stac-geoparquet files given")
    return [f.resolve() for f in files]


def _collections_in(path: Path) -> set[str]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=["collection"])
    except Exception as err:  # pyarrow raises several types for bad or foreign files
        raise CatalogError(f"{path} is not a stac-geoparquet file with a collection column: {err}") from err
    return {c for c in table.column("collection").unique().to_pylist() if c}


class GeoparquetCatalog:
    """Search stac-geoparquet files with rustac's DuckDB client, fully offline.

    One DuckDB client stays open per instance (a search then costs milliseconds). The client
    must not be used from two threads at once (concurrent searches deadlock), so searches are
    serialised with a lock.
    """

    def __init__(
        self,
        source: str | Path | Sequence[str | Path],
        *,
        extension_directory: str | Path | None = None,
    ) -> None:
        import rustac

        self.files = _parquet_files(source)
        self._by_file = {f: _collections_in(f) for f in self.files}
        self.extension_directory = duckdb_extension_directory(extension_directory)
        try:
            self._client = rustac.DuckdbClient(
                extension_directory=str(self.extension_directory), install_extensions=False
            )
            self._client.execute("SET autoinstall_known_extensions = false")
        except Exception as err:
            raise CatalogError(
                f"cannot start DuckDB with the extensions in {self.extension_directory} "
                f"(do the duckdb-extension-* packages match rustac's DuckDB version?): {err}"
            ) from err
        self._lock = threading.Lock()

    @property
    def collections(self) -> list[str]:
        return sorted(set().union(*self._by_file.values()))

    def search(
        self,
        *,
        collections: Sequence[str | None],
        bbox: BBox,
        start: TimeLike,
        end: TimeLike,
        query: dict[str, Any] | None = None,
        filter: dict[str, Any] | str | None = None,
    ) -> list[pystac.Item]:
        wanted = _check_collections(collections)
        box = check_bbox(bbox)
        interval = datetime_interval(start, end)
        if not wanted:
            return []
        unknown = [c for c in wanted if c not in self.collections]
        if unknown:
            raise CatalogError(
                f"unknown collection(s) {unknown}; the catalog has {self.collections} "
                f"({', '.join(str(f) for f in self.files)})"
            )
        where = _combine_filters(query, filter)  # rustac's DuckDB search has no ``query``
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for path, holds in self._by_file.items():
            here = [c for c in wanted if c in holds]
            if not here:
                continue
            try:
                with self._lock:
                    rows = self._client.search(
                        str(path),
                        collections=here,
                        bbox=list(box),
                        datetime=interval,
                        filter=where,
                    )
            except Exception as err:
                raise CatalogError(f"search of {path} failed ({here}, {box}, {interval}): {err}") from err
            for row in rows:
                found.setdefault((row.get("collection", ""), row["id"]), row)
        return sort_items(pystac.Item.from_dict(d, preserve_dict=False) for d in found.values())

    def __repr__(self) -> str:
        return f"GeoparquetCatalog({[str(f) for f in self.files]})"


# --------------------------------------------------------------------------- STAC API


def _error_chain(err: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    while err is not None and id(err) not in seen:
        chain.append(err)
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return chain


def _is_timeout(err: BaseException) -> bool:
    import requests

    return any(
        isinstance(e, requests.Timeout | TimeoutError) or "timed out" in str(e).lower()
        for e in _error_chain(err)
    )


def _is_transient(err: BaseException) -> bool:
    """Worth retrying: 429/5xx, dropped or timed-out connections, truncated or garbled bodies."""
    import requests
    import urllib3
    from pystac_client.exceptions import APIError

    for e in _error_chain(err):
        if isinstance(e, APIError):
            status = getattr(e, "status_code", None)
            if status is not None:
                return status in RETRY_STATUSES
        if isinstance(
            e,
            requests.ConnectionError
            | requests.Timeout
            | requests.exceptions.ChunkedEncodingError
            | requests.exceptions.ContentDecodingError
            | requests.exceptions.RetryError
            | urllib3.exceptions.HTTPError
            | json.JSONDecodeError
            | ConnectionError
            | TimeoutError,
        ):
            return True
    # pystac-client turns transport failures into a bare APIError(str(err)) with no status.
    return any(isinstance(e, APIError) and getattr(e, "status_code", None) is None for e in _error_chain(err))


class _Pacer:
    """Spaces requests at least ``1 / rate`` seconds apart (a provider's rate-limit hint),
    across threads; used as pystac-client's request modifier so every page is paced."""

    def __init__(self, rate: float, sleep: Callable[[float], None]) -> None:
        self.interval = 1.0 / rate
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def __call__(self, request: Any) -> None:
        with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            self._sleep(wait)


class StacApiCatalog:
    """Search a STAC API with pystac-client, retrying what is worth retrying.

    Two layers of retries: urllib3 retries each HTTP request on 429/5xx (with backoff and
    ``Retry-After``, capped at ``max_backoff`` so a server asking for an hour cannot stall a
    run), and this class pages through the results itself and retries each page request with
    exponential backoff and jitter, because a body cut off mid-transfer or a dropped
    connection is not covered by urllib3 (pystac-client alone loses the whole search: with
    20 % cut-off bodies 23 of 40 four-page searches failed, 0 with page retries). Errors that
    retrying cannot fix (4xx, bad parameters) fail at once.
    ``requests_per_second`` paces requests to a provider's published or hinted limit.
    """

    def __init__(
        self,
        url: str,
        *,
        modifier: Callable[[Any], None] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
        max_retries: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        page_size: int = 100,
        requests_per_second: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise CatalogError(f"a STAC API URL must start with http:// or https://, got {url!r}")
        self.url = url
        self.modifier = modifier
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.page_size = page_size
        self._sleep = sleep
        self._pacer = _Pacer(requests_per_second, sleep) if requests_per_second else None
        self._random = random.Random(seed)
        self._client: Any = None
        self._stac_io: Any = None
        self._lock = threading.Lock()
        self.attempts = 0  # searches started (for logs and tests)
        self.retries = 0  # requests retried after transient failures

    def _open(self) -> Any:
        from pystac_client import Client
        from pystac_client.stac_api_io import StacApiIO
        from urllib3.util.retry import Retry

        retry = Retry(
            total=self.max_retries,
            read=0,  # read timeouts are retried by search() instead: no timeout x retries blow-up
            backoff_factor=self.backoff,
            backoff_max=self.max_backoff,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=None,  # searches are POSTs, and idempotent
            respect_retry_after_header=True,
            retry_after_max=max(1, int(self.max_backoff)),
            raise_on_status=False,  # hand the last response to pystac-client as an APIError
        )
        stac_io = StacApiIO(headers=self.headers, timeout=self.timeout, max_retries=retry,
                            request_modifier=self._pacer)
        self._stac_io = stac_io
        # Client.open re-applies headers, timeout and the request modifier to stac_io (None
        # would clear them).
        return Client.open(
            self.url, headers=self.headers, modifier=self.modifier, stac_io=stac_io,
            timeout=self.timeout, request_modifier=self._pacer,
        )

    def _client_once(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._open()
            return self._client

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter in [0.5, 1.5) x the nominal delay."""
        nominal = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return nominal * (0.5 + self._random.random())

    def search(
        self,
        *,
        collections: Sequence[str | None],
        bbox: BBox,
        start: TimeLike,
        end: TimeLike,
        query: dict[str, Any] | None = None,
        filter: dict[str, Any] | str | None = None,
    ) -> list[pystac.Item]:
        """All matching items, page by page. Each request (landing page, every page) is
        retried on its own, so a page cut off mid-transfer costs one page, not the search."""
        params: dict[str, Any] = {
            "collections": _check_collections(collections),
            "bbox": list(check_bbox(bbox)),
            "datetime": datetime_interval(start, end),
            "limit": self.page_size,
        }
        if not params["collections"]:
            return []
        if query:
            params["query"] = query
        if filter:
            params["filter"] = filter
        self.attempts += 1
        client = self._request(self._client_once, params, "opening the API")
        search = self._request(lambda: client.search(**params), params, "preparing the search")
        url, method, body = search.url, search.method, search.get_parameters()
        stac_io = self._stac_io

        def first() -> dict[str, Any]:
            return stac_io.read_json(url, method=method, parameters=body)

        fetch: Callable[[], dict[str, Any]] | None = first
        items: list[pystac.Item] = []
        page_no = 0
        while fetch is not None:
            page_no += 1
            page = self._request(fetch, params, f"page {page_no}")
            if self.modifier is not None:
                self.modifier(page)
            features = page.get("features") or []
            if not features:
                break
            items.extend(pystac.Item.from_dict(f, preserve_dict=False) for f in features)
            nxt = next((lk for lk in page.get("links") or [] if lk.get("rel") == "next"), None)
            fetch = _follow(stac_io, nxt, body) if nxt else None
        return sort_items(items)

    def _request(self, fn: Callable[[], T], params: dict[str, Any], what: str) -> T:
        """One request with retries: transient failures (429/5xx after urllib3's own
        retries, timeouts, dropped connections, cut-off or garbled bodies) are retried with
        exponential backoff and jitter; anything else fails at once."""
        attempts = self.max_retries + 1
        last: BaseException | None = None
        for attempt in range(1, attempts + 1):
            try:
                return fn()
            except Exception as err:
                if not _is_transient(err):
                    raise CatalogError(
                        f"STAC API {self.url} rejected the search {params} ({what}): {err}"
                    ) from err
                last = err
                if attempt < attempts:
                    delay = self._delay(attempt)
                    self.retries += 1
                    log.warning(
                        "STAC search at %s: %s failed (attempt %d/%d: %s); retrying in %.1f s",
                        self.url, what, attempt, attempts, err, delay,
                    )
                    self._sleep(delay)
        assert last is not None
        how = "timed out" if _is_timeout(last) else "failed"
        raise CatalogError(
            f"STAC search at {self.url} {how} after {attempts} attempts ({what}; timeout "
            f"{self.timeout} s each) for {params}: {last}"
        ) from last

    def __repr__(self) -> str:
        return f"StacApiCatalog({self.url!r})"


def _follow(stac_io: Any, link: dict[str, Any], body: dict[str, Any]
            ) -> Callable[[], dict[str, Any]]:
    """A request for a ``next`` link (GET, or POST with its body, merged when it says so)."""
    target = pystac.Link.from_dict(link)
    return lambda: stac_io.read_json(target, parameters=body)


# --------------------------------------------------------------------------- factory


def catalog_from_config(kind: str, url_or_path: str | Path, **options: Any) -> Catalog:
    """Build a catalog from settings: ``kind`` is ``geoparquet``, ``stac-api`` or ``auto``
    (an http(s) URL means a STAC API, anything else stac-geoparquet files).

    A STAC API URL that is a known preset's endpoint gets that preset's request headers
    (the Earthdata token for CMR) and rate-limit hints unless ``options`` set them."""
    kind = kind.lower().replace("_", "-")
    target = str(url_or_path)
    if kind == "auto":
        kind = "stac-api" if target.startswith(("http://", "https://")) else "geoparquet"
    if kind == "geoparquet":
        return GeoparquetCatalog(target, **options)
    if kind in ("stac-api", "stac"):
        preset = preset_for_url(target)
        if preset is not None:
            headers = {**search_headers(preset), **options.pop("headers", {})}
            options = {"page_size": preset.rate.page_size,
                       "requests_per_second": preset.rate.requests_per_second,
                       **options, "headers": headers}
        return StacApiCatalog(target, **options)
    raise CatalogError(f"unknown catalog kind {kind!r}: expected 'geoparquet', 'stac-api' or 'auto'")


def catalog_from_settings(
    settings: CatalogSettings, *, environ: Mapping[str, str] | None = None, **options: Any
) -> Catalog:
    """The catalog a :class:`~tessera_assets.config.CatalogSettings` describes: its preset's
    authentication and rate hints, the configured timeouts and retries. Fails here, before
    any work, when the preset's optional package or credentials are missing."""
    preset = get_preset(settings.preset) if settings.preset else None
    if preset is not None:
        try:
            check_credentials(preset, environ)
        except PresetError as err:
            raise CatalogError(str(err)) from err
    if settings.kind == "geoparquet":
        return GeoparquetCatalog(settings.url, **options)
    preset = preset or preset_for_url(settings.url)
    hints = preset.rate if preset else RateHints()
    params: dict[str, Any] = {
        "headers": search_headers(preset, environ),
        "timeout": settings.search_timeout_s,
        "max_retries": settings.search_retries,
        "page_size": hints.page_size,
        "requests_per_second": settings.requests_per_second or hints.requests_per_second,
    }
    params.update(options)
    return StacApiCatalog(settings.url, **params)

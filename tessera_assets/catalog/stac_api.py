"""The STAC API backend: searches through pystac-client, paged by us so that every page
request is retried on its own under the shared :mod:`tessera_assets.retry` policy, and
paced to a provider's rate limit."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pystac

from tessera_assets.catalog.base import (
    BBox,
    CatalogError,
    TimeLike,
    check_bbox,
    check_collections,
    datetime_interval,
    sort_items,
)
from tessera_assets.retry import TRANSIENT_STATUSES, RetryPolicy, is_timeout, is_transient

T = TypeVar("T")


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

    Two layers of retries: urllib3 retries each HTTP request on 429/5xx (honouring
    ``Retry-After`` up to ``max_backoff``, so a server asking for an hour cannot stall a
    run), and each page request is retried under the shared retry policy, because a body
    cut off mid-transfer or a dropped connection is not covered by urllib3 (pystac-client
    alone loses the whole search: with 20 % cut-off bodies 23 of 40 four-page searches
    failed, 0 with page retries). Errors that retrying cannot fix (4xx, bad parameters)
    fail at once. ``requests_per_second`` paces requests to a provider's limit.
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
        self.policy = RetryPolicy(attempts=self.max_retries + 1, backoff_s=backoff,
                                  max_backoff_s=max_backoff, sleep=sleep, rng=random.Random(seed))
        self._pacer = _Pacer(requests_per_second, sleep) if requests_per_second else None
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
            read=0,  # read timeouts are retried per page instead: no timeout x retries blow-up
            connect=0,  # so are refused connections: 5 x 5 tries took 86 s on a closed port
            backoff_factor=self.backoff,
            backoff_max=self.max_backoff,
            status_forcelist=TRANSIENT_STATUSES,
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
            "collections": check_collections(collections),
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
        """One request under the retry policy, its failure turned into a CatalogError that
        says whether the API rejected the search or kept failing."""

        def counted(attempt: int, err: BaseException, delay: float) -> None:
            self.retries += 1

        try:
            return self.policy.call(fn, what=f"STAC search at {self.url}: {what}",
                                    on_retry=counted)
        except Exception as err:
            if not is_transient(err):
                raise CatalogError(
                    f"STAC API {self.url} rejected the search {params} ({what}): {err}"
                ) from err
            how = "timed out" if is_timeout(err) else "failed"
            raise CatalogError(
                f"STAC search at {self.url} {how} after {self.policy.attempts} attempts ({what}; "
                f"timeout {self.timeout} s each) for {params}: {err}"
            ) from err

    def has_collection(self, collection: str) -> bool:
        """Whether ``GET {url}/collections/{id}`` finds the collection (404: no), under the
        same timeout and retries as searches."""
        import requests

        url = f"{self.url.rstrip('/')}/collections/{collection}"

        def get() -> bool:
            if self._pacer is not None:
                self._pacer(None)
            response = requests.get(url, headers=self.headers, timeout=self.timeout)
            if response.status_code == 404:
                return False
            response.raise_for_status()
            return True

        return self._request(get, {"collection": collection}, f"GET {url}")

    def __repr__(self) -> str:
        return f"StacApiCatalog({self.url!r})"


def _follow(stac_io: Any, link: dict[str, Any], body: dict[str, Any]
            ) -> Callable[[], dict[str, Any]]:
    """A request for a ``next`` link (GET, or POST with its body, merged when it says so)."""
    target = pystac.Link.from_dict(link)
    return lambda: stac_io.read_json(target, parameters=body)

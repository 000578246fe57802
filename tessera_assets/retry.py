"""One retry policy (DESIGN §6) for catalog requests and granule (COG) reads.

Both fail the same ways: 408/429/5xx answers, timeouts, dropped or cut-off transfers. Those
are retried with exponential backoff and jitter; anything else (4xx, files GDAL cannot
parse, bugs) fails at once, since another attempt cannot fix it. tenacity runs the loop;
this module decides what is transient and how long to wait.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import tenacity

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_STATUSES: frozenset[int] = frozenset({408, 429, *range(500, 600)} - {501, 505})
"""HTTP statuses worth another attempt: request timeout, too many requests, server errors
(but not 501 Not Implemented or 505 HTTP Version Not Supported, which say "never")."""

_GDAL_STATUS = re.compile(r"http response code:\s*(\d{3})")

TRANSIENT_MARKERS = (
    "timed out", "timeout", "connection", "transfer closed", "recv failure", "reset by peer",
    "empty reply", "could not resolve host",
)
"""Message fragments of network failures (curl's, through GDAL, and Python's)."""

PERMANENT_MARKERS = (
    "no such file", "does not exist", "not recognized as", "not a supported file format",
    "not allowed", "access denied", "forbidden", "tiffreaddirectory", "corrupt",
)
"""Read errors another attempt cannot fix: missing or forbidden files, files GDAL cannot
parse or whose structure is corrupt."""

CUT_OFF_MARKERS = (
    "tifffilltile", "tiffreadencodedtile", "tiff read error", "ireadblock failed",
    "read error at", "got 0 bytes", "short read", "read failed",
)
"""What GDAL reports when a tile's bytes did not all arrive (``TIFFFillTile: Read error at
row …; got 0 bytes, expected N``): a download cut off once looks exactly like a truncated
file, so it is retried, and only a file that fails the same way after the retries is
unreadable (checked after :data:`PERMANENT_MARKERS`)."""


def error_chain(err: BaseException) -> list[BaseException]:
    """``err`` and its causes/contexts, outermost first (cycles cut)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        chain.append(e)
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return chain


def describe(err: BaseException, limit: int = 400) -> str:
    """One line naming ``err`` and its root cause: rasterio reports a failed read as
    ``Read failed. See previous exception for details.`` and GDAL's own text (``TIFFFillTile:
    Read error at row …; got 0 bytes``) is only in the chain, so skip reasons and errors keep
    the innermost message too. The root is kept whole when the line must be shortened."""
    chain = error_chain(err)
    outer = f"{type(err).__name__}: {err}".replace("\n", " ")
    root_err = chain[-1]
    if len(chain) == 1 or str(root_err) in str(err):
        return outer if len(outer) <= limit else outer[: limit - 1] + "…"
    root = f"{type(root_err).__name__}: {root_err}".replace("\n", " ")
    room = limit - len(root) - len(" <- ")
    if room < 20:  # no room for both: the root says more
        return root if len(root) <= limit else root[: limit - 1] + "…"
    if len(outer) > room:
        outer = outer[: room - 1] + "…"
    return f"{outer} <- {root}"


def http_status(err: BaseException) -> int | None:
    """The HTTP error status (>= 400) an error reports: pystac-client's ``status_code``, a
    requests response's, or GDAL's ``HTTP response code: NNN``; the outermost one wins."""
    for e in error_chain(err):
        status = getattr(e, "status_code", None)
        if status is None:
            status = getattr(getattr(e, "response", None), "status_code", None)
        if not isinstance(status, int):
            found = _GDAL_STATUS.search(str(e).lower())
            status = int(found.group(1)) if found else None
        if status is not None and status >= 400:
            return status
    return None


@functools.cache
def _network_errors() -> tuple[type[BaseException], ...]:
    """Transport failures: dropped, refused or timed-out connections, cut-off or garbled
    bodies (imported lazily: only needed once something has failed)."""
    import requests
    import urllib3

    return (
        requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError, requests.exceptions.RetryError,
        urllib3.exceptions.HTTPError, json.JSONDecodeError, ConnectionError, TimeoutError,
    )


@functools.cache
def _gdal_errors() -> tuple[type[BaseException], ...]:
    """Errors GDAL reads raise through rasterio (and odc-stac, which re-raises them)."""
    import rasterio.errors
    from rasterio._err import CPLE_BaseError

    return (rasterio.errors.RasterioError, CPLE_BaseError)


@functools.cache
def _api_error() -> type[BaseException]:
    from pystac_client.exceptions import APIError

    return APIError


def _bare_api_error(e: BaseException) -> bool:
    """pystac-client turns transport failures into an ``APIError`` without a status."""
    return isinstance(e, _api_error()) and getattr(e, "status_code", None) is None


def is_transient(err: BaseException) -> bool:
    """Whether another attempt may succeed.

    In order: an HTTP status decides (408/429/5xx yes, other 4xx no); transport failures
    and network messages are transient; known-permanent read errors are not; cut-off and
    short tile reads are; other GDAL read errors are (5xx and cut-off transfers surface as
    generic read errors); anything else is not (a bug or bad parameters)."""
    if not isinstance(err, Exception):
        return False  # KeyboardInterrupt, SystemExit
    status = http_status(err)
    if status is not None:
        return status in TRANSIENT_STATUSES
    chain = error_chain(err)
    if any(isinstance(e, _network_errors()) or _bare_api_error(e) for e in chain):
        return True
    text = " ".join(str(e) for e in chain).lower()
    if any(m in text for m in TRANSIENT_MARKERS):
        return True
    if any(m in text for m in PERMANENT_MARKERS):
        return False
    if any(m in text for m in CUT_OFF_MARKERS):
        return True
    return any(isinstance(e, _gdal_errors()) for e in chain)


def is_timeout(err: BaseException) -> bool:
    """Whether a failure was a timeout (for error messages: "timed out" vs "failed")."""
    import requests

    return any(isinstance(e, requests.Timeout | TimeoutError) or "timed out" in str(e).lower()
               for e in error_chain(err))


class JitteredExponential(tenacity.wait.wait_base):
    """``min(max_s, base_s * 2**(n-1))`` before retry ``n``, times a jitter in [0.5, 1.5):
    retries of many clients spread out instead of arriving together."""

    def __init__(self, base_s: float, max_s: float, rng: random.Random) -> None:
        self.base_s, self.max_s, self.rng = base_s, max_s, rng

    def nominal(self, attempt: int) -> float:
        return min(self.max_s, self.base_s * 2 ** (attempt - 1))

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return self.nominal(retry_state.attempt_number) * (0.5 + self.rng.random())


OnRetry = Callable[[int, BaseException, float], None]
"""Called before each wait with (failed attempt number, its error, the delay)."""


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all while failures are ``transient``, waiting
    :class:`JitteredExponential` delays in between. The last error, or the first permanent
    one, is raised unchanged."""

    attempts: int
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    transient: Callable[[BaseException], bool] = is_transient
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"a retry policy needs at least 1 attempt, got {self.attempts}")

    def call(self, fn: Callable[[], T], *, what: str = "request",
             on_retry: OnRetry | None = None) -> T:
        """``fn()``, retried per this policy; ``what`` names it in the log."""

        def before_sleep(state: tenacity.RetryCallState) -> None:
            err = state.outcome.exception() if state.outcome else None
            delay = state.upcoming_sleep
            assert err is not None
            log.warning("%s failed (attempt %d/%d: %s); retrying in %.2f s",
                        what, state.attempt_number, self.attempts, err, delay)
            if on_retry is not None:
                on_retry(state.attempt_number, err, delay)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=JitteredExponential(self.backoff_s, self.max_backoff_s, self.rng),
            retry=tenacity.retry_if_exception(self.transient),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(fn)


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
    """Shorthand for ``RetryPolicy(...).call(fn)``."""
    policy = RetryPolicy(attempts, backoff_s, max_backoff_s, transient, sleep,
                         rng or random.Random())
    return policy.call(fn, what=what)

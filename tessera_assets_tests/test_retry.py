"""The one retry policy (DESIGN §6) shared by catalog requests and granule reads: which
failures are transient, how long it waits, and that it stops when it should."""

from __future__ import annotations

import json
import logging
import random

import pytest
import rasterio.errors
import requests
import urllib3
from pystac_client.exceptions import APIError
from rasterio._err import CPLE_HttpResponseError, CPLE_OpenFailedError

from tessera_assets.ingest.cog_reading import ReadConfig
from tessera_assets.retry import (
    TRANSIENT_STATUSES,
    JitteredExponential,
    RetryPolicy,
    http_status,
    is_timeout,
    is_transient,
)


def _api_error(status: int | None) -> APIError:
    err = APIError("server said no")
    if status is not None:
        err.status_code = status
    return err


def _http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} error", response=response)


class Flaky:
    """Fails with each error of ``errors`` in turn, then returns ``"ok"``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


# --------------------------------------------------------------------------- classifier


@pytest.mark.parametrize(("status", "transient"), [
    (408, True), (429, True), (500, True), (502, True), (503, True), (504, True), (599, True),
    (400, False), (401, False), (403, False), (404, False), (416, False), (501, False),
    (505, False),
])
def test_http_statuses(status: int, transient: bool) -> None:
    assert (status in TRANSIENT_STATUSES) is transient
    for err in (_api_error(status), _http_error(status),
                rasterio.errors.RasterioIOError(f"HTTP response code: {status}")):
        assert http_status(err) == status
        assert is_transient(err) is transient, (type(err).__name__, status)


def test_the_outermost_status_decides_and_success_codes_are_ignored() -> None:
    outer = _api_error(404)
    outer.__cause__ = _http_error(503)
    assert http_status(outer) == 404 and not is_transient(outer)
    cut = rasterio.errors.RasterioIOError("HTTP response code: 206; transfer closed early")
    assert http_status(cut) is None and is_transient(cut)


@pytest.mark.parametrize("err", [
    requests.ConnectionError("refused"),
    requests.ReadTimeout("read timed out"),
    requests.exceptions.ChunkedEncodingError("cut off"),
    urllib3.exceptions.ProtocolError("Connection aborted."),
    json.JSONDecodeError("Unterminated string", '{"a": "', 6),  # a truncated page body
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError("timed out"),
    APIError("HTTPConnectionPool: Max retries exceeded"),  # pystac-client, no status
])
def test_transport_failures_are_transient(err: BaseException) -> None:
    assert is_transient(err)


@pytest.mark.parametrize(("err", "transient"), [
    (rasterio.errors.RasterioIOError("Read or write failed. /vsicurl/x.tif"), True),
    (CPLE_HttpResponseError(1, 11, "HTTP response code: 503"), True),
    (RuntimeError("CURL error: Could not resolve host: example.com"), True),
    (CPLE_OpenFailedError(4, 4, "x.tif: No such file or directory"), False),
    (rasterio.errors.RasterioIOError("TIFFReadDirectory: corrupt directory"), False),
    (rasterio.errors.RasterioIOError("IReadBlock failed at X offset 0"), True),  # cut off (10.4)
])
def test_gdal_read_errors(err: BaseException, transient: bool) -> None:
    assert is_transient(err) is transient


@pytest.mark.parametrize("err", [
    ValueError("bad bbox"), KeyError("red"), FileNotFoundError("x.tif"), KeyboardInterrupt(),
])
def test_anything_else_is_permanent(err: BaseException) -> None:
    assert not is_transient(err)


def test_wrapped_errors_are_classified_by_their_cause() -> None:
    wrapper = RuntimeError("loading the day failed")
    wrapper.__cause__ = requests.ConnectionError("reset")
    assert is_transient(wrapper)
    wrapper.__cause__ = _api_error(400)
    assert not is_transient(wrapper)
    loop = RuntimeError("a")
    loop.__context__ = RuntimeError("b")
    loop.__context__.__context__ = loop  # a cycle must not hang the classifier
    assert not is_transient(loop)


def test_timeouts_are_recognised() -> None:
    assert is_timeout(requests.ReadTimeout("x"))
    inner = APIError("HTTPConnectionPool(host='h', port=1): Read timed out. (read timeout=0.2)")
    assert is_timeout(inner)
    assert not is_timeout(requests.ConnectionError("refused"))


# --------------------------------------------------------------------------- backoff


def test_delays_grow_exponentially_with_jitter_and_a_cap() -> None:
    wait = JitteredExponential(0.5, 3.0, random.Random(7))
    assert [wait.nominal(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    policy = RetryPolicy(attempts=6, backoff_s=0.5, max_backoff_s=3.0, sleep=(sleeps := []).append,
                         rng=random.Random(7))
    assert policy.call(Flaky(*[TimeoutError("t")] * 5)) == "ok"
    assert len(sleeps) == 5
    for n, delay in enumerate(sleeps, start=1):
        assert 0.5 * wait.nominal(n) <= delay < 1.5 * wait.nominal(n)
    assert len({round(d / wait.nominal(n), 6) for n, d in enumerate(sleeps, 1)}) == 5  # jittered
    again: list[float] = []
    RetryPolicy(attempts=6, backoff_s=0.5, max_backoff_s=3.0, sleep=again.append,
                rng=random.Random(7)).call(Flaky(*[TimeoutError("t")] * 5))
    assert again == sleeps  # a seeded policy waits reproducibly


# --------------------------------------------------------------------------- the loop


def test_transient_failures_are_retried_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[int, str, float]] = []
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=4, backoff_s=0.01, sleep=sleeps.append, rng=random.Random(0))
    fn = Flaky(_api_error(503), requests.ConnectionError("reset"))
    with caplog.at_level(logging.WARNING, logger="tessera_assets.retry"):
        result = policy.call(fn, what="page 2",
                             on_retry=lambda n, err, delay: seen.append((n, str(err), delay)))
    assert result == "ok" and fn.calls == 3
    assert [(n, msg) for n, msg, _ in seen] == [(1, "server said no"), (2, "reset")]
    assert [d for _, _, d in seen] == sleeps
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["page 2 failed"] * 2
    assert "attempt 1/4" in caplog.records[0].getMessage()


def test_the_last_error_is_raised_unchanged_when_attempts_run_out() -> None:
    last = requests.ConnectionError("third")
    fn = Flaky(TimeoutError("first"), TimeoutError("second"), last)
    sleeps: list[float] = []
    with pytest.raises(requests.ConnectionError) as err:
        RetryPolicy(attempts=3, backoff_s=0.0, sleep=sleeps.append).call(fn)
    assert err.value is last and fn.calls == 3 and len(sleeps) == 2


def test_a_permanent_error_stops_at_once_even_after_transient_ones() -> None:
    bad = _api_error(400)
    fn = Flaky(TimeoutError("slow"), bad)
    with pytest.raises(APIError) as err:
        RetryPolicy(attempts=5, backoff_s=0.0, sleep=lambda s: None).call(fn)
    assert err.value is bad and fn.calls == 2


def test_a_custom_classifier_and_one_attempt() -> None:
    fn = Flaky(ValueError("flaky by our own definition"))
    policy = RetryPolicy(attempts=2, backoff_s=0.0, sleep=lambda s: None,
                         transient=lambda e: isinstance(e, ValueError))
    assert policy.call(fn) == "ok" and fn.calls == 2
    once = Flaky(TimeoutError("t"))
    with pytest.raises(TimeoutError):
        RetryPolicy(attempts=1, sleep=pytest.fail).call(once)  # never sleeps
    assert once.calls == 1
    with pytest.raises(ValueError, match="at least 1 attempt"):
        RetryPolicy(attempts=0)


def test_read_config_policy_comes_from_the_day_settings() -> None:
    policy = ReadConfig(day_retries=3, day_backoff_s=0.25, day_max_backoff_s=4.0).retry_policy()
    assert (policy.attempts, policy.backoff_s, policy.max_backoff_s) == (4, 0.25, 4.0)
    assert policy.transient is is_transient

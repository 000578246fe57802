"""Bounded waits (issue 10.6): signing a Planetary Computer href stalled a run for 7 min 23 s
inside the ``planetary-computer`` package's own retries. The SAS token request now takes the
read timeout and the project's retry policy: against a token endpoint that accepts connections
and never answers, a cube fails (``on_unreadable='fail'``) or skips the scenes (``'skip'``)
within the configured bound, and the reason names the token request.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pystac
import pytest

from tessera_assets.catalog.signing import (
    PC_SAS_URL_ENV,
    SigningError,
    forget_tokens,
    needs_signing,
    sas_token,
    signed,
)
from tessera_assets.ingest.cog_reading import ReadConfig
from tessera_assets.ingest.cubes import IngestError, s2_cube
from tessera_assets.retry import RetryPolicy
from tessera_assets.sources.manifest import build_manifest
from tessera_assets_tests.fixtures import stac_fixture_dir
from tessera_assets_tests.stacapi.archive import LOCATIONS

TIMEOUT_S = 1
PC_ITEMS = "planetary-computer__sentinel-2-l2a__itemcollection-T13TDE-20240823-20240825.json"


@contextmanager
def stalling_endpoint() -> Iterator[str]:
    """A loopback socket that accepts every connection and never sends a byte."""
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    server.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/api/sas/v1/token"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


@contextmanager
def token_endpoint() -> Iterator[tuple[str, list[str]]]:
    """A loopback SAS token service that answers at once; yields its URL and the paths asked."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = json.dumps(
                {"token": "st=2026&se=2099&sp=rl&sig=fake", "msft:expiry": "2099-01-01T00:00:00Z"}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/sas/v1/token", asked
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _fresh_tokens() -> Iterator[None]:
    forget_tokens()
    yield
    forget_tokens()


def _pc_manifest():
    """The real Planetary Computer S2 items over Colorado (unsigned blob hrefs)."""
    doc = json.loads((stac_fixture_dir() / PC_ITEMS).read_text())
    items = [pystac.Item.from_dict(f) for f in doc["features"]]
    tile = next(loc for loc in LOCATIONS if loc.name == "colorado").tile
    manifest = build_manifest(tile, 2024, {"sentinel-2-l2a": items})
    assert manifest.counts()["s2"] >= 2
    assert all(
        needs_signing(a.href)
        for it in manifest.items
        for k, a in it.assets.items()
        if k in ("B04", "SCL")
    )
    return manifest, tile


def _read(on_unreadable: str, check_assets: bool) -> ReadConfig:
    return ReadConfig(
        timeout_s=TIMEOUT_S,
        day_retries=1,
        day_backoff_s=0.1,
        day_max_backoff_s=0.1,
        on_unreadable=on_unreadable,
        check_assets=check_assets,
    )


def bound_s(read: ReadConfig) -> float:
    """What the settings allow one token request to wait: every attempt's timeout (connect
    and read may each take it) plus the backoffs, with a second of slack."""
    attempts = read.day_retries + 1
    return attempts * 2 * read.timeout_s + read.day_retries * read.day_max_backoff_s * 1.5 + 1


def test_token_request_obeys_timeout_and_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    with stalling_endpoint() as url:
        monkeypatch.setenv(PC_SAS_URL_ENV, url)
        policy = RetryPolicy(attempts=2, backoff_s=0.05, max_backoff_s=0.05)
        t0 = time.monotonic()
        with pytest.raises(SigningError, match="timed out"):
            sas_token("sentinel2l2a01", "sentinel2-l2", timeout_s=0.5, policy=policy)
        first = time.monotonic() - t0
        t0 = time.monotonic()  # the same container again: the failure is remembered
        with pytest.raises(SigningError, match="token request"):
            sas_token("sentinel2l2a01", "sentinel2-l2", timeout_s=0.5, policy=policy)
        again = time.monotonic() - t0
    assert 1.0 <= first < 2 * 2 * 0.5 + 0.1 + 1, first
    assert again < 0.1, again


def test_signing_against_a_live_token_service(monkeypatch: pytest.MonkeyPatch) -> None:
    manifest, _ = _pc_manifest()
    with token_endpoint() as (url, asked):
        monkeypatch.setenv(PC_SAS_URL_ENV, url)
        t0 = time.monotonic()
        ready = signed(manifest.items)
        seconds = time.monotonic() - t0
    href = ready[0].assets["B04"].href
    assert href.endswith("?st=2026&se=2099&sp=rl&sig=fake") and not needs_signing(href)
    assert manifest.items[0].assets["B04"].href.split("?")[0] == href.split("?")[0]
    assert "sig=" not in manifest.items[0].assets["B04"].href  # the manifest stays unsigned
    assert len(asked) == len(
        {
            (a.href.split("/")[2], a.href.split("/")[3])
            for it in manifest.items
            for a in it.assets.values()
            if needs_signing(a.href)
        }
    )  # one token per container, cached
    assert seconds < 2.0, seconds


@pytest.mark.parametrize("check_assets", [True, False], ids=["header-check", "read"])
def test_stalled_signing_fails_the_cube_within_the_bound(
    monkeypatch: pytest.MonkeyPatch, check_assets: bool
) -> None:
    manifest, tile = _pc_manifest()
    read = _read("fail", check_assets)
    with stalling_endpoint() as url:
        monkeypatch.setenv(PC_SAS_URL_ENV, url)
        t0 = time.monotonic()
        with pytest.raises(IngestError, match="token request") as err:
            s2_cube(manifest, tile, read=read).compute()
        seconds = time.monotonic() - t0
    assert "timed out" in str(err.value)
    assert seconds < bound_s(read) + 1, seconds


def test_stalled_signing_skips_the_scenes_within_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest, tile = _pc_manifest()
    read = _read("skip", check_assets=True)
    with stalling_endpoint() as url:
        monkeypatch.setenv(PC_SAS_URL_ENV, url)
        t0 = time.monotonic()
        cube = s2_cube(manifest, tile, read=read)
        cube.compute()
        seconds = time.monotonic() - t0
    skipped = cube.attrs["tessera:skipped_scenes"]
    assert {s["item_id"] for s in skipped} == {it.id for it in manifest.items}
    assert all("token request" in s["reason"] for s in skipped)
    assert cube.sizes["doy"] == 0
    assert seconds < bound_s(read) + 1, seconds

"""Loopback HTTP servers with fault injection: a static file server with HTTP range support
(COGs as object storage serves them) and a reverse proxy in front of a STAC API.

Faults are planned per route (a substring of the request path): the next matching requests
get the planned actions, in order, then normal service. Every request is logged with the
action taken, so tests can count retries. Loopback only; every loop is bounded.

The servers run in the test process. rasterio holds the GIL in a few GDAL calls that may do
network I/O (sidecar lookups such as ``.aux.xml`` on first metadata access) unless
``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR`` is set, which would deadlock against an in-process
server: open files only within :func:`tessera_assets.ingest.cog_reading.read_env`, as the pipeline
does.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ACTIONS = ("ok", "500", "502", "503", "504", "429", "404", "truncate", "short", "reset")
"""``truncate``: the body is cut in half and Content-Length says so (a garbled body);
``short``: Content-Length promises more than is sent, then the connection closes (a cut-off
transfer); ``reset``: the connection closes without an answer; ``slow:S``: answer after S
seconds; ``429`` carries ``Retry-After: 1``."""


@dataclass
class Served:
    method: str
    path: str
    action: str
    status: int


class FaultPlan:
    """Actions for upcoming requests, per route, and a log of what was served."""

    def __init__(self) -> None:
        self._queues: dict[str, list[str]] = {}
        self._always: dict[str, str] = {}
        self.log: list[Served] = []
        self._lock = threading.Lock()

    def push(self, route: str, *actions: str) -> None:
        for a in actions:
            if a not in ACTIONS and not a.startswith("slow:"):
                raise ValueError(f"unknown fault {a!r}")
        with self._lock:
            self._queues.setdefault(route, []).extend(actions)

    def always(self, route: str, action: str) -> None:
        with self._lock:
            self._always[route] = action

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()
            self._always.clear()
            self.log.clear()

    def take(self, path: str) -> str:
        with self._lock:
            for route, action in self._always.items():
                if route in path:
                    return action
            for route, queue in self._queues.items():
                if queue and (route == "*" or route in path):
                    return queue.pop(0)
        return "ok"

    def record(self, method: str, path: str, action: str, status: int) -> None:
        with self._lock:
            self.log.append(Served(method, path, action, status))

    def served(self, route: str = "", method: str | None = None) -> list[Served]:
        with self._lock:
            return [s for s in self.log
                    if route in s.path and (method is None or s.method == method)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def _fault(self) -> str | None:
        """Apply the planned action; returns it if the request was answered already."""
        action = self.server.plan.take(self.path)
        self._pending = action
        if action.startswith("slow:"):  # logged now: the client may give up before we answer
            self.server.plan.record(self.command, self.path, action, 0)
            time.sleep(float(action.split(":", 1)[1]))
            return None
        if action == "reset":
            self.server.plan.record(self.command, self.path, action, 0)
            self.close_connection = True
            self.connection.shutdown(2)
            return action
        if action in ("500", "502", "503", "504", "429", "404"):
            body = f'{{"code": "{action}", "description": "injected fault"}}'.encode()
            self.send_response(int(action))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if action == "429":
                self.send_header("Retry-After", "1")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.server.plan.record(self.command, self.path, action, int(action))
            return action
        return None

    def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        action = getattr(self, "_pending", "ok")
        declared = len(body)
        if action == "truncate" and self.command != "HEAD":
            body = body[: len(body) // 2]
            declared = len(body)
        elif action == "short" and self.command != "HEAD":
            body = body[: len(body) // 2]
        if not action.startswith("slow:"):  # logged first: writes fail if the client gave up
            self.server.plan.record(self.command, self.path, action, status)
        self.send_response(status)
        for k, v in headers.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(declared))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        if action == "short":
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler: type[_Handler], plan: FaultPlan, **extra: Any) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.plan = plan
        self.__dict__.update(extra)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients (GDAL) drop connections mid-body on purpose; that is not an error."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def _running(server: _Server) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- file server

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class _FileHandler(_Handler):
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if self._fault():
            return
        root: Path = self.server.root  # type: ignore[attr-defined]
        rel = urlsplit(self.path).path.lstrip("/")
        path = (root / rel).resolve()
        if root not in path.parents or not path.is_file():
            self._reply(404, {"Content-Type": "text/plain"}, b"not found")
            return
        data = path.read_bytes()
        size = len(data)
        spec = self.headers.get("Range")
        if not spec:
            self._reply(200, {"Content-Type": "image/tiff", "Accept-Ranges": "bytes"}, data)
            return
        m = _RANGE.match(spec.strip())
        if not m or (not m[1] and not m[2]):
            self._reply(416, {"Content-Range": f"bytes */{size}"}, b"")
            return
        if m[1]:
            start = int(m[1])
            end = min(int(m[2]), size - 1) if m[2] else size - 1
        else:
            start, end = max(0, size - int(m[2])), size - 1
        if start >= size or start > end:
            self._reply(416, {"Content-Range": f"bytes */{size}"}, b"")
            return
        self._reply(206, {"Content-Type": "image/tiff", "Accept-Ranges": "bytes",
                          "Content-Range": f"bytes {start}-{end}/{size}"},
                    data[start:end + 1])


@contextmanager
def file_server(root: Path, plan: FaultPlan | None = None) -> Iterator[tuple[str, FaultPlan]]:
    """Serve ``root`` over HTTP with single-range requests; yields (base URL, fault plan)."""
    plan = plan or FaultPlan()
    server = _Server(_FileHandler, plan, root=Path(root).resolve())
    with _running(server) as url:
        yield url, plan


# --------------------------------------------------------------------------- STAC proxy


class _ProxyHandler(_Handler):
    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self._fault():
            return
        host, port = self.server.upstream  # type: ignore[attr-defined]
        conn = http.client.HTTPConnection(host, port, timeout=30)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("connection", "keep-alive", "accept-encoding")}
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            self._reply(resp.status, dict(resp.getheaders()), data)
        finally:
            conn.close()


@contextmanager
def stac_proxy(upstream: str, plan: FaultPlan | None = None
               ) -> Iterator[tuple[str, FaultPlan]]:
    """A reverse proxy to ``upstream`` that keeps the client's Host header (so the API's
    paging links point back through the proxy) and injects the planned faults."""
    plan = plan or FaultPlan()
    parts = urlsplit(upstream)
    server = _Server(_ProxyHandler, plan, upstream=(parts.hostname, parts.port))
    with _running(server) as url:
        yield url, plan

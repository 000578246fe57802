"""Run real STAC APIs (stac-fastapi-geoparquet) on loopback, one port per catalog.

Runs in its own interpreter (``.venv-stacapi``: the server's pins clash with the main
environment's), so it imports nothing from this repository. Usage::

    python serve.py SPEC.json

``SPEC.json`` is ``{"extension_directory": DIR, "catalogs": {NAME: COLLECTIONS_JSON, ...}}``
(a list of collections, each with its stac-geoparquet file as a ``data`` asset). Each
catalog gets its own app on its own 127.0.0.1 port, all served by one event loop; once all
listen, one line of JSON ``{NAME: PORT, ...}`` goes to stdout. The process exits when its
stdin closes (the test process ended), so it never outlives the tests.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
from pathlib import Path


def _app(collections_json: str, extension_directory: str):
    import rustac
    from stac_fastapi.geoparquet.api import create
    from stac_fastapi.geoparquet.settings import Settings

    client = rustac.DuckdbClient(extension_directory=extension_directory,
                                 install_extensions=False)
    client.execute("SET autoinstall_known_extensions = false")
    settings = Settings(
        stac_fastapi_landing_id="loopback", stac_fastapi_title="loopback STAC API",
        stac_fastapi_description="real fixtures served for tests",
        stac_fastapi_collections_href=collections_json,
        stac_fastapi_collections_reload_seconds=3600,
    )
    return create(settings=settings, duckdb_client=client).app


async def _serve(spec: dict) -> None:
    import uvicorn

    servers, ports = [], {}
    for name, collections_json in spec["catalogs"].items():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        ports[name] = sock.getsockname()[1]
        config = uvicorn.Config(_app(collections_json, spec["extension_directory"]),
                                log_level="warning",
                                access_log=False, lifespan="on", timeout_keep_alive=30)
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        servers.append((server, sock))
    tasks = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock in servers]
    while not all(server.started for server, _ in servers):
        if any(t.done() for t in tasks):
            for t in tasks:
                if t.done() and t.exception():
                    raise t.exception()  # type: ignore[misc]
            raise RuntimeError("a server stopped while starting")
        await asyncio.sleep(0.02)
    print(json.dumps(ports), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at EOF: the parent is gone or wants us to stop
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    await stop.wait()
    for server, _ in servers:
        server.should_exit = True
    await asyncio.wait(tasks, timeout=5)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    asyncio.run(_serve(spec))


if __name__ == "__main__":
    main()

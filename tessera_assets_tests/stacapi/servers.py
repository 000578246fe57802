"""Start the loopback STAC APIs (``serve.py``) in the ``.venv-stacapi`` interpreter."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVE = Path(__file__).with_name("serve.py")
PYTHON_ENV = "TESSERA_STACAPI_PYTHON"
HOW_TO = (
    "the loopback STAC API needs its own environment (its pins clash with dagster's): run "
    "`make .venv-stacapi/.installed`, or create it with `python3.11 -m venv .venv-stacapi && "
    ".venv-stacapi/bin/pip install stac-fastapi-geoparquet==0.0.7 stac-fastapi-api==5.2.1 "
    "stac-fastapi-types==5.2.1 stac-fastapi-extensions==5.2.1 fastapi==0.144.0 "
    "starlette==0.50.0 uvicorn rustac==0.9.17 duckdb-extension-spatial==1.5.5 "
    "duckdb-extension-icu==1.5.5 duckdb-extension-parquet==1.5.5`, or point "
    f"{PYTHON_ENV} at an interpreter that has them"
)
START_TIMEOUT_S = 60.0


def stacapi_python() -> str:
    """The server interpreter; a missing one fails the test (never a silent skip)."""
    path = os.environ.get(PYTHON_ENV) or str(REPO / ".venv-stacapi" / "bin" / "python")
    if not Path(path).exists():
        pytest.fail(f"STAC API interpreter {path} not found: {HOW_TO}", pytrace=False)
    return path


@contextmanager
def stac_apis(catalogs: dict[str, Path], extension_directory: Path, workdir: Path
              ) -> Iterator[dict[str, str]]:
    """Serve each catalog folder (``collections.json`` + stac-geoparquet files) as a STAC API;
    yields {name: base URL}."""
    spec = workdir / "stacapi-spec.json"
    spec.write_text(json.dumps({
        "extension_directory": str(extension_directory),
        "catalogs": {k: str(Path(v) / "collections.json") for k, v in catalogs.items()},
    }))
    log = (workdir / "stacapi.log").open("w")
    proc = subprocess.Popen([stacapi_python(), str(SERVE), str(spec)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=log, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        line = ""
        while time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                line = proc.stdout.readline()
                break
        if not line:
            log.flush()
            raise RuntimeError(f"STAC API server did not start (exit {proc.poll()}): "
                               f"{(workdir / 'stacapi.log').read_text()[-2000:]}")
        ports = json.loads(line)
        yield {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    finally:
        if proc.stdin:
            proc.stdin.close()  # the server exits at EOF
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=10)
        log.close()

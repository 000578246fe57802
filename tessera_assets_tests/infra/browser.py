"""Headless Chromium for UI tests: Debian's ``chromium`` (``make system-deps``) driven by
Python playwright, never a browser download. Reusable by any page test (Dagster UI, maps).

``browser`` is a module-scoped fixture; ``shots`` is the folder screenshots go to: a fixed
temporary folder, ``{tmp}/tessera-screenshots/{test module}`` (printed too; under pytest-xdist
the print is captured, so CI collects the fixed path), or ``$TESSERA_SCREENSHOTS``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium_path() -> str:
    """The system Chromium; a clear failure (not a skip) when it is not installed."""
    for path in (os.environ.get("TESSERA_CHROMIUM"), *CHROMIUM_CANDIDATES):
        if path and Path(path).exists():
            return path
    found = shutil.which("chromium")
    if found:
        return found
    raise RuntimeError("no chromium: run `make system-deps` (apt-get install chromium)")


SCREENSHOTS = Path(tempfile.gettempdir()) / "tessera-screenshots"


@pytest.fixture(scope="module")
def shots(request: pytest.FixtureRequest) -> Path:
    base = Path(os.environ.get("TESSERA_SCREENSHOTS") or SCREENSHOTS)
    folder = base / request.module.__name__.rsplit(".", 1)[-1]
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """A headless Chromium for the module's tests (one process, fresh pages per test)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), headless=True,
                               args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser) -> Iterator:
    """A fresh page (1400×900) per test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    try:
        yield pg
    finally:
        context.close()

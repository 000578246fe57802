"""The read API's map page in headless Chromium: ``tessera-assets serve``'s app (uvicorn, a
free port, in a thread) over a small two-tile store; the page loads, lists the computed
tile-years, every map tile request succeeds, and the screenshot shows false colour over the
tiles' footprint (not a blank map)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import uvicorn
from PIL import Image

from tessera_assets.api.app import create_app
from tessera_assets_tests.infra.browser import browser, page, shots  # noqa: F401 (fixtures)
from tessera_assets_tests.infra.ports import free_port
from tessera_assets_tests.store_testkit import TILE_A, TILE_B
from tessera_assets_tests.test_pyramid import YEAR, _build, _fine, _settings

pytestmark = [pytest.mark.slow, pytest.mark.browser]

BACKGROUND = (0x22, 0x22, 0x33)  # the map's background colour (#223)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = _settings(tmp_path_factory.mktemp("api-browser"))
    _fine(settings)
    for tile in (TILE_A, TILE_B):
        _build(settings, tile)
    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if requests.get(f"{url}/coverage", timeout=5).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    else:
        raise AssertionError("the API did not start within 60 s")
    try:
        yield url
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def test_map_page_renders_the_false_colour_tiles(server: str, page, shots: Path) -> None:  # noqa: F811
    tiles: list[tuple[str, int]] = []
    page.on("response", lambda r: tiles.append((r.url, r.status)) if "/tiles/" in r.url else None)
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.goto(server + "/")
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_load_state("networkidle")
    page.wait_for_function("[...document.querySelectorAll('#map img')].every(i => i.complete)")
    assert "2 tile-years computed" in page.inner_text("#status")
    assert f"{TILE_A.id} {YEAR}" in page.inner_text("#list")
    assert tiles and not failed, failed
    assert all(status == 200 for _, status in tiles), tiles
    loaded = page.evaluate(
        "[...document.querySelectorAll('#map img')].filter(i => i.naturalWidth === 256).length"
    )
    assert loaded >= 1

    shot = shots / "read_api_map.png"
    page.locator("#map").screenshot(path=str(shot))
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    background = np.abs(rgb - BACKGROUND).sum(axis=-1) <= 6
    footprint_edge = (rgb == (255, 255, 0)).all(axis=-1)
    coloured = ~background & ~footprint_edge
    assert coloured.mean() > 0.01, f"map is blank ({coloured.mean():.4f} coloured), see {shot}"
    assert len(np.unique(rgb[coloured], axis=0)) > 50  # false colour varies, not one flat fill

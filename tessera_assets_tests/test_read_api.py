"""The read API (FastAPI, through httpx's TestClient) over a small store written without the
model: point queries return the stored values and their provenance, areas come back as zipped
Zarr or GeoTIFF, map tiles are PNGs from the pyramid, and bad input gets a clear 4xx."""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
import zarr
from fastapi.testclient import TestClient
from PIL import Image
from pyproj import Transformer

from tessera_assets.api.app import create_app
from tessera_assets.api.settings import ApiSettings
from tessera_assets_tests.store_testkit import LINEAGE, TILE_A, TILE_B
from tessera_assets_tests.test_geotessera_compat import _lonlat
from tessera_assets_tests.test_pyramid import YEAR, _build, _fine, _settings


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("api")
    settings = _settings(root).model_copy(update={"years": [YEAR, YEAR + 1]})
    emb, scales = _fine(settings)
    for tile in (TILE_A, TILE_B):
        _build(settings, tile)
    client = TestClient(create_app(settings, ApiSettings(max_region_pixels=5000)))
    return client, emb, scales


def _inner_bbox(tile, margin: float = 50.0) -> list[float]:
    west, south, east, north = tile.bounds
    to_ll = Transformer.from_crs(tile.crs, 4326, always_xy=True)
    w, s = to_ll.transform(west + margin, south + margin)
    e, n = to_ll.transform(east - margin, north - margin)
    return [w, s, e, n]


def test_point_query_returns_stored_values_and_provenance(api) -> None:
    client, emb, scales = api
    lon, lat = _lonlat(TILE_A, 20, 10)
    r = client.get("/embedding", params={"lon": lon, "lat": lat, "year": YEAR})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["tile"], body["row"], body["col"], body["status"]) == (
        TILE_A.id,
        20,
        10,
        "embedded",
    )
    want = emb[:, 20, 10].astype(np.float32) * scales[20, 10]
    assert np.array_equal(np.asarray(body["embedding"], np.float32), want)
    assert body["int8"] == emb[:, 20, 10].tolist() and len(body["embedding"]) == 128
    prov = body["provenance"]
    assert prov["manifest_digest"] == LINEAGE["manifest_digest"]
    assert prov["code_version"] == LINEAGE["code_version"]
    assert prov["model_family"] == "v2-nano" and prov["model_sha256"] == "cd" * 32
    assert prov["demo_weights"] is True and prov["written_at"]
    water = client.get(
        "/embedding",
        params={**dict(zip(("lon", "lat"), _lonlat(TILE_A, 1, 1), strict=True)), "year": YEAR},
    ).json()
    assert water["status"] == "not_embedded" and water["embedding"] is None


@pytest.mark.parametrize(
    ("params", "status", "text"),
    [
        ({"lon": 0.5, "lat": 95, "year": YEAR}, 400, "outside the UTM grid"),
        ({"lon": 200, "lat": 52, "year": YEAR}, 400, "not in -180..180"),
        ({"lon": "east", "lat": 52, "year": YEAR}, 422, ""),
        ({"lon": 10.0, "lat": 45.0, "year": YEAR}, 404, "no embeddings for tile"),
        ({"year": YEAR + 1}, 404, "computed years there: [2024]"),
        ({"year": 2031}, 404, "not on this store's axis"),
    ],
)
def test_point_query_errors(api, params, status, text) -> None:
    client, _, _ = api
    lon, lat = _lonlat(TILE_A, 5, 5)
    r = client.get("/embedding", params={"lon": lon, "lat": lat, **params})
    assert r.status_code == status, r.text
    assert text in r.json()["detail"] if text else True


def test_region_as_zarr_zip_and_geotiff(api, tmp_path: Path) -> None:
    client, emb, scales = api
    bbox = _inner_bbox(TILE_A, margin=200.0)  # 24 x 24 px inside A, well under the limit
    r = client.post("/region", json={"bbox": bbox, "year": YEAR, "format": "zarr"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    path = tmp_path / "region.zarr.zip"
    path.write_bytes(r.content)
    assert zipfile.is_zipfile(path)
    ds = xr.open_zarr(zarr.storage.ZipStore(path, mode="r"), consolidated=False).load()
    h, w = ds.sizes["y"], ds.sizes["x"]
    assert 20 <= h <= 26 and 20 <= w <= 26 and ds.attrs["crs"] == "EPSG:32630"
    # the window's first pixel, on the tile grid
    west, _, _, north = TILE_A.bounds
    r0 = round((north - float(ds.y[0]) - 5) / 10)
    c0 = round((float(ds.x[0]) - west - 5) / 10)
    np.testing.assert_array_equal(ds["embeddings"].values, emb[:, r0 : r0 + h, c0 : c0 + w])
    np.testing.assert_array_equal(ds["scales"].values, scales[r0 : r0 + h, c0 : c0 + w])

    t = client.post("/region", json={"bbox": bbox, "year": YEAR, "format": "geotiff"})
    assert t.status_code == 200 and t.headers["content-type"] == "image/tiff"
    with rasterio.MemoryFile(t.content) as mem, mem.open() as src:
        assert src.count == 128 and (src.height, src.width) == (h, w)
        band7 = src.read(8)
        assert src.crs.to_epsg() == 32630
    want = emb[7, r0 : r0 + h, c0 : c0 + w] * scales[r0 : r0 + h, c0 : c0 + w]
    np.testing.assert_array_equal(band7, want.astype(np.float32))


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"bbox": "whole", "year": YEAR}, 422, ""),
        ({"year": YEAR, "bbox_of": "A+B"}, 413, "exceeds the limit of 5000"),
        ({"bbox": [2.0, 52.0, 1.0, 52.1], "year": YEAR}, 400, "w<e"),
        ({"bbox": [-0.5, 52.0, 0.5, 52.1], "year": YEAR}, 400, "spans UTM zones"),
        ({"bbox": [-1.5, 40.0, -1.495, 40.004], "year": YEAR}, 404, "no committed embeddings"),
        ({"year": YEAR + 1, "bbox_of": "A"}, 404, "no committed embeddings"),
    ],
)
def test_region_errors(api, body, status, text) -> None:
    client, _, _ = api
    if body.pop("bbox_of", None) == "A":
        body["bbox"] = _inner_bbox(TILE_A, 200.0)
    elif "bbox" not in body:
        a, b = _inner_bbox(TILE_A, 0.0), _inner_bbox(TILE_B, 0.0)
        body["bbox"] = [a[0], min(a[1], b[1]), b[2], max(a[3], b[3])]
    r = client.post("/region", json=body)
    assert r.status_code == status, r.text
    assert text in str(r.json()["detail"]) if text else True


def _tile_xy(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def test_map_tiles_and_page(api) -> None:
    client, _, _ = api
    lon, lat = _lonlat(TILE_A, 32, 32)
    for z in (12, 15):  # a coarse pyramid level, then past the finest (the 10 m store)
        x, y = _tile_xy(lon, lat, z)
        r = client.get(f"/tiles/{z}/{x}/{y}.png", params={"year": YEAR})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        img = np.asarray(Image.open(io.BytesIO(r.content)))
        assert img.shape == (256, 256, 4)
        opaque = img[..., 3] == 255
        assert 0 < opaque.sum() < 256 * 256  # the tiles, and transparent space around them
        assert len(np.unique(img[opaque][:, :3], axis=0)) > 3  # false colour, not a flat fill
    assert client.get("/tiles/40/0/0.png", params={"year": YEAR}).status_code == 400
    assert client.get("/tiles/3/9/0.png", params={"year": YEAR}).status_code == 400
    assert client.get("/tiles/12/0/0.png", params={"year": YEAR + 1}).status_code == 404
    page = client.get("/")
    assert page.status_code == 200 and "/coverage" in page.text and "/tiles/" in page.text
    assert "http" not in page.text.split("<script>")[1]  # nothing fetched from elsewhere
    cov = client.get("/coverage").json()
    assert cov["years"] == [YEAR]
    assert sorted(p["tile"] for p in cov["partitions"]) == sorted([TILE_A.id, TILE_B.id])

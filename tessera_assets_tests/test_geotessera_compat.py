"""geotessera 0.11 (the published reader) opens our embeddings store unchanged and returns
exactly the values we wrote: valid → dequantised vector, NaN scale → water, never written
(+inf) → nodata. The reader runs in its own interpreter (``GEOTESSERA_PYTHON``)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer

from tessera_assets.grid import PIXEL_SIZE, ZONE_ORIGIN_X, ZONE_ORIGIN_Y
from tessera_assets.model.families import clamp_for_family
from tessera_assets.products.coarse import coarse_embeddings_schema, coarsen_partition
from tessera_assets.products.embeddings import EmbeddingsStore, dequantise, embeddings_schema
from tessera_assets_tests.store_testkit import LINEAGE, TILE_A, TILE_B

REPO = Path(__file__).resolve().parents[1]
READER = Path(__file__).with_name("geotessera_reader.py")
HOW_TO = (
    "create it with `python3.12 -m venv .venv-geotessera && "
    ".venv-geotessera/bin/pip install geotessera==0.11.0` (or point GEOTESSERA_PYTHON at an "
    "interpreter that has geotessera 0.11); set TESSERA_SKIP_GEOTESSERA=1 to skip explicitly"
)
YEAR = 2024


def _geotessera_python() -> str:
    if os.environ.get("TESSERA_SKIP_GEOTESSERA") == "1":
        pytest.skip("TESSERA_SKIP_GEOTESSERA=1: geotessera compatibility check skipped on request")
    path = os.environ.get("GEOTESSERA_PYTHON") or str(REPO / ".venv-geotessera" / "bin" / "python")
    if not Path(path).exists():
        pytest.fail(f"geotessera interpreter {path} not found: {HOW_TO}", pytrace=False)
    return path


def _partition(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    emb = rng.integers(-127, 128, (128, 64, 64), dtype=np.int8)
    scales = rng.uniform(0.001, 0.05, (64, 64)).astype(np.float32)
    return emb, scales


def _lonlat(tile, row: int, col: int, res: float = PIXEL_SIZE) -> list[float]:
    west, _, _, north = tile.bounds
    e, n = west + (col + 0.5) * res, north - (row + 0.5) * res
    lon, lat = Transformer.from_crs(tile.crs, 4326, always_xy=True).transform(e, n)
    return [lon, lat]


def _write_fine_store(root: str) -> tuple[EmbeddingsStore, dict]:
    """Two neighbouring tiles, one year: random values, water (NaN) in A, a +inf hole in B."""
    schema = embeddings_schema(
        [YEAR, YEAR + 1], 64, model_name="tessera-v1.1", build_version="tessera_assets-test"
    )
    store = EmbeddingsStore(root, schema)
    emb_a, sc_a = _partition(1)
    emb_b, sc_b = _partition(2)
    sc_a[0:8, 0:8] = np.nan  # water in A
    sc_b[10:15, 10:15] = np.inf  # a hole in B never filled (+inf, like unwritten land)
    counts = np.ones((64, 64), np.uint16)
    written = {TILE_A: (emb_a, sc_a), TILE_B: (emb_b, sc_b)}
    for tile, (emb, sc) in written.items():
        store.write_embeddings(
            tile,
            YEAR,
            embeddings=emb,
            scales=sc,
            s2_obs_count=counts,
            s1_obs_count=counts,
            lineage=LINEAGE,
        )
    return store, written


def _run_reader(python: str, store_url: str, points: dict, tmp_path: Path) -> tuple[dict, dict]:
    """Run the geotessera reader on ``points`` and a bbox 150 m around both tiles."""
    west, south, _, north = TILE_A.bounds
    _, _, east, _ = TILE_B.bounds
    to_ll = Transformer.from_crs(TILE_A.crs, 4326, always_xy=True)
    w, s = to_ll.transform(west - 150, south - 150)
    e, n = to_ll.transform(east + 150, north + 150)
    request = {
        "year": YEAR,
        "zone": 30,
        "bbox": [w, s, e, n],
        "points": [p[0] for p in points.values()],
    }
    req, out = tmp_path / "request.json", tmp_path / "out.npz"
    req.write_text(json.dumps(request))
    proc = subprocess.run(
        [python, str(READER), store_url, str(req), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"geotessera reader failed:\n{proc.stderr[-4000:]}"
    got = dict(np.load(out))
    return got, json.loads(str(got["meta"]))


def _check_points(got: dict, meta: dict, points: dict) -> None:
    assert meta["statuses"] == [p[1] for p in points.values()]
    for i, (name, (_, status, expected)) in enumerate(points.items()):
        for key in ("probe", "sample_at", "sample_points"):
            vec = got[key][i]
            if status == "valid":
                assert np.array_equal(vec, expected.astype(np.float32)), f"{key} {name}"
            else:
                assert np.isnan(vec).all(), f"{key} {name}: expected NaN"


def _check_region(got: dict, tiles: dict, res: float) -> None:
    """read_region's window, compared pixel for pixel with the dequantised tiles we wrote."""
    mosaic, tr = got["mosaic"], got["transform"]
    assert tr[0] == res and tr[4] == -res
    col0 = round((tr[2] - ZONE_ORIGIN_X) / res)
    row0 = round((ZONE_ORIGIN_Y - tr[5]) / res)
    h, w_px = mosaic.shape[:2]
    expected = np.full((h, w_px, 128), np.nan, np.float32)
    for tile, (emb, sc) in tiles.items():
        ys, xs = tile.pixel_window(res)
        r0, c0, n = ys.start - row0, xs.start - col0, ys.stop - ys.start
        assert r0 > 0 and c0 > 0 and r0 + n < h and c0 + n < w_px, "bbox must surround both tiles"
        expected[r0 : r0 + n, c0 : c0 + n] = dequantise(emb, sc).transpose(1, 2, 0)
    assert np.array_equal(mosaic, expected, equal_nan=True)
    assert np.isnan(mosaic[: TILE_A.pixel_window(res)[0].start - row0]).all()  # unwritten margin


def test_geotessera_reads_our_store(tmp_path) -> None:
    python = _geotessera_python()
    store, written = _write_fine_store(str(tmp_path))
    (emb_a, sc_a), (emb_b, sc_b) = written[TILE_A], written[TILE_B]
    points = {
        "valid A": (_lonlat(TILE_A, 20, 10), "valid", emb_a[:, 20, 10] * sc_a[20, 10]),
        "valid B": (_lonlat(TILE_B, 40, 50), "valid", emb_b[:, 40, 50] * sc_b[40, 50]),
        "water A": (_lonlat(TILE_A, 3, 3), "water", None),
        "hole B": (_lonlat(TILE_B, 12, 12), "nodata", None),
        "unwritten": (_lonlat(TILE_A, -40, 10), "nodata", None),  # 400 m north of A
    }
    got, meta = _run_reader(python, store.url, points, tmp_path)
    assert meta["geotessera_version"].startswith("0.11")
    assert meta["years"] == [YEAR, YEAR + 1] == meta["zone_years"]
    assert meta["model_version"] == "tessera-v1.1"
    assert meta["build_version"] == "tessera_assets-test"
    assert meta["n_bands"] == 128 and meta["depths"] == {"128": "embeddings"}
    assert meta["zone_crs"] == meta["region_crs"] == "EPSG:32630"
    assert meta["zone_pixel_size"] == 10.0
    _check_points(got, meta, points)
    _check_region(got, written, PIXEL_SIZE)


def test_geotessera_reads_our_coarse_store(tmp_path) -> None:
    """The 80 m coarse product in the same layout: geotessera reads it at its own resolution."""
    python = _geotessera_python()
    fine, _ = _write_fine_store(str(tmp_path))
    schema = coarse_embeddings_schema(
        [YEAR, YEAR + 1], 64, 80.0, model_name="tessera-v1.1", build_version="tessera_assets-test"
    )
    coarse = EmbeddingsStore(str(tmp_path), schema, "embeddings_coarse")
    coarsened = {}
    for tile in (TILE_A, TILE_B):
        coarsen_partition(fine, coarse, tile, YEAR, LINEAGE, clamp=clamp_for_family("v1.1"))
        ds = coarse.read_tile(tile, YEAR).compute()
        coarsened[tile] = (ds["embeddings"].values, ds["scales"].values)
    (emb_a, sc_a), (emb_b, sc_b) = coarsened[TILE_A], coarsened[TILE_B]
    assert np.isnan(sc_a[0, 0]) and np.isfinite(sc_b[1, 1])  # water block; partly-filled block
    points = {
        "valid A": (_lonlat(TILE_A, 5, 2, 80.0), "valid", emb_a[:, 5, 2] * sc_a[5, 2]),
        "valid B": (_lonlat(TILE_B, 1, 1, 80.0), "valid", emb_b[:, 1, 1] * sc_b[1, 1]),
        "water A": (_lonlat(TILE_A, 0, 0, 80.0), "water", None),
        "unwritten": (_lonlat(TILE_A, -5, 3, 80.0), "nodata", None),
    }
    got, meta = _run_reader(python, coarse.url, points, tmp_path)
    assert meta["zone_pixel_size"] == 80.0 and meta["zone_crs"] == "EPSG:32630"
    _check_points(got, meta, points)
    _check_region(got, coarsened, 80.0)

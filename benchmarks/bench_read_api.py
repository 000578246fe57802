"""Point-query latency and throughput of the read API against a store on an S3-protocol server
(moto, loopback), written without the model.

    .venv/bin/python benchmarks/bench_read_api.py [--tile-size 256] [--queries 300]

Writes a v2-layout store (2 tiles × 1 year, with pyramid) to ``s3://tessera/bench``, then times
``GET /embedding`` through the ASGI app (httpx TestClient: no network stack between client and
app, every store read over HTTP to moto). The first query of a tile also verifies the tile's
shard hashes (a whole-shard read); it is reported apart.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from fastapi.testclient import TestClient
from pyproj import Transformer

from tessera_assets.api.app import create_app
from tessera_assets.api.settings import ApiSettings
from tessera_assets.config import PipelineSettings
from tessera_assets.grid import Tile
from tessera_assets.products.depths import with_prefixes
from tessera_assets.products.pyramid import pyramid_datasets, write_level
from tessera_assets.products.registry import ModelStamp, open_pyramid, open_store
from tessera_assets_tests.infra.s3 import s3_server

YEAR = 2024
LINEAGE = {"manifest_digest": "sha256:bench", "code_version": "bench", "config_digest": "bench"}


def _write(settings: PipelineSettings, tiles: list[Tile]) -> None:
    stamp = ModelStamp(family="v2-nano", sha256="ab" * 32, demo_weights=True)
    fine = open_store("embeddings", settings, stamp)
    n = settings.tile_size
    rng = np.random.default_rng(0)
    for tile in tiles:
        data = {
            "embeddings": rng.integers(-127, 128, (128, n, n), dtype=np.int8),
            "scales": rng.uniform(0.001, 0.05, (n, n)).astype(np.float32),
            "s2_obs_count": np.ones((n, n), np.uint16),
            "s1_obs_count": np.ones((n, n), np.uint16),
        }
        fine.write_tile(tile, YEAR, with_prefixes(data, fine.depths), LINEAGE)
        levels = open_pyramid(settings, stamp)
        for store, ds in zip(
            levels,
            pyramid_datasets(fine, levels, tile, YEAR, clamp=127, lineage=LINEAGE),
            strict=True,
        ):
            write_level(store, tile, YEAR, ds)


def _points(tiles: list[Tile], k: int, seed: int = 1) -> list[tuple[float, float]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(k):
        tile = tiles[i % len(tiles)]
        west, south, east, north = tile.bounds
        x, y = rng.uniform(west + 5, east - 5), rng.uniform(south + 5, north - 5)
        out.append(Transformer.from_crs(tile.crs, 4326, always_xy=True).transform(x, y))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tile-size", type=int, default=256)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    with s3_server() as s3:
        settings = PipelineSettings(
            root=f"s3://{s3.bucket}/bench",
            years=[YEAR],
            tile_size=args.tile_size,
            coarse_resolution=160.0,
            storage_options=s3.storage_options,
        )
        ts = args.tile_size  # two neighbouring tiles near 2.5°W 52.2°N
        tiles = [
            Tile(zone=30, col=834 * 64 // ts + i, row=5650 * 64 // ts, size=ts) for i in range(2)
        ]
        t0 = time.perf_counter()
        _write(settings, tiles)
        write_s = time.perf_counter() - t0
        client = TestClient(create_app(settings, ApiSettings()))

        def query(p: tuple[float, float]) -> float:
            t = time.perf_counter()
            r = client.get("/embedding", params={"lon": p[0], "lat": p[1], "year": YEAR})
            assert r.status_code == 200 and len(r.json()["embedding"]) == 128, r.text
            return time.perf_counter() - t

        first = [query(p) for p in _points(tiles, len(tiles), seed=9)]
        pts = _points(tiles, args.queries)
        lat = [query(p) for p in pts]
        t = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(query, pts))
        par_s = time.perf_counter() - t
    q = np.percentile(lat, [50, 95, 99]) * 1000
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()} {platform.processor() or ''} "
                f"python {platform.python_version()}",
                "tile_size": args.tile_size,
                "tiles": len(tiles),
                "store_write_s": round(write_s, 2),
                "first_query_per_tile_ms": [round(v * 1000, 1) for v in first],
                "queries": len(lat),
                "p50_ms": round(q[0], 1),
                "p95_ms": round(q[1], 1),
                "p99_ms": round(q[2], 1),
                "mean_ms": round(statistics.mean(lat) * 1000, 1),
                "sequential_qps": round(len(lat) / sum(lat), 1),
                f"threads{args.threads}_qps": round(len(pts) / par_s, 1),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

"""Cost of shard content hashes (issue 13.2): sha256 throughput, and for one s2_masked-like
tile-year the write with staging + hashing, the verification a reader does, and a plain read.

    .venv/bin/python -m benchmarks.bench_integrity [TILE_PX] [DAYS]
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time

import numpy as np

from tessera_assets.config import PipelineSettings
from tessera_assets.grid import Tile
from tessera_assets.products.registry import open_store

LINEAGE = {"manifest_digest": "m", "code_version": "bench", "config_digest": "c"}


def _best(fn, n: int = 3) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(tile_px: int = 512, days: int = 8) -> None:
    blob = os.urandom(64 << 20)
    sha = _best(lambda: hashlib.sha256(blob).digest())
    blake = _best(lambda: hashlib.blake2b(blob).digest())
    print(
        f"sha256 {64 / sha:.0f} MB/s ({sha / 64 * 1e3:.2f} ms/MB); "
        f"blake2b {64 / blake:.0f} MB/s ({blake / 64 * 1e3:.2f} ms/MB)"
    )

    root = tempfile.mkdtemp(prefix="bench_integrity_")
    settings = PipelineSettings(root=root, tile_size=tile_px, years=[2024])
    store = open_store("s2_masked", settings)
    tile = Tile(zone=30, col=834 * 64 // tile_px, row=5650 * 64 // tile_px, size=tile_px)
    rng = np.random.default_rng(0)
    n_bands = len(store.schema.coords["band"])
    # Smooth-ish reflectances so zstd compresses them as it does real data.
    base = rng.integers(200, 4000, (days, n_bands, tile_px // 8, tile_px // 8), dtype=np.uint16)
    bands = np.repeat(np.repeat(base, 8, axis=2), 8, axis=3)
    bands += rng.integers(0, 50, bands.shape, dtype=np.uint16)
    valid = rng.integers(0, 2, (days, tile_px, tile_px), dtype=np.uint8)
    data = {"bands": bands, "valid": valid}
    coords = {"doy": list(range(10, 10 + 10 * days, 10))}
    write = _best(lambda: store.write_tile(tile, 2024, data, LINEAGE, coords=coords), n=2)
    record = store.read_lineage(tile, 2024)
    stored = sum(
        os.path.getsize(os.path.join(store.url, k))
        for r in record.variables.values()
        for k in r.shards
    )
    verify = _best(lambda: store.verify_region(tile, 2024))
    plain = _best(
        lambda: open_store("s2_masked", settings).read_tile(tile, 2024, verify=False).load()
    )
    checked = _best(lambda: open_store("s2_masked", settings).read_tile(tile, 2024).load())
    mb = stored / 1e6
    print(
        f"s2_masked {tile_px} px × {days} days: {mb:.1f} MB stored "
        f"({(bands.nbytes + valid.nbytes) / 1e6:.1f} MB raw)"
    )
    print(
        f"write (staged, hashed): {write:.2f} s; verify_region: {verify * 1e3:.0f} ms "
        f"({verify / mb * 1e3:.2f} ms/MB stored); read_tile.load: {plain:.2f} s unverified, "
        f"{checked:.2f} s verified (+{(checked - plain) / plain * 100:.0f} %)"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))

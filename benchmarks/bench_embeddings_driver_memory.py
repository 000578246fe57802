"""Peak memory of the ``embeddings`` run process at production tile sizes, without the model.

The model runs in the Ray actors; what the run process itself holds grows with the tile: the
assembled int8 codes and scales, the observation counts, the PCA preview, the depth prefixes and
the store write. This runs those same functions (``assemble_tile``, ``observation_metadata``,
``pca_rgb``, ``with_prefixes``, ``EmbeddingsStore.write_tile``) on strip results as the actors
return them (random codes, 256-row strips as at 2048 px), one fresh process per tile size, and
reports the process's peak RSS after each phase, so 2048 px is measured rather than
extrapolated. The full step through Dagster at 256 and 512 px is in bench_tile_size.py.

    .venv/bin/python benchmarks/bench_embeddings_driver_memory.py --sizes 512 1024 2048
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

YEARS = [2023, 2024]


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(size: int, root: str, year: int = 2024) -> dict:
    from tessera_assets.config import PipelineSettings
    from tessera_assets.defs.metadata import observation_metadata
    from tessera_assets.grid import Tile
    from tessera_assets.inference.tasks import StripResult, assemble_tile
    from tessera_assets.ops.previews import pca_rgb
    from tessera_assets.products.depths import with_prefixes
    from tessera_assets.products.registry import ModelStamp, open_store

    peaks = {"imports": _peak_mib()}
    rows = min(256, size)
    rng = np.random.default_rng(0)

    def results():
        for key, row0 in enumerate(range(0, size, rows)):
            n = rows * size
            codes = rng.integers(-127, 128, (n, 128), dtype=np.int8)
            yield StripResult(key, row0, row0 + rows, codes,
                              rng.uniform(0.01, 0.9, n).astype(np.float32), 1.0, 0.1, "w",
                              n_s2=rng.integers(0, 140, n).astype(np.uint16),
                              n_s1=rng.integers(0, 60, n).astype(np.uint16))

    t0 = time.perf_counter()
    tile = Tile(zone=30, col=40, row=560, size=size)
    result = assemble_tile(results(), size, size)
    peaks["assemble"] = _peak_mib()
    observation_metadata(result.n_s2, result.n_s1)
    peaks["observation_metadata"] = _peak_mib()
    pca_rgb(result.codes, result.scales, max_px=512)
    peaks["preview"] = _peak_mib()
    settings = PipelineSettings(root=root, tile_size=size, years=YEARS)
    store = open_store("embeddings", settings,
                       ModelStamp(family="v2-small", sha256="0" * 64, demo_weights=True))
    data = with_prefixes({"embeddings": result.codes, "scales": result.scales,
                          "s2_obs_count": result.n_s2, "s1_obs_count": result.n_s1},
                         store.depths)
    store.write_tile(tile, year, data, {"manifest_digest": "sha256:m", "code_version": "bench",
                                        "config_digest": "c", "model_family": "v2-small",
                                        "model_sha256": "0" * 64})
    peaks["write"] = _peak_mib()
    return {"tile_px": size, "pixels": size * size, "seconds": round(time.perf_counter() - t0, 1),
            "peak_mib_after": {k: round(v, 1) for k, v in peaks.items()},
            "codes_mib": round(result.codes.nbytes / 2**20, 1)}


def coarse_child(size: int, root: str) -> dict:
    """The ``embeddings_coarse`` step and its ``coarse_consistency`` check on the region the
    first child wrote, in a fresh process (peak RSS is per process)."""
    from tessera_assets.config import PipelineSettings
    from tessera_assets.grid import Tile
    from tessera_assets.model.families import clamp_for_family
    from tessera_assets.products.pyramid import audit_pyramid, pyramid_datasets, write_level
    from tessera_assets.products.registry import ModelStamp, open_pyramid, open_store

    peaks = {"imports": _peak_mib()}
    t0 = time.perf_counter()
    settings = PipelineSettings(root=root, tile_size=size, years=YEARS)
    tile = Tile(zone=30, col=40, row=560, size=size)
    fine = open_store("embeddings", settings)
    levels = open_pyramid(settings, ModelStamp.from_attrs(fine.schema.attrs))
    datasets = pyramid_datasets(fine, levels, tile, 2024, clamp=clamp_for_family("v2-small"),
                                lineage={"code_version": "bench", "config_digest": "c"})
    peaks["coarsen"] = _peak_mib()
    for store, level in zip(levels, datasets, strict=True):
        write_level(store, tile, 2024, level)
    peaks["write"] = _peak_mib()
    audit_pyramid(fine, levels, tile, 2024, clamp=clamp_for_family("v2-small"))
    peaks["coarse_consistency"] = _peak_mib()
    return {"seconds": round(time.perf_counter() - t0, 1),
            "peak_mib_after": {k: round(v, 1) for k, v in peaks.items()}}


def checks_child(size: int, root: str) -> dict:
    """The ``embeddings`` checks that read the whole region (value_sanity and the publication
    QA: dead_dimensions, seams, drift against the previous year), in a fresh process."""
    from tessera_assets.config import PipelineSettings
    from tessera_assets.defs.checks import audit_values
    from tessera_assets.grid import Tile
    from tessera_assets.products import qa
    from tessera_assets.products.registry import open_store

    peaks = {"imports": _peak_mib()}
    t0 = time.perf_counter()
    store = open_store("embeddings", PipelineSettings(root=root, tile_size=size, years=YEARS))
    tile = Tile(zone=30, col=40, row=560, size=size)
    audit_values(store, tile, 2024, family="v2-small", manifest=None)
    peaks["value_sanity"] = _peak_mib()
    qa.audit_dead_dimensions(store, tile, 2024)
    peaks["dead_dimensions"] = _peak_mib()
    qa.audit_seams(store, tile, 2024)
    peaks["seams"] = _peak_mib()
    verdict = qa.audit_drift(store, tile, 2024, store, 2023)
    assert verdict.metadata.get("pixels"), verdict  # both years were compared
    peaks["drift"] = _peak_mib()
    return {"seconds": round(time.perf_counter() - t0, 1),
            "peak_mib_after": {k: round(v, 1) for k, v in peaks.items()}}


def _run(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--coarse-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--checks-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--year", type=int, default=2024, help=argparse.SUPPRESS)
    ap.add_argument("--root", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.root, args.year)))
        return
    if args.checks_child:
        print(json.dumps(checks_child(args.checks_child, args.root)))
        return
    if args.coarse_child:
        print(json.dumps(coarse_child(args.coarse_child, args.root)))
        return
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as root:
            r = _run("--child", str(size), "--root", root)
            r["coarse"] = _run("--coarse-child", str(size), "--root", root)
            _run("--child", str(size), "--root", root, "--year", "2023")  # drift's partner
            r["checks"] = _run("--checks-child", str(size), "--root", root)
        rows.append(r)
        for name, part in (("embeddings", r), ("embeddings_coarse", r["coarse"]),
                           ("embeddings checks", r["checks"])):
            print(f"{size:>5} px  {name:<17} peak RSS after " + ", ".join(
                f"{k} {v:.0f}" for k, v in part["peak_mib_after"].items())
                + f" MiB  ({part['seconds']} s)", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"machine": "build machine", "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()

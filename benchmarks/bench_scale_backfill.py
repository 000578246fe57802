"""Scale benchmark: a backfill of many demo tile-years through the GraphQL API on a
production-like deployment on loopback (Postgres, dagster-daemon with the QueuedRunCoordinator,
runs as separate processes, stores on a moto S3 server, a Ray head plus worker nodes with a
custom resource standing in for GPUs), then the same partitions one after another in-process,
and a byte-for-byte comparison of the two stores.

Example (the numbers in docs/performance.md were taken this way)::

    .venv/bin/python benchmarks/bench_scale_backfill.py --tiles 6x4 --out /tmp/scale.json

The same scenario, smaller, is the test ``tessera_assets_tests/test_scale_backfill.py``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test harness lives in the repo
from tessera_assets_tests.infra.scale_run import ScaleConfig, run_scale


def _period(text: str) -> tuple[date, date]:
    start, end = text.split("/")
    return date.fromisoformat(start), date.fromisoformat(end)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiles", default="6x4", help="tiles across x down (default 6x4 = 24)")
    ap.add_argument("--tile-size", type=int, default=32)
    ap.add_argument("--max-runs", type=int, default=4, help="max concurrent runs")
    ap.add_argument("--slots", type=int, default=2, help="inference slots per worker node")
    ap.add_argument("--worker-nodes", type=int, default=1)
    ap.add_argument("--family", default="v2-nano",
                    help="demo weights' model family (v2-small: inference-heavy partitions)")
    ap.add_argument("--period", default="2024-04-01/2024-04-30", help="scene dates, start/end")
    ap.add_argument("--no-baseline", action="store_true", help="skip the sequential baseline")
    ap.add_argument("--reembed", action="store_true",
                    help="make the cubes first (not measured); the backfill re-embeds them")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    tx, ty = (int(v) for v in args.tiles.lower().split("x"))
    cfg = replace(ScaleConfig(), tiles_x=tx, tiles_y=ty, tile_size=args.tile_size,
                  max_concurrent_runs=args.max_runs, backfill_run_limit=args.max_runs,
                  slots_per_node=args.slots, worker_nodes=args.worker_nodes,
                  family=args.family, period=_period(args.period),
                  sequential_baseline=not args.no_baseline, reembed=args.reembed)
    work = args.work or Path(tempfile.mkdtemp(prefix="tessera-scale-"))
    t0 = time.perf_counter()
    result = run_scale(work, cfg, log=lambda m: print(f"[{time.perf_counter() - t0:7.1f} s] {m}",
                                                      file=sys.stderr, flush=True))
    result.notes.append(f"machine: {platform.node()} {platform.processor() or platform.machine()}")
    text = result.to_json()
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()

"""Inference throughput of every TESSERA family: pixels/s, tokens/s and (on CUDA) TFLOP/s.

Real model sizes with seeded random weights (speed does not depend on the weight values), and a
synthetic tile with a realistic observation-count distribution: per pixel and year, S2 clear
counts uniform in [20, 150] and S1 valid counts uniform in [30, 120] (split between orbits).

Example (the numbers in docs/performance.md were taken this way)::

    .venv/bin/python benchmarks/bench_inference.py --families v1.0 v1.1 v2-nano \
        --pixels 512 --threads 2

``embed`` is timed end to end (sequence building + forward + quantisation); ``forward`` times the
model on pre-built batches only, which is what the official-code reference numbers measure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from tessera_assets.model import (
    PixelSeries,
    build_groups_for,
    embed,
    forward_batch,
    forward_split,
    random_model,
)
from tessera_assets.model.families import FAMILY_NAMES, ModelConfig


def synthetic_series(
    n: int,
    *,
    seed: int = 0,
    t2: int = 160,
    ta: int = 70,
    td: int = 70,
    s2_range: tuple[int, int] = (20, 150),
    s1_range: tuple[int, int] = (30, 120),
) -> PixelSeries:
    """A tile of ``n`` pixels whose clear-S2 and valid-S1 counts follow the given ranges."""
    rng = np.random.default_rng(seed)
    s2_doy = np.sort(rng.choice(np.arange(1, 366), t2, replace=False)).astype(np.uint16)
    asc_doy = np.sort(rng.choice(np.arange(1, 366), ta, replace=False)).astype(np.uint16)
    desc_doy = np.sort(rng.choice(np.arange(1, 366), td, replace=False)).astype(np.uint16)
    n_s2 = rng.integers(s2_range[0], s2_range[1] + 1, n)
    n_s1 = rng.integers(s1_range[0], s1_range[1] + 1, n)
    n_a = np.minimum(rng.integers(0, n_s1 + 1), ta)
    n_d = np.minimum(n_s1 - n_a, td)
    n_a = np.minimum(n_s1 - n_d, ta)

    def pick(counts: np.ndarray, t: int) -> np.ndarray:
        keys = rng.random((t, len(counts)))
        rank = keys.argsort(axis=0).argsort(axis=0)
        return rank < counts[None, :]

    mask = pick(n_s2, t2)
    bands = rng.integers(200, 6000, (t2, n, 10), dtype=np.uint16)
    bands[~mask] = np.where(rng.random(((~mask).sum(), 1)) < 0.5, 0, 9000).astype(np.uint16)
    va, vd = pick(n_a, ta), pick(n_d, td)
    asc = rng.integers(3000, 9000, (ta, n, 2)).astype(np.int16) * va[..., None]
    desc = rng.integers(3000, 9000, (td, n, 2)).astype(np.int16) * vd[..., None]
    return PixelSeries(
        bands, mask.astype(np.uint8), s2_doy, asc.astype(np.int16), asc_doy,
        desc.astype(np.int16), desc_doy,
    )


def _backbone_flops(cfg, t: int) -> float:
    """Forward FLOPs of one backbone for one pixel with ``t`` tokens (multiply-add = 2)."""
    d, f = cfg.d_model, cfg.dim_feedforward
    per_token = 2 * (cfg.band_num * d + d * d)  # band MLP
    per_token += cfg.num_layers * (2 * 4 * d * d + 2 * 2 * d * f + 2 * 2 * t * d)  # attn + FFN
    return per_token * t


def pixel_flops(config: ModelConfig, t2: int, t1: int) -> float:
    flops = _backbone_flops(config.s2, t2) + _backbone_flops(config.s1, t1)
    if config.pooling == "gru":
        for cfg, t in ((config.s2, t2), (config.s1, t1)):
            if t > 1:
                flops += 2 * 6 * cfg.d_model**2 * t
    hidden = config.reducer_hidden
    if hidden is None:
        flops += 2 * config.fused_dim * config.representation_dim
    else:
        flops += 2 * (config.fused_dim * hidden + hidden * config.representation_dim)
    return flops


def _cpu_jiffies() -> tuple[int, int]:
    """(busy jiffies of the whole machine, jiffies used by this process); (0, 0) off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0, 0
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle, int(own[11]) + int(own[12])  # utime + stime


def timed(fn: Callable[[], None], *, max_foreign: float, tries: int) -> tuple[float, float]:
    """Run ``fn`` and return (seconds, foreign CPU share).

    Shared build machines run other people's jobs; a run during which other processes used more
    than ``max_foreign`` of the machine's CPU capacity is repeated (up to ``tries`` times, the
    least disturbed run is kept), so numbers measure our code and not the neighbours.
    """
    best: tuple[float, float] | None = None
    ncpu = os.cpu_count() or 1
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for _ in range(max(tries, 1)):
        busy0, own0 = _cpu_jiffies()
        t0 = time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
        busy1, own1 = _cpu_jiffies()
        foreign = max(0, (busy1 - busy0) - (own1 - own0)) / tick / (ncpu * wall)
        if best is None or foreign < best[1]:
            best = (wall, foreign)
        if foreign <= max_foreign:
            break
    assert best is not None
    return best


@dataclass
class Result:
    family: str
    device: str
    precision: str
    threads: int
    batch_size: int
    max_tokens: int | str | None
    pixels: int
    tokens_per_pixel: float
    forward_s: float
    forward_px_s: float
    forward_tokens_s: float
    embed_s: float
    embed_px_s: float
    tflops: float
    mfu_vs_peak: float | None
    foreign_cpu: float  # share of the machine used by other processes during the forward timing


def run_family(family: str, series: PixelSeries, args: argparse.Namespace) -> Result:
    device = torch.device(args.device)
    model = random_model(family, seed=0).to(device)
    groups = list(build_groups_for(model, series, batch_size=args.batch_size, seed=0))
    tokens = sum(len(g) * (g.s2.shape[1] + g.s1.shape[1]) for g in groups)
    flops = sum(len(g) * pixel_flops(model.config, *g.bins) for g in groups)
    n = sum(len(g) for g in groups)
    max_tokens = args.max_tokens if args.max_tokens is not None else "auto"
    if max_tokens == 0:
        max_tokens = None

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def forward_all() -> None:
        for g in groups:
            forward_split(model, g.s2, g.s1, precision=args.precision, max_tokens=max_tokens)
        sync()

    def embed_all() -> None:
        embed(model, series, batch_size=args.batch_size, seed=0, precision=args.precision,
              max_tokens_per_forward=max_tokens)
        sync()

    # Warm-up pass: the first call for each (B, T) shape pays one-off kernel/primitive setup,
    # which a long-running tile pipeline amortises; timing it would understate throughput.
    forward_all()
    runs = [timed(forward_all, max_foreign=args.max_foreign, tries=args.tries)
            for _ in range(args.repeat)]
    best, foreign = min(runs)
    embed_s, _ = timed(embed_all, max_foreign=args.max_foreign, tries=args.tries)
    tflops = flops / best / 1e12
    peak = args.peak_tflops if device.type == "cuda" else None
    return Result(
        family=family,
        device=str(device),
        precision=args.precision,
        threads=torch.get_num_threads(),
        batch_size=args.batch_size,
        max_tokens=max_tokens,
        pixels=n,
        tokens_per_pixel=tokens / n,
        forward_s=best,
        forward_px_s=n / best,
        forward_tokens_s=tokens / best,
        embed_s=embed_s,
        embed_px_s=n / embed_s,
        tflops=tflops,
        mfu_vs_peak=(tflops / peak) if peak else None,
        foreign_cpu=foreign,
    )


VARIANTS: dict[str, dict] = {
    "default": {},  # what embed() does: --batch-size groups, CPU forward calls split by tokens
    "no-split": {"max_tokens": None},  # one forward call per --batch-size group
    "slow-path": {"fastpath": False},  # nn.TransformerEncoderLayer without its eval fast path
    "reference-gru": {"fused_gru": False},  # the official six-matmul GRU step (v1.x only)
    **{f"batch-{b}": {"batch_size": b, "max_tokens": None} for b in (16, 32, 64, 128, 256, 1024)},
    "1-thread": {"threads": 1},
    "bf16": {"precision": "bf16"},
}


def ablate(family: str, series: PixelSeries, args: argparse.Namespace) -> None:
    """Time each variant against the default, interleaved round by round (noise is ±10-15 %)."""
    import statistics

    from tessera_assets.model.layers import CustomGRU

    device = torch.device(args.device)
    model = random_model(family, seed=0).to(device)
    names = [v for v in args.variants if not (v == "reference-gru" and model.kind == "v2")]
    base_threads = torch.get_num_threads()
    batches = {}
    for name in names:
        bs = VARIANTS[name].get("batch_size", args.batch_size)
        if bs not in batches:
            batches[bs] = list(build_groups_for(model, series, batch_size=bs, seed=0))
    n = sum(len(g) for g in batches[args.batch_size])

    def configure(name: str) -> tuple[list, str, int | str | None]:
        cfg = VARIANTS[name]
        torch.backends.mha.set_fastpath_enabled(cfg.get("fastpath", True))
        for mod in model.modules():
            if isinstance(mod, CustomGRU):
                mod.fused = cfg.get("fused_gru", True)
        torch.set_num_threads(cfg.get("threads", base_threads))
        return (
            batches[cfg.get("batch_size", args.batch_size)],
            cfg.get("precision", "fp32"),
            cfg.get("max_tokens", "auto"),
        )

    def run(name: str) -> None:
        groups, precision, max_tokens = configure(name)
        for g in groups:
            forward_split(model, g.s2, g.s1, precision=precision, max_tokens=max_tokens)
        if device.type == "cuda":
            torch.cuda.synchronize()

    for name in names:  # warm-up
        run(name)
    times: dict[str, list[float]] = {name: [] for name in names}
    foreign: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(args.rounds):
        for name in names:
            wall, other = timed(lambda name=name: run(name), max_foreign=args.max_foreign,
                                tries=args.tries)
            times[name].append(wall)
            foreign[name].append(other)
            print(f"# round {round_ + 1} {family} {name}: {n / wall:.1f} px/s "
                  f"(foreign CPU {100 * other:.0f}%)", file=sys.stderr, flush=True)
    configure("default")
    base = statistics.median(times["default"]) if "default" in times else None
    for name in names:
        med = statistics.median(times[name])
        rel = f"{base / med:6.2f}x" if base else "-"
        print(
            f"{family:<10} {name:<14} {n / med:10.1f} px/s  {rel}  "
            f"(runs {', '.join(f'{n / t:.1f}' for t in times[name])}; "
            f"max foreign CPU {100 * max(foreign[name]):.0f}%)",
            flush=True,
        )
    if "bf16" in names:
        g = max(batches[args.batch_size], key=len)
        a = forward_batch(model, g.s2, g.s1, precision="fp32").cpu()
        b = forward_batch(model, g.s2, g.s1, precision="bf16").cpu()
        cos = torch.nn.functional.cosine_similarity(a, b, dim=1)
        rel_err = ((a - b).norm(dim=1) / a.norm(dim=1)).max()
        print(f"{family:<10} bf16 vs fp32: min cosine {cos.min():.6f}, "
              f"max relative error {rel_err:.2e}, max abs diff {(a - b).abs().max():.2e}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", nargs="+", default=["v1.0", "v1.1", "v2-nano", "v2-small",
                                                     "v2-medium", "v2-large"],
                   choices=[f for f in FAMILY_NAMES if f != "v2-custom"])
    p.add_argument("--pixels", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--max-tokens", type=int, default=None,
                   help="tokens per forward call (default: the engine's choice for the device; "
                        "0: no split)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--repeat", type=int, default=1, help="forward repetitions (best is kept)")
    p.add_argument("--peak-tflops", type=float, default=989.0,
                   help="dense bf16 peak of the GPU for the utilisation column (H100 SXM: 989)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-foreign", type=float, default=0.05,
                   help="repeat a timing if other processes used more than this CPU share")
    p.add_argument("--tries", type=int, default=5, help="attempts per timing (see --max-foreign)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.add_argument("--ablate", action="store_true",
                   help="compare implementation variants back to back instead")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds for --ablate")
    p.add_argument("--bucket", action="store_true",
                   help="one realistic bucket (S2 81-88, S1 73-80 observations) instead of the "
                        "mixed distribution: how a large tile fills each bucket")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.bucket:
        series = synthetic_series(args.pixels, seed=args.seed, s2_range=(81, 88),
                                  s1_range=(73, 80))
    else:
        series = synthetic_series(args.pixels, seed=args.seed)
    print(
        f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"threads {torch.get_num_threads()}, device {args.device}, precision {args.precision}, "
        f"batch {args.batch_size}, pixels {args.pixels}",
        file=sys.stderr,
    )
    header = (
        f"{'family':<10} {'tok/px':>7} {'fwd px/s':>10} {'fwd tok/s':>11} {'embed px/s':>11} "
        f"{'TFLOP/s':>8} {'of peak':>8} {'foreign':>8}"
    )
    if args.ablate:
        for fam in args.families:
            ablate(fam, series, args)
        return 0
    if not args.json:
        print(header)
    for fam in args.families:
        r = run_family(fam, series, args)
        if args.json:
            print(json.dumps(asdict(r)))
        else:
            mfu = f"{100 * r.mfu_vs_peak:.1f}%" if r.mfu_vs_peak is not None else "-"
            print(
                f"{fam:<10} {r.tokens_per_pixel:7.1f} {r.forward_px_s:10.1f} "
                f"{r.forward_tokens_s:11.0f} {r.embed_px_s:11.1f} {r.tflops:8.3f} {mfu:>8} "
                f"{100 * r.foreign_cpu:7.1f}%",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""One-shot GPU acceptance check of the inference engine; prints (and writes) a JSON report.

Sections, each within a shared time budget (a section that does not fit is reported as skipped,
and the report is rewritten after every section, so a hard kill still leaves what was measured):

1. ``golden_parity``: the official-code golden fixtures (shared/fixtures/golden, see its
   README) through ``tessera_assets.model`` on the device in float32: every model-input group
   through the forward pass against ``embedding_fp32`` (atol 1e-5, as the CPU golden tests), and
   end to end (``embed_representation``: sequences, forward, quantisation) against the fp32
   embeddings and the official int8 codes (±1 only next to a rounding tie).
2. ``bf16_vs_fp32``: bf16 autocast (what ``precision="auto"`` does on CUDA) against float32, per
   family at its real size (seeded random weights) on a tile with the realistic observation-count
   distribution of benchmarks/bench_inference.py, and on the golden checkpoints and inputs:
   per-pixel cosine similarity (min, 0.1 % quantile, mean) and relative L2 error.
3. ``throughput``: forward px/s and TFLOP/s (FLOPs counted by bench_inference.pixel_flops) for
   v1.1 and every v2 family at real size, bf16, at each of a few batch sizes on pixels with
   realistic observation counts (one full bucket: 81-88 S2, 73-80 S1 observations, the way a
   2048 px tile fills its buckets), the best batch size, fp32 at that batch size, peak GPU memory
   (torch.cuda.max_memory_allocated) and ``embed()`` end to end (sequence building on the CPU,
   copies, forward, quantisation) on the mixed distribution, cold and warm.

Usage (GPU host, the project's venv with a CUDA build of torch 2.13 installed before the
project): ``benchmarks/gpu_check.sh [OUT.json]``; smoke test anywhere:
``python benchmarks/gpu_check.py --device cpu --quick``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_inference import pixel_flops, synthetic_series

from tessera_assets.model import (
    PixelSeries,
    build_groups_for,
    embed,
    embed_representation,
    forward_batch,
    load_model,
    random_model,
)

GOLDEN_FAMILIES = {"v1_0_qat": "v1.0", "v1_1": "v1.1", "v2_nano": "v2-nano"}
FP32_ATOL = 1e-5  # the golden README's tolerance for the float32 forward pass
TIE_WINDOW = 1e-3  # in quanta, as tessera_assets_tests/model/test_golden.py
BF16_MIN_COS = 0.99  # a pixel below this is flagged
THROUGHPUT_FAMILIES = ["v1.1", "v2-nano", "v2-small", "v2-medium", "v2-large"]
BF16_FAMILIES = ["v1.0", *THROUGHPUT_FAMILIES]
QUICK_FAMILIES = ["v1.1", "v2-nano"]
# one full bucket of realistic counts, the way a 2048 px tile fills each (s2_bin, s1_bin) bucket
BUCKET = {"s2_range": (81, 88), "s1_range": (73, 80)}
# Dense bf16 tensor-core peaks (NVIDIA datasheets, no sparsity), matched on the device name.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0,
                    "L40S": 362.0, "L4": 121.0}


class Budget:
    def __init__(self, seconds: float) -> None:
        self.start = time.perf_counter()
        self.seconds = seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def environment(device: torch.device, peak: float | None) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__,
        "numpy": np.__version__, "device": str(device), "host": platform.node(),
        "cpu_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                   gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                   bf16_supported=torch.cuda.is_bf16_supported())
        if peak is None:
            peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in props.name), None)
    env["peak_bf16_tflops"] = peak
    return env


# --------------------------------------------------------------------------- golden parity


def find_golden_dir(given: str | None) -> Path | None:
    """``--golden-dir``, ``$TESSERA_GOLDEN_DIR``, else ``shared/fixtures/golden`` beside an
    ancestor of this file (the rule of tessera_assets_tests/model/conftest.py)."""
    if given or os.environ.get("TESSERA_GOLDEN_DIR"):
        return Path(given or os.environ["TESSERA_GOLDEN_DIR"])
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "fixtures" / "golden"
        if candidate.is_dir():
            return candidate
    return None


def _npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as d:
        return {k: d[k] for k in d}


def golden_cases(root: Path) -> list[dict[str, Any]]:
    out = []
    for folder, family in GOLDEN_FAMILIES.items():
        meta_path = root / folder / "meta.json"
        if not meta_path.is_file():
            continue
        meta = json.loads(meta_path.read_text())
        for case in meta["cases"]:
            out.append({"folder": folder, "family": family, "case": case["case"],
                        "checkpoint": root / folder / "checkpoint.pt",
                        "inputs": root / folder / case["inputs"],
                        "model_inputs": root / folder / case["model_inputs"],
                        "outputs": root / folder / case["outputs"],
                        "norm": case.get("data_source"), "seed": case.get("np_random_seed")})
    return out


def golden_parity(root: Path, device: torch.device) -> dict[str, Any]:
    cases = golden_cases(root)
    if not cases:
        return {"pass": False, "error": f"no golden families under {root}"}
    results = []
    models: dict[tuple[str, str | None], Any] = {}
    for c in cases:
        key = (c["folder"], c["norm"])
        if key not in models:
            models[key] = load_model(c["checkpoint"], norm=c["norm"], device=device)
        model = models[key]
        mi, out = _npz(c["model_inputs"]), _npz(c["outputs"])
        worst, pixels = 0.0, 0
        for g in range(int(mi["num_groups"])):
            rep = forward_batch(model, mi[f"group{g}_s2"], mi[f"group{g}_s1"],
                                precision="fp32").cpu().numpy()
            ref = out["embedding_fp32"][mi[f"group{g}_pixel_index"]]
            worst = max(worst, float(np.abs(rep - ref).max()))
            pixels += len(ref)
        # end to end: sequences, forward, quantisation
        series = PixelSeries.from_npz(c["inputs"])
        codes, scales, rep = embed_representation(model, series, seed=c["seed"], precision="fp32")
        both = ~np.isnan(scales) & out["computed"]
        e2e_diff = float(np.abs(rep[both] - out["embedding_fp32"][both]).max()) if both.any() else 0.0
        ref_codes = out["embedding_int8"][both].astype(np.int16)
        diff = codes[both].astype(np.int16) - ref_codes
        x = out["embedding_fp32"][both][:, : ref_codes.shape[1]] / out["scales"][both][:, None]
        near_tie = np.abs(np.abs(x - np.floor(x)) - 0.5) < TIE_WINDOW
        bad_codes = int(np.sum((np.abs(diff) > 1) | ((diff != 0) & ~near_tie)))
        results.append({
            "family": c["family"], "case": c["case"], "pixels": pixels,
            "forward_max_abs_diff": worst, "end_to_end_max_abs_diff": e2e_diff,
            "int8_differing": int(np.count_nonzero(diff)), "int8_bad": bad_codes,
            "pass": worst <= FP32_ATOL and e2e_diff <= FP32_ATOL and bad_codes == 0,
        })
    return {"atol": FP32_ATOL, "pass": all(r["pass"] for r in results), "cases": results}


# --------------------------------------------------------------------------- bf16 vs fp32


def _compare(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    a, b = a.double().cpu(), b.double().cpu()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1)
    rel = (a - b).norm(dim=1) / a.norm(dim=1).clamp_min(1e-12)
    return {"pixels": len(a), "min_cos": float(cos.min()),
            "p001_cos": float(torch.quantile(cos, 0.001)), "mean_cos": float(cos.mean()),
            "max_rel_l2": float(rel.max()), "mean_rel_l2": float(rel.mean()),
            "pixels_below_threshold": int((cos < BF16_MIN_COS).sum())}


def bf16_vs_fp32(families: list[str], series: PixelSeries, golden: Path | None,
                 device: torch.device, budget: Budget) -> dict[str, Any]:
    out: dict[str, Any] = {"threshold_min_cos": BF16_MIN_COS, "random_weights": {},
                           "golden": {}, "skipped": []}

    def run(model, groups) -> dict[str, float]:
        a = torch.cat([forward_batch(model, g.s2, g.s1, precision="fp32") for g in groups])
        b = torch.cat([forward_batch(model, g.s2, g.s1, precision="bf16") for g in groups])
        return _compare(a, b)

    for fam in families:
        if budget.left() < 30:
            out["skipped"].append(fam)
            continue
        model = random_model(fam, seed=0).to(device)
        out["random_weights"][fam] = run(model, list(build_groups_for(model, series,
                                                                       batch_size=1024, seed=0)))
        del model
    if golden is not None:
        for folder, fam in GOLDEN_FAMILIES.items():
            if not (golden / folder / "checkpoint.pt").is_file():
                continue
            norm = "mpc" if fam == "v1.1" else None
            model = load_model(golden / folder / "checkpoint.pt", norm=norm, device=device)
            mi = _npz(golden / folder / "model_inputs.npz")
            a = torch.cat([forward_batch(model, mi[f"group{g}_s2"], mi[f"group{g}_s1"],
                                         precision="fp32") for g in range(int(mi["num_groups"]))])
            b = torch.cat([forward_batch(model, mi[f"group{g}_s2"], mi[f"group{g}_s1"],
                                         precision="bf16") for g in range(int(mi["num_groups"]))])
            out["golden"][fam] = _compare(a, b)
    everything = [*out["random_weights"].values(), *out["golden"].values()]
    out["pass"] = bool(everything) and all(r["min_cos"] >= BF16_MIN_COS for r in everything)
    return out


# --------------------------------------------------------------------------- throughput


def _time_forward(model, groups_dev, precision: str, device: torch.device,
                  min_seconds: float) -> float:
    """Seconds per pass over ``groups_dev`` (device tensors), after one warm-up pass."""

    def one_pass() -> None:
        for s2, s1 in groups_dev:
            forward_batch(model, s2, s1, precision=precision)

    one_pass()
    sync(device)
    passes, t0 = 0, time.perf_counter()
    while True:
        one_pass()
        passes += 1
        sync(device)
        wall = time.perf_counter() - t0
        if wall >= min_seconds:
            return wall / passes


def _family_throughput(fam: str, bucket: PixelSeries, mixed: PixelSeries, precision: str,
                       cache: dict[tuple, list], args: argparse.Namespace,
                       device: torch.device, peak: float | None, budget: Budget,
                       res: dict[str, Any]) -> None:
    """Fill ``res`` for one family (partially, if something fails on the way)."""
    model = random_model(fam, seed=0).to(device)
    res["params_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
    res["by_batch_size"] = {}

    def on_device(groups: list) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(torch.from_numpy(g.s2).to(device), torch.from_numpy(g.s1).to(device))
                for g in groups]

    for bs in args.batch_sizes:
        key = (model.kind, model.norm, bs)
        if key not in cache:
            cache[key] = list(build_groups_for(model, bucket, batch_size=bs, seed=0))
        groups = cache[key]
        n = sum(len(g) for g in groups)
        flops = sum(len(g) * pixel_flops(model.config, *g.bins) for g in groups)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        try:
            sec = _time_forward(model, on_device(groups), precision, device, args.min_seconds)
        except torch.OutOfMemoryError:
            res["by_batch_size"][bs] = {"error": "out of memory"}
            continue
        entry = {"px_s": n / sec, "tflops": flops / sec / 1e12, "pass_s": sec,
                 "tokens_per_px": sum(len(g) * sum(g.bins) for g in groups) / n}
        if device.type == "cuda":
            entry["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        if peak:
            entry["mfu"] = entry["tflops"] / peak
        res["by_batch_size"][bs] = entry
    ok = {bs: e for bs, e in res["by_batch_size"].items() if "px_s" in e}
    if not ok:
        return
    best = max(ok, key=lambda b: ok[b]["px_s"])
    res.update(best_batch_size=best, best_px_s=ok[best]["px_s"], best_tflops=ok[best]["tflops"])
    if device.type == "cuda":
        res["peak_mem_gib"] = max(e.get("peak_mem_gib", 0.0) for e in ok.values())
    if budget.left() < args.family_reserve_s / 2:
        return
    groups = cache[(model.kind, model.norm, best)]
    try:
        sec = _time_forward(model, on_device(groups), "fp32", device, args.min_seconds)
        res["fp32_px_s_at_best"] = sum(len(g) for g in groups) / sec
        res["speedup_vs_fp32"] = res["best_px_s"] / res["fp32_px_s_at_best"]
    except torch.OutOfMemoryError:
        res["fp32_px_s_at_best"] = "out of memory"
    if device.type == "cuda":
        torch.cuda.empty_cache()
    # cold: the first call per batch shape pays kernel selection / set-up
    for label in ("embed_px_s_cold", "embed_px_s_warm"):
        t0 = time.perf_counter()
        embed(model, mixed, batch_size=best, seed=0, precision=precision)
        sync(device)
        res[label] = args.embed_pixels / (time.perf_counter() - t0)
        if budget.left() < args.family_reserve_s:
            break


def throughput(families: list[str], args: argparse.Namespace, device: torch.device,
               peak: float | None, budget: Budget) -> dict[str, Any]:
    bucket = synthetic_series(args.pixels, seed=1, **BUCKET)
    mixed = synthetic_series(args.embed_pixels, seed=2, **({} if args.quick else BUCKET))
    precision = "bf16" if device.type == "cuda" else "auto"
    out: dict[str, Any] = {
        "precision": precision, "pixels": args.pixels, "embed_pixels": args.embed_pixels,
        "observations": {"batch_size_sweep": "S2 81-88, S1 73-80 per pixel",
                         "embed": "S2 81-88, S1 73-80 per pixel" if args.quick else
                                  "S2 20-150, S1 30-120 per pixel (bench_inference)"},
        "batch_sizes": args.batch_sizes, "families": {}, "skipped": []}
    cache: dict[tuple, list] = {}
    for fam in families:
        if budget.left() < args.family_reserve_s:
            out["skipped"].append(fam)
            continue
        res: dict[str, Any] = {}
        out["families"][fam] = res
        try:
            _family_throughput(fam, bucket, mixed, precision, cache, args, device, peak,
                               budget, res)
        except Exception as err:  # keep what was measured, go on with the next family
            res["error"] = f"{type(err).__name__}: {err}"
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true",
                   help="small sizes, for a smoke test of the script (e.g. on CPU)")
    p.add_argument("--out", default=None, help="write the JSON report here too")
    p.add_argument("--budget-s", type=float, default=420.0,
                   help="overall time budget; sections that do not fit are skipped")
    p.add_argument("--golden-dir", default=None)
    p.add_argument("--families", nargs="+", default=None,
                   help=f"throughput families (default {' '.join(THROUGHPUT_FAMILIES)}; "
                        f"--quick: {' '.join(QUICK_FAMILIES)})")
    p.add_argument("--bf16-families", nargs="+", default=None,
                   help=f"default {' '.join(BF16_FAMILIES)}; --quick: {' '.join(QUICK_FAMILIES)}")
    p.add_argument("--pixels", type=int, default=None, help="pixels per throughput pass")
    p.add_argument("--embed-pixels", type=int, default=None,
                   help="pixels of the mixed tile for embed() end to end")
    p.add_argument("--bf16-pixels", type=int, default=None)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None)
    p.add_argument("--min-seconds", type=float, default=None, help="timed seconds per point")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="dense bf16 peak of the GPU (default: known from the device name)")
    args = p.parse_args(argv)
    quick = args.quick
    # quick: two families (one per kind), a few pixels of one bucket (on CPU every new batch
    # shape pays a one-off kernel set-up, the mixed distribution has ~200 shapes, and bf16
    # autocast on a CPU without AMX is several times slower than fp32)
    args.families = args.families or (QUICK_FAMILIES if quick else THROUGHPUT_FAMILIES)
    args.bf16_families = args.bf16_families or (QUICK_FAMILIES if quick else BF16_FAMILIES)
    args.pixels = args.pixels or (8 if quick else 32768)
    args.embed_pixels = args.embed_pixels or (8 if quick else 65536)
    args.bf16_pixels = args.bf16_pixels or (8 if quick else 4096)
    args.batch_sizes = args.batch_sizes or ([4, 8] if quick else [2048, 8192, 32768])
    args.min_seconds = args.min_seconds or (0.05 if quick else 1.0)
    args.family_reserve_s = 10.0 if quick else 25.0

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        error = json.dumps({"ok": False, "error": f"no CUDA device (torch {torch.__version__}; "
                            "a CUDA build of torch 2.13 must be installed before the project)"})
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(error)
        print(error)
        return 2
    budget = Budget(args.budget_s)
    report: dict[str, Any] = {"ok": None, "quick": quick, "elapsed_s": 0.0,
                              "env": environment(device, args.peak_tflops)}
    peak = report["env"]["peak_bf16_tflops"]

    def save() -> None:
        report["elapsed_s"] = round(budget.elapsed(), 1)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(report, indent=1, default=str))

    def section(name: str, fn, need_s: float) -> None:
        if budget.left() < need_s:
            report[name] = {"skipped": f"time budget ({budget.left():.0f} s left)"}
        else:
            t0 = time.perf_counter()
            try:
                report[name] = fn()
            except Exception as err:  # report, and go on with the other sections
                report[name] = {"pass": False, "error": f"{type(err).__name__}: {err}"}
            report[name]["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"# {name}: {budget.elapsed():.0f} s", file=sys.stderr, flush=True)
        save()

    golden = find_golden_dir(args.golden_dir)
    if golden is None or not golden.is_dir():
        report["golden_parity"] = {"pass": False, "error": "golden fixtures not found "
                                   "(--golden-dir or $TESSERA_GOLDEN_DIR)"}
        golden = None
    else:
        section("golden_parity", lambda: golden_parity(golden, device), 10)
    bf16_series = synthetic_series(args.bf16_pixels, seed=3, **(BUCKET if quick else {}))
    section("bf16_vs_fp32", lambda: bf16_vs_fp32(args.bf16_families, bf16_series, golden,
                                                  device, budget), 20)
    section("throughput", lambda: throughput(args.families, args, device, peak, budget), 20)
    report["ok"] = bool(report["golden_parity"].get("pass")
                        and report["bf16_vs_fp32"].get("pass")
                        and report["throughput"].get("families"))
    save()
    print(json.dumps(report, indent=1, default=str))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env bash
# GPU acceptance check of the inference engine, in one command (benchmarks/gpu_check.py):
# golden fp32 parity on the GPU, bf16-autocast vs fp32 cosine similarity per family, and px/s,
# TFLOP/s and peak GPU memory for v1.1 and every v2 family at real size. Prints a JSON report
# and writes it to a file. Finishes in under 8 minutes on one GPU (time budget below; what does
# not fit is reported as skipped, and a hard stop 60 s later still leaves the partial report).
#
#   benchmarks/gpu_check.sh                   # report -> $OUT/gpu_check.json, else ./gpu_check.json
#   benchmarks/gpu_check.sh /tmp/report.json  # report -> /tmp/report.json
#   benchmarks/gpu_check.sh --device cpu --quick   # smoke test without a GPU (~1-2 min)
# Anything after the optional output path goes to gpu_check.py (see --help there).
#
# Needs nothing heavy set up by this script: the project's virtualenv (.venv, or $PYTHON)
# with a CUDA build of torch 2.13 installed before the project (so the project's torch==2.13.0
# pin is already met), and the golden fixtures at ../shared/fixtures/golden beside the repo,
# or $TESSERA_GOLDEN_DIR. In the GPU image (deploy/Dockerfile): PYTHON=python3.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
if [[ ! -x $PYTHON ]] && ! command -v "$PYTHON" >/dev/null; then
    echo "gpu_check: no Python at $PYTHON (set PYTHON=...)" >&2
    exit 2
fi
out_file=""
if [[ $# -gt 0 && $1 != -* ]]; then
    out_file=$1
    shift
fi
if [[ -z $out_file ]]; then
    out_file=${OUT:+$OUT/gpu_check.json}
    out_file=${out_file:-gpu_check.json}
fi
budget_s=${GPU_CHECK_BUDGET_S:-420}

status=0
timeout --kill-after=10 $((budget_s + 60)) \
    "$PYTHON" benchmarks/gpu_check.py --out "$out_file" --budget-s "$budget_s" "$@" || status=$?
if [[ $status -eq 124 || $status -eq 137 ]]; then
    echo "gpu_check: stopped after $((budget_s + 60)) s; partial report in $out_file" >&2
fi
echo "gpu_check: report in $out_file (exit $status)" >&2
exit $status

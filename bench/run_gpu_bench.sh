#!/usr/bin/env bash
# run_gpu_bench.sh — runs tgpt-bench and bench/torch_gpu.py on the same GPU and prints the
# side-by-side table (bench/compare_gpu.py). Usage: bench/run_gpu_bench.sh [BUILD_DIR] [OUT_DIR]
# (defaults: build-gpu, BUILD_DIR/bench). PyTorch: $TGPT_TORCH_PYTHON, else python3.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-gpu}
out=${2:-$build/bench}
py=${TGPT_TORCH_PYTHON:-python3}
mkdir -p "$out"
status=0
"$build/tgpt-bench" "$out/tgpt_gpu.tsv" || status=1
"$py" bench/torch_gpu.py "$out/torch_gpu.tsv" || status=1
if [ -s "$out/tgpt_gpu.tsv" ] && [ -s "$out/torch_gpu.tsv" ]; then
  echo
  "$py" bench/compare_gpu.py "$out/tgpt_gpu.tsv" "$out/torch_gpu.tsv" | tee "$out/gpu_table.md"
fi
exit $status

#!/usr/bin/env bash
# run_cpu_bench.sh — runs tgpt's CPU benchmark and the same operations in PyTorch CPU with the
# same thread count, and prints them side by side. Usage: bench/run_cpu_bench.sh [THREADS]
# (default: all cores). Expects a built ./build (scripts/run.sh builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
out=build/bench
mkdir -p "$out"
OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads ./build/bench_cpu \
  --benchmark_format=console --benchmark_out_format=json --benchmark_out="$out/tgpt_cpu.json" \
  --benchmark_min_time=0.5
OMP_NUM_THREADS=$threads /usr/bin/python3 bench/torch_cpu.py "$threads" > "$out/torch_cpu.json"
echo
/usr/bin/python3 bench/compare.py "$out/tgpt_cpu.json" "$out/torch_cpu.json" | tee "$out/cpu_table.md"

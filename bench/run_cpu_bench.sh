#!/usr/bin/env bash
# run_cpu_bench.sh — runs tgpt's CPU benchmarks (GEMM and attention at CLIP shapes; CLIP ViT-B/16
# encode_image and encode_text, f32 and bf16) and the same operations in PyTorch CPU (f32) with
# the same thread count, and prints them side by side; PyTorch runs with OpenBLAS's own choice of
# kernels, as a user's would, and for CLIP again with the kernels tgpt selects. Then tgpt's GEMMs
# with OpenBLAS's generic Prescott kernels forced (what OpenBLAS 0.3.21 runs on a CPU it does not
# recognise) against the kernels tgpt selects (kernels/cpu/blas_setup.h), and the GEMM libraries.
# Usage: bench/run_cpu_bench.sh [THREADS] (default: all cores). Expects a built ./build
# (scripts/run.sh builds it). Tables land in build/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
out=build/bench
mkdir -p "$out"
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
# Both sides report the median of their repetitions, each the mean over at least MIN_TIME
# seconds (the torch scripts use the same rule). The pair runs ROUNDS times, tgpt and PyTorch
# alternating, and the table gives the median speed-up over the rounds and its range: on a shared
# machine a slow stretch falls on one side of one round instead of deciding the ratio.
run_pair() {  # run_pair NAME TGPT_BINARY TORCH_SCRIPT MIN_TIME ROUNDS
  local files=()
  for r in $(seq "$5"); do
    ./build/"$2" --benchmark_format=console --benchmark_out_format=json \
      --benchmark_out="$out/$1_tgpt_$r.json" --benchmark_min_time="$4" \
      --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
    /usr/bin/python3 bench/"$3" "$threads" > "$out/$1_torch_$r.json"
    files+=("$out/$1_tgpt_$r.json" "$out/$1_torch_$r.json")
  done
  echo
  /usr/bin/python3 bench/compare.py "${files[@]}" | tee "$out/$1_table.md"
  echo
}
run_pair ops bench_cpu torch_cpu.py 0.5 3
run_pair clip bench_clip_cpu torch_clip_cpu.py 1 3

# CLIP again with PyTorch given the OpenBLAS core tgpt runs (OPENBLAS_CORETYPE; out of the box,
# OpenBLAS 0.3.21 falls back to Prescott on a CPU it does not recognise): the honest comparison.
# tgpt's side is the rounds above (the *_bf16 rows: tgpt bf16 against PyTorch f32).
core=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["context"]["blas_core"])' \
  "$out/clip_tgpt_1.json")
files=()
for r in 1 2 3; do
  OPENBLAS_CORETYPE=$core /usr/bin/python3 bench/torch_clip_cpu.py "$threads" \
    > "$out/clip_torch_core_$r.json"
  files+=("$out/clip_tgpt_$r.json" "$out/clip_torch_core_$r.json")
done
echo "PyTorch with OPENBLAS_CORETYPE=$core:"
/usr/bin/python3 bench/compare.py "${files[@]}" | tee "$out/clip_core_table.md"
echo

# GEMM at the CLIP shapes: forced fallback core vs the core tgpt runs (the JSON context names it).
OPENBLAS_CORETYPE=Prescott ./build/bench_cpu --benchmark_filter=BM_linear \
  --benchmark_out_format=json --benchmark_out="$out/gemm_prescott.json" \
  --benchmark_min_time=0.5 --benchmark_repetitions=5
./build/bench_cpu --benchmark_filter=BM_linear \
  --benchmark_out_format=json --benchmark_out="$out/gemm_selected.json" \
  --benchmark_min_time=0.5 --benchmark_repetitions=5
echo
/usr/bin/python3 bench/compare_cores.py "$out/gemm_prescott.json" "$out/gemm_selected.json" |
  tee "$out/gemm_cores_table.md"

# GEMM libraries at CLIP's shapes (kernels/cpu/matmul.h's backends): OpenBLAS with the selected
# core and with Prescott forced, oneDNN f32 and bf16, against the measured peak.
./build/bench_cpu --benchmark_filter=BM_gemm_backend \
  --benchmark_out_format=json --benchmark_out="$out/gemm_backends.json" \
  --benchmark_min_time=0.3 --benchmark_repetitions=3
OPENBLAS_CORETYPE=Prescott ./build/bench_cpu --benchmark_filter='BM_gemm_backend/.*/0/' \
  --benchmark_out_format=json --benchmark_out="$out/gemm_backends_prescott.json" \
  --benchmark_min_time=0.3 --benchmark_repetitions=3
echo
/usr/bin/python3 bench/compare_gemm_backends.py "$out/gemm_backends.json" \
  "$out/gemm_backends_prescott.json" | tee "$out/gemm_backends_table.md"

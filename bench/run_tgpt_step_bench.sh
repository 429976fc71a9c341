#!/usr/bin/env bash
# run_tgpt_step_bench.sh — one TGP-T training iteration at ViT-B/16 shapes (B = 8, C = 1000,
# 32/64 queries), tgpt (build/bench_tgpt_step) and the PyTorch reference
# (bench/torch_tgpt_step.py) alternating for ROUNDS rounds at the same thread count, then a table
# of the per-round speed-ups (bench/compare_tgpt_step.py). Each side: 1 warm-up + ITERS timed
# iterations. Usage: bench/run_tgpt_step_bench.sh [THREADS] [ROUNDS] [ITERS] [PRECISION] [ARGS...]
# ARGS go to both sides (e.g. --batch 4 --classes 5 --sentence-words 7 --caption-words 24).
# PRECISION (f32 or bf16, default f32): tgpt's frozen-CLIP compute dtype (bench_tgpt_step
# --precision); the PyTorch reference is always f32.
# The environment passes through: set OPENBLAS_CORETYPE (e.g. SkylakeX) and OMP_WAIT_POLICY
# explicitly to record them; both are printed. JSON lines land in build/bench/tgpt_step.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
rounds=${2:-2}
iters=${3:-3}
precision=${4:-f32}
shift $(($# < 4 ? $# : 4))
out=build/bench
mkdir -p "$out"
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
echo "threads=$threads OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}" \
  "OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset} $(uptime)" >&2
log=$out/tgpt_step.jsonl
: > "$log"
for r in $(seq "$rounds"); do
  ./build/bench_tgpt_step --threads "$threads" --warmup 1 --iters "$iters" \
    --precision "$precision" "$@" |
    grep '"summary"' | sed "s/^{/{\"round\":$r,/" >> "$log"
  /usr/bin/python3 bench/torch_tgpt_step.py --threads "$threads" --warmup 1 --iters "$iters" "$@" |
    grep '"summary"' | sed "s/^{/{\"round\":$r,/" >> "$log"
  echo "round $r done: $(uptime)" >&2
done
/usr/bin/python3 bench/compare_tgpt_step.py "$log"

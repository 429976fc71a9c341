#!/usr/bin/env bash
# run_gpu_bench.sh — runs tgpt-bench and bench/torch_gpu.py (kernels), then clip-gpu-bench and
# bench/torch_clip_gpu.py (CLIP ViT-B/16 inference throughput at batch 256), on the same GPU, and
# prints the side-by-side tables (bench/compare_gpu.py) into OUT_DIR/gpu_table.md, each as soon as
# both of its sides have run (so a run stopped by a time limit keeps the kernel table).
# Usage: bench/run_gpu_bench.sh [BUILD_DIR] [OUT_DIR] (defaults: build-gpu, BUILD_DIR/bench). PyTorch: $TGPT_TORCH_PYTHON, else python3.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
build=${1:-build-gpu}
out=${2:-$build/bench}
py=${TGPT_TORCH_PYTHON:-python3}
mkdir -p "$out"
status=0
: > "$out/gpu_table.md"
# table OURS THEIRS: appends the side-by-side table of two TSV files when both exist.
table() {
  if [ -s "$out/$1.tsv" ] && [ -s "$out/$2.tsv" ]; then
    echo
    "$py" bench/compare_gpu.py "$out/$1.tsv" "$out/$2.tsv" | tee -a "$out/gpu_table.md"
    echo >> "$out/gpu_table.md"
  fi
}
"$build/tgpt-bench" "$out/tgpt_gpu.tsv" || status=1
"$py" bench/torch_gpu.py "$out/torch_gpu.tsv" || status=1
table tgpt_gpu torch_gpu
"$build/clip-gpu-bench" "$out/tgpt_clip_gpu.tsv" || status=1
"$py" bench/torch_clip_gpu.py "$out/torch_clip_gpu.tsv" || status=1
table tgpt_clip_gpu torch_clip_gpu
exit $status

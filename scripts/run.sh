#!/usr/bin/env bash
# run.sh — the README's first command: installs dependencies, builds tgpt (Release) and runs the
# main job on its built-in default. Until training lands, the main job is the CPU benchmark
# (GEMM and attention at CLIP shapes, side by side with PyTorch CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
exec bash bench/run_cpu_bench.sh "$@"

#!/usr/bin/env bash
# run.sh — the README's first command: installs the dependencies, builds tgpt (Release) and runs
# the main job on its built-in default (scripts/main_job.sh: a captioned synthetic world, a CLIP
# pretrained on it by tgpt, then zero-shot, CoOp and TGP-T at 16 shots; output/default/).
# Arguments go to main_job.sh (e.g. --out DIR, --seed S). The CPU benchmark is its own command:
# bash bench/run_cpu_bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
exec bash scripts/main_job.sh --bin build "$@"

#!/usr/bin/env bash
# test.sh — the README's test command: installs dependencies, builds tgpt (CUDA sources too when
# nvcc is present), runs every test with ctest, then builds and runs the unit tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer (CPU only).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTGPT_SANITIZE=ON \
  -DTGPT_CUDA=OFF -DTGPT_BUILD_BENCH=OFF
cmake --build build-asan -j "$jobs" --target tgpt_tests
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs"

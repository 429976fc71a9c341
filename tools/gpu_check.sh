#!/usr/bin/env bash
# gpu_check.sh — on a machine with an NVIDIA GPU: configure and build for sm_90, run the
# cuda-labelled tests, run them again under compute-sanitizer (memcheck, racecheck), and run the
# GPU benchmarks when they exist. Logs and tables go to the folder given as $1 or $OUT
# (default ./gpu_check_out). Sized to finish in a few minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu_check_out}}
mkdir -p "$out"
export PATH=/usr/local/cuda/bin:$PATH
{
  date -u
  git rev-parse HEAD 2>/dev/null || true
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  nvcc --version | tail -2
} > "$out/env.txt" 2>&1

status=0
step() {  # step NAME COMMAND...: runs COMMAND, logs to $out/NAME.log, records failure
  local name=$1; shift
  echo "== $name"
  if ! "$@" > "$out/$name.log" 2>&1; then
    echo "   FAILED (see $name.log)"; status=1
  fi
  tail -3 "$out/$name.log"
}

step configure cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DTGPT_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DTGPT_BUILD_BENCH=ON
step build cmake --build build-gpu -j "$(nproc)"
step cuda_tests ctest --test-dir build-gpu -L cuda --output-on-failure
step cpu_tests ctest --test-dir build-gpu -LE cuda --output-on-failure -j "$(nproc)"
if command -v compute-sanitizer > /dev/null; then
  step memcheck compute-sanitizer --tool memcheck --error-exitcode 1 build-gpu/tgpt_cuda_tests
  step racecheck compute-sanitizer --tool racecheck --error-exitcode 1 build-gpu/tgpt_cuda_tests
fi
for b in build-gpu/bench_cuda*; do
  [ -x "$b" ] && step "$(basename "$b")" "$b"
done
echo "gpu_check: status $status, logs in $out"
exit $status

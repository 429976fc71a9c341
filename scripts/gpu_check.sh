#!/usr/bin/env bash
# gpu_check.sh — on a machine with an NVIDIA GPU (H100/H200), in this order: configure and build
# for sm_90; the cuda-labelled tests; every kernel lab's correctness check (bench/lab_*.cu); the
# GPU benchmarks against PyTorch (bench/run_gpu_bench.sh: tgpt-bench + bench/torch_gpu.py and
# clip-gpu-bench + bench/torch_clip_gpu.py, side-by-side tables in gpu_table.md);
# compute-sanitizer memcheck and racecheck on a small subset of the CUDA tests; the labs' timing
# tables; the CPU tests. Logs and tables go to the folder given as $1 or $OUT (default
# ./gpu_check_out). A time budget (8 minutes, see `budget`) skips what does not fit, last first.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu_check_out}}
mkdir -p "$out"
export PATH=/usr/local/cuda/bin:$PATH
{
  date -u
  git rev-parse HEAD 2>/dev/null || true
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv || true
  nvcc --version | tail -2
  python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.is_available())' || true
} > "$out/env.txt" 2>&1
cat "$out/env.txt"

status=0
# Time budget: the whole script aims at 8 minutes (TGPT_GPU_CHECK_BUDGET_S, default 470 s). A step
# never runs past the budget; a step that would start with less than 20 s left is skipped and
# says so in its log, so the most informative steps (first) always finish.
budget=${TGPT_GPU_CHECK_BUDGET_S:-470}
step() {  # step NAME TIMEOUT_S COMMAND...: runs COMMAND, logs to $out/NAME.log, records failure
  local name=$1 limit=$2; shift 2
  local left=$((budget - SECONDS))
  echo "== $name"
  if [ "$left" -lt 20 ]; then
    echo "skipped: time budget spent (${SECONDS} s of ${budget} s)" | tee "$out/$name.log"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0=$SECONDS
  if ! timeout "$limit" "$@" > "$out/$name.log" 2>&1; then
    echo "   FAILED (see $name.log)"; status=1
  fi
  tail -4 "$out/$name.log"
  echo "   ($((SECONDS - t0)) s)"
}

# The GPU machine's image has no Debian -dev packages: scripts/gpu_deps.sh gathers them here into
# .gpu-deps/, which the device call carries. Its python3 is the one with PyTorch.
deps=()
if [ -d .gpu-deps ]; then
  deps=(-DTGPT_DEPS_PREFIX="$PWD/.gpu-deps" -DTGPT_PYTHON="$(command -v python3)")
  export LD_LIBRARY_PATH="$PWD/.gpu-deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
step configure 120 cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DTGPT_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DTGPT_BUILD_BENCH=ON "${deps[@]}"
step build 360 cmake --build build-gpu -j "$(nproc)"
# The CUDA tests (ctest label `cuda`) run as one process: the log shows every error measure next
# to its tolerance.
step cuda_tests 300 build-gpu/tgpt_cuda_tests

# Kernel labs: correctness of every version here; their timing tables run after the benchmark and
# the sanitizers. When the CMake build
# failed, they are built standalone with nvcc (the lines in each lab's header): labs whose engine
# kernels take scratch from the caching allocator (layernorm, softmax, adamw, bias_activation,
# elementwise; marked +) link the CUDA backend instead of defining the stream themselves; a comma
# separates the kernel files of a lab that needs several.
labs="lab_attention:attention lab_vocab_ce:vocab_ce lab_cosine_loss:cosine_loss"
labs+=" lab_layernorm:norm+ lab_adamw:adamw+ lab_bias_activation:bias_activation+"
labs+=" lab_softmax:norm+ lab_embedding:index lab_elementwise:elementwise,tensor_kernels+"
for entry in $labs; do
  lab=${entry%%:*} kern=${entry##*:}
  bin=build-gpu/$lab
  if [ ! -x "$bin" ]; then
    mkdir -p build-gpu
    if [ "${kern%+}" != "$kern" ]; then
      extra=(base/cuda/cuda_backend.cu base/device.cpp)
      kern=${kern%+}
    else
      extra=(-DLAB_STANDALONE)
    fi
    srcs=()
    for k in ${kern//,/ }; do srcs+=("kernels/cuda/$k.cu"); done
    nvcc -O3 -std=c++17 -arch=sm_90 --expt-relaxed-constexpr -I. "${extra[@]}" \
      "bench/$lab.cu" "${srcs[@]}" base/dtype.cpp -lcublas -o "$bin" \
      > "$out/${lab}_nvcc.log" 2>&1 || echo "   standalone build of $lab failed"
  fi
  step "${lab}_check" 60 "$bin" --check-only
done

step gpu_bench 200 bench/run_gpu_bench.sh build-gpu "$out/bench"
[ -f "$out/bench/gpu_table.md" ] && cp "$out/bench/gpu_table.md" "$out/gpu_table.md"

if command -v compute-sanitizer > /dev/null; then
  small='CudaDevice.*:CudaAttention.SmallCasesForSanitizers:CudaAttention.Errors'
  small+=':CudaVocabCrossEntropy.I32TargetsCustomIgnoreAndAllIgnored'
  small+=':CudaCosineLogitLoss.Bf16AndFrozenWeight'
  small+=':CudaBiasActivation.FrozenBiasOrFrozenInput'
  step memcheck 240 compute-sanitizer --tool memcheck --error-exitcode 1 \
    build-gpu/tgpt_cuda_tests --gtest_filter="$small"
  step racecheck 240 compute-sanitizer --tool racecheck --error-exitcode 1 \
    build-gpu/tgpt_cuda_tests --gtest_filter="$small"
fi
# Lab timing tables (versions side by side), then the CPU tests, with what time is left.
for entry in $labs; do
  lab=${entry%%:*}
  step "${lab}_timing" 60 "build-gpu/$lab"
done
step cpu_tests 300 ctest --test-dir build-gpu -LE cuda --output-on-failure -j "$(nproc)"
echo "gpu_check: status $status, logs in $out"
[ -f "$out/gpu_table.md" ] && cat "$out/gpu_table.md"
exit $status

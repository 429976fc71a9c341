#!/usr/bin/env bash
# gpu_check.sh — everything a GPU machine (H100 or H200, sm_90) can tell us, from ONE call whose
# output is short: at most a few files from OUT and the tail of stdout come back.
#
# Usage: bash scripts/gpu_check.sh [--dry-run [--assume-step-s S] | --probe-only] [--budget SECONDS] [OUT]
#   OUT       folder for the results (default: $OUT, else ./gpu_check_out). It receives exactly
#             two files: gpu_check.tar.gz (every log and table, plus summary.txt) and summary.txt.
#             Both are rewritten after every step, so a call cut short still returns them.
#   --budget  seconds the whole run may take (default $TGPT_GPU_CHECK_BUDGET_S, else 540: a 600 s
#             call keeps ~60 s to pack and return). A step gets at most what is left; a step that
#             would start with under 20 s left is skipped with a note in the summary.
#   --dry-run run the script's logic on a CPU machine: the probe (missing device pieces are
#             reported, not fatal), the step plan with each step's time limit under the budget
#             (each step assumed to take min(S, its limit) seconds, S = --assume-step-s, default
#             10; a larger S shows what the budget skips), the archive and the summary. Nothing
#             is configured, built or run on a device.
#   --probe-only  the probe alone (exit status 1 and the list of what is missing, or 0).
# Environment: TGPT_GPU_CHECK_BUDGET_S (the default budget), TGPT_GPU_BUILD_DIR (default build-gpu).
#
# Order (most informative first):
#   probe        nvcc, cmake, C++ compiler, cuBLAS/cuBLASLt, OpenMP (omp.h + libgomp), the
#                build dependencies (the carried .gpu-deps, or Debian's -dev packages), .pydeps,
#                PyTorch on the device's python3, compute-sanitizer, nvidia-smi; stops with a
#                clear message when something the build or the GPU tests need is missing.
#   configure    build-gpu/ for sm_90 (Release, CUDA on, benchmarks on; .gpu-deps when carried)
#   build_tests  the tgpt_cuda_tests target only; the labs and benchmarks then build in the
#                background (build_bench waits for them) while the tests run
#   test:SUITE   the CUDA tests, one GoogleTest suite per process (a sticky CUDA error fails only
#                its own suite)
#   memcheck, racecheck
#                compute-sanitizer on a small subset of the CUDA tests (skipped with a note when
#                the device or driver refuses the sanitizer, as on some H200 machines)
#   check:LAB    every kernel lab's correctness check (bench/lab_*.cu --check-only)
#   bench:gpu    bench/run_gpu_bench.sh: tgpt-bench and clip-gpu-bench side by side with PyTorch
#   bench:tgpt_step, bench:tgpt_step_bf16, bench:coop_step
#                bench_tgpt_step --device cuda: one TGP-T training iteration (frozen CLIP in f32,
#                and in bf16 as tgpt-train runs it on the GPU by default) and one CoOp step at
#                ViT-B/16 shapes, 1000 classes (time and the caching allocator's peak)
#   timing:LAB   every kernel lab's timing table
# The card (nvidia-smi) is recorded in the summary; the same script serves both machine kinds.
#
# Before a device call, on this machine: bash scripts/gpu_deps.sh (gathers .gpu-deps; the GPU
# image has no Debian -dev packages). Then run `bash scripts/gpu_check.sh $OUT` on the device,
# carrying [".gpu-deps", ".pydeps"].
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd) || exit 2

dry=0
probe_only=0
assume_step_s=10
budget=${TGPT_GPU_CHECK_BUDGET_S:-540}
out=""
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry=1 ;;
    --probe-only) probe_only=1 ;;
    --budget)
      budget=${2:?--budget needs a number of seconds}
      shift
      ;;
    --budget=*) budget=${1#--budget=} ;;
    --assume-step-s)
      assume_step_s=${2:?--assume-step-s needs a number of seconds}
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "gpu_check: unknown option $1 (see --help)" >&2
      exit 2
      ;;
    *) out=$1 ;;
  esac
  shift
done
out=${out:-${OUT:-gpu_check_out}}
for n in "$budget" "$assume_step_s"; do
  case $n in
    '' | *[!0-9]*)
      echo "gpu_check: --budget and --assume-step-s take whole seconds, got '$n'" >&2
      exit 2
      ;;
  esac
done
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd) || exit 2
cd "$repo" || exit 2
export PATH=/usr/local/cuda/bin:$PATH
export GTEST_COLOR=no

# Logs live outside OUT and are packed into OUT/gpu_check.tar.gz after every step.
logs_root=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX") || exit 2
trap 'rm -rf "$logs_root"' EXIT
mkdir -p "$logs_root/gpu_check"
logs=$logs_root/gpu_check
build=${TGPT_GPU_BUILD_DIR:-build-gpu} # relative to the repository root
jobs=$(nproc 2> /dev/null || echo 4)
min_start=20 # a step that would start with less than this many seconds left is skipped
vclock=0     # dry run: the virtual clock (each step takes min(assume_step_s, its limit))
status=0
bg_pid=""

now() { if [ "$dry" = 1 ]; then echo "$vclock"; else echo "$SECONDS"; fi; }
logname() { echo "${1//:/_}.log"; }

# record NAME STATUS SECONDS LIMIT NOTE: one row of steps.tsv (tabs in NOTE become spaces).
record() {
  local note=${5//$'\t'/ }
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${note//$'\n'/ }" >> "$logs/steps.tsv"
  case $2 in FAILED | TIMEOUT | CRASH) status=1 ;; esac
  printf '  %-28s %-8s %4s s  %s\n' "$1" "$2" "$3" "$5"
}

# pack: summary.txt and the archive, both written to temporary names and renamed.
pack() {
  {
    echo "budget_s=$budget"
    echo "used_s=$(now)"
    echo "dry_run=$dry"
  } > "$logs/run.txt"
  python3 scripts/gpu_check_summary.py "$logs" > "$logs/summary.txt.tmp" 2> "$logs/summary_error.log" ||
    {
      echo "gpu_check: the summary script failed (summary_error.log); raw step table:"
      cat "$logs/steps.tsv"
    } > "$logs/summary.txt.tmp"
  mv "$logs/summary.txt.tmp" "$logs/summary.txt"
  cp "$logs/summary.txt" "$out/summary.txt.tmp" && mv "$out/summary.txt.tmp" "$out/summary.txt"
  tar -czf "$out/gpu_check.tar.gz.tmp" -C "$(dirname "$logs")" gpu_check 2> /dev/null &&
    mv "$out/gpu_check.tar.gz.tmp" "$out/gpu_check.tar.gz"
}

# kill_tree PID: ends a process this script started and its descendants, by id.
kill_tree() {
  local c
  for c in $(pgrep -P "$1" 2> /dev/null); do kill_tree "$c"; done
  kill "$1" 2> /dev/null
}

# left: seconds of budget left.
left() { echo $((budget - $(now))); }

# step NAME LIMIT_S COMMAND...: runs COMMAND with a timeout of min(LIMIT_S, budget left), output
# to NAME's log; records ok / FAILED (exit status) / TIMEOUT / skipped; packs.
step() {
  local name=$1 limit=$2
  shift 2
  local l
  l=$(left)
  if [ "$l" -lt "$min_start" ]; then
    echo "skipped: time budget spent ($(now) s of $budget s)" > "$logs/$(logname "$name")"
    record "$name" skipped 0 "$limit" "time budget spent ($(now) of $budget s)"
    return 0
  fi
  [ "$limit" -gt "$l" ] && limit=$l
  if [ "$dry" = 1 ]; then
    echo "dry run: would run with a ${limit} s limit: $*" > "$logs/$(logname "$name")"
    local took=$((assume_step_s < limit ? assume_step_s : limit))
    record "$name" planned "$took" "$limit" "dry run: starts at t=$(now) s"
    vclock=$((vclock + took))
    return 0 # packed once at the end (a pack per step is for runs that may be cut short)
  fi
  local t0=$SECONDS rc
  timeout -k 10 "$limit" "$@" > "$logs/$(logname "$name")" 2>&1
  rc=$?
  local dt=$((SECONDS - t0))
  if [ $rc -eq 0 ]; then
    record "$name" ok "$dt" "$limit" ""
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    record "$name" TIMEOUT "$dt" "$limit" "stopped at its ${limit} s limit"
  elif [ $rc -gt 128 ]; then
    record "$name" CRASH "$dt" "$limit" "killed by signal $((rc - 128))"
  else
    record "$name" FAILED "$dt" "$limit" "exit status $rc"
  fi
  pack
  return $rc
}

# ---- probe (about 10 s at most) -----------------------------------------------------------------
# probe_row NAME STATE DETAIL: STATE is ok, absent (needed: fatal unless dry run) or note
# (optional: what is lost is said in DETAIL).
fatal=()
probe_row() {
  local state=$2
  if [ "$state" = absent ]; then
    if [ "$dry" = 1 ]; then state="absent(dry)"; else fatal+=("$1: $3"); fi
  fi
  printf '%s\t%s\t%s\n' "$1" "$state" "$3" >> "$logs/probe.tsv"
}
: > "$logs/probe.tsv"
: > "$logs/steps.tsv"
t_probe=$SECONDS
{
  date -u
  echo "commit $(git rev-parse HEAD 2> /dev/null || echo unknown)"
  uname -a
} > "$logs/env.txt" 2>&1

# PyTorch takes seconds to import: start it first.
timeout 9 python3 -c 'import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' \
  > "$logs/probe_torch.txt" 2>&1 &
torch_pid=$!

if out_smi=$(timeout 5 nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap \
  --format=csv,noheader 2>&1) && [ -n "$out_smi" ]; then
  probe_row nvidia-smi ok "$(echo "$out_smi" | head -1)"
  echo "$out_smi" > "$logs/card.txt"
  timeout 5 nvidia-smi >> "$logs/env.txt" 2>&1
else
  probe_row nvidia-smi absent "no NVIDIA GPU visible ($(echo "$out_smi" | head -1))"
fi
if command -v nvcc > /dev/null; then
  probe_row nvcc ok "$(nvcc --version 2>&1 | grep -o 'release [0-9.]*' | head -1) ($(command -v nvcc))"
else
  probe_row nvcc absent "nvcc not on PATH or in /usr/local/cuda/bin"
fi
if command -v cmake > /dev/null; then
  probe_row cmake ok "$(cmake --version | head -1)"
else
  probe_row cmake absent "cmake not found"
fi
if command -v ninja > /dev/null; then
  generator=Ninja
  probe_row ninja ok "$(ninja --version)"
else
  generator="Unix Makefiles"
  probe_row ninja note "not found: builds with make"
fi
cxx=$(command -v c++ || command -v g++)
if [ -n "$cxx" ]; then
  probe_row c++ ok "$("$cxx" --version | head -1)"
else
  cxx="c++"
  probe_row c++ absent "no C++ compiler (c++ or g++)"
fi
# cuBLAS and cuBLASLt: next to nvcc, or known to the loader.
cuda_root=$(dirname "$(dirname "$(command -v nvcc 2> /dev/null || echo /usr/local/cuda/bin/nvcc)")")
for lib in cublas cublasLt; do
  found=""
  for f in "$cuda_root"/lib64/lib"$lib".so* "$cuda_root"/targets/*/lib/lib"$lib".so*; do
    if [ -e "$f" ]; then
      found=$f
      break
    fi
  done
  [ -z "$found" ] && found=$(ldconfig -p 2> /dev/null | grep -o "/[^ ]*/lib$lib\.so[.0-9]*" | head -1)
  if [ -n "$found" ]; then probe_row "$lib" ok "$found"; else probe_row "$lib" absent "lib$lib.so not found"; fi
done
# OpenMP: omp.h and libgomp, by compiling and linking a two-line program.
omp_dir=$(mktemp -d)
if printf '#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n' |
  timeout 5 "$cxx" -fopenmp -x c++ - -o "$omp_dir/omp" > "$omp_dir/log" 2>&1; then
  probe_row openmp ok "omp.h and libgomp ($("$cxx" -print-file-name=libgomp.so 2> /dev/null))"
else
  probe_row openmp absent "omp.h or libgomp missing: $(head -c 160 "$omp_dir/log" | tr '\n' ' ')"
fi
rm -rf "$omp_dir"
# Build dependencies: the carried .gpu-deps, else Debian's -dev packages.
deps=()
# oneDNN travels xz-compressed (scripts/gpu_deps.sh): unpack it once (python3's lzma: no xz needed).
if [ -f .gpu-deps/lib/libdnnl.so.2.xz ] && [ ! -f .gpu-deps/lib/libdnnl.so.2 ]; then
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
    .gpu-deps/lib/libdnnl.so.2.xz .gpu-deps/lib/libdnnl.so.2
fi
if [ -f .gpu-deps/include/cblas.h ] && [ -e .gpu-deps/lib/libopenblas.so ] && [ -d .gpu-deps/googletest ]; then
  deps=(-DTGPT_DEPS_PREFIX="$repo/.gpu-deps" -DTGPT_PYTHON="$(command -v python3)")
  export LD_LIBRARY_PATH="$repo/.gpu-deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  probe_row .gpu-deps ok "carried ($(du -sh .gpu-deps 2> /dev/null | cut -f1))"
elif [ -e /usr/include/x86_64-linux-gnu/openblas-openmp/cblas.h ] && [ -d /usr/src/googletest ]; then
  probe_row .gpu-deps note "not carried; Debian's -dev packages are installed here"
else
  probe_row .gpu-deps absent "not carried and no Debian -dev packages: run 'bash scripts/gpu_deps.sh' first and carry .gpu-deps"
fi
if [ -d .pydeps ]; then
  probe_row .pydeps ok "carried (ftfy for the CPU golden tests; not run here)"
else
  probe_row .pydeps note "not carried (only the CPU golden tests need it; not run here)"
fi
if command -v compute-sanitizer > /dev/null; then
  probe_row compute-sanitizer ok "$(command -v compute-sanitizer)"
else
  probe_row compute-sanitizer note "not found: memcheck and racecheck are skipped"
fi
wait "$torch_pid"
torch_rc=$?
if [ $torch_rc -eq 0 ] && grep -q "available True" "$logs/probe_torch.txt"; then
  probe_row torch ok "$(tail -1 "$logs/probe_torch.txt")"
elif [ $torch_rc -eq 0 ]; then
  # Without a device this is expected; on the device, PyTorch's columns would be empty.
  if [ "$dry" = 1 ]; then st="absent(dry)"; else st=note; fi
  printf 'torch\t%s\t%s\n' "$st" "$(tail -1 "$logs/probe_torch.txt") (no CUDA in PyTorch: the benchmarks' PyTorch columns will be missing)" >> "$logs/probe.tsv"
else
  if [ "$dry" = 1 ]; then st="absent(dry)"; else st=note; fi
  printf 'torch\t%s\t%s\n' "$st" "python3 cannot import torch: the benchmarks' PyTorch columns will be missing ($(tail -1 "$logs/probe_torch.txt" | head -c 120))" >> "$logs/probe.tsv"
fi
cp "$logs/probe.tsv" "$logs/probe.log"
echo "gpu_check: $(if [ "$dry" = 1 ]; then echo "DRY RUN, "; fi)budget $budget s, logs packed into $out/gpu_check.tar.gz"
if [ ${#fatal[@]} -gt 0 ]; then
  missing=$(printf '%s; ' "${fatal[@]}")
  record probe FAILED $((SECONDS - t_probe)) 10 "missing: ${missing%; }"
  pack
  echo
  echo "gpu_check: STOPPED at the probe, nothing was built or run. Missing:"
  printf '  - %s\n' "${fatal[@]}"
  echo
  cat "$out/summary.txt"
  exit 1
fi
record probe ok $((SECONDS - t_probe)) 10 "$(cut -d, -f1 "$logs/card.txt" 2> /dev/null || echo "no GPU (dry run)")"
pack
if [ "$probe_only" = 1 ]; then
  cat "$out/summary.txt"
  exit 0
fi

# ---- plan ---------------------------------------------------------------------------------------
# CUDA test suites, in source order (the real run takes them from the binary once it is built).
suites_from_sources() {
  grep -ohE '^TEST(_F|_P)?\( *[A-Za-z0-9_]+' tests/cuda/*.cpp tests/cuda/*.cu 2> /dev/null |
    sed -E 's/^TEST(_F|_P)?\( *//' | awk '!seen[$0]++'
}
labs=()
for f in bench/lab_*.cu; do
  [ -e "$f" ] || continue
  labs+=("$(basename "$f" .cu)")
done
sanitize_filter='CudaDevice.*:CudaAttention.SmallCasesForSanitizers:CudaAttention.Errors'
sanitize_filter+=':CudaVocabCrossEntropy.I32TargetsCustomIgnoreAndAllIgnored'
sanitize_filter+=':CudaCosineLogitLoss.Bf16AndFrozenWeight'
sanitize_filter+=':CudaClipContrastiveLoss.Bf16FeaturesAndFrozenInputs'
sanitize_filter+=':CudaBiasActivation.FrozenBiasOrFrozenInput'

# Kernel files of each lab, for a standalone nvcc build when its CMake target did not build: labs
# whose engine kernels take scratch from the caching allocator (marked +) link the CUDA backend
# instead of defining the stream themselves; a comma separates a lab's kernel files.
lab_kernels() {
  case $1 in
    lab_attention) echo attention ;;
    lab_vocab_ce) echo vocab_ce ;;
    lab_cosine_loss) echo cosine_loss ;;
    lab_clip_contrastive_loss) echo clip_contrastive_loss ;;
    lab_layernorm | lab_softmax) echo norm+ ;;
    lab_adamw) echo adamw+ ;;
    lab_bias_activation) echo bias_activation+ ;;
    lab_embedding) echo index ;;
    lab_elementwise) echo elementwise,tensor_kernels+ ;;
    *) echo "" ;;
  esac
}
standalone_lab() { # standalone_lab LAB: nvcc build of one lab into build-gpu/
  local lab=$1 kern extra srcs=()
  kern=$(lab_kernels "$lab")
  [ -n "$kern" ] || return 1
  if [ "${kern%+}" != "$kern" ]; then
    extra=(base/cuda/cuda_backend.cu base/device.cpp)
    kern=${kern%+}
  else
    extra=(-DLAB_STANDALONE)
  fi
  for k in ${kern//,/ }; do srcs+=("kernels/cuda/$k.cu"); done
  nvcc -O3 -std=c++17 -arch=sm_90 --expt-relaxed-constexpr -I. "${extra[@]}" \
    "bench/$lab.cu" "${srcs[@]}" base/dtype.cpp -lcublas -o "$build/$lab"
}
# The labs and benchmarks, built in the background while the tests run.
build_bench() {
  local rc=0 lab
  cmake --build "$build" -j "$jobs" --target "${labs[@]}" tgpt-bench clip-gpu-bench bench_tgpt_step || rc=1
  for lab in "${labs[@]}"; do
    if [ ! -x "$build/$lab" ]; then
      echo "== $lab did not build with CMake: standalone nvcc build"
      standalone_lab "$lab" || rc=1
    fi
  done
  return $rc
}

# ---- configure and build ------------------------------------------------------------------------
if [ "$dry" = 1 ]; then
  mapfile -t suites < <(suites_from_sources)
else
  suites=()
fi
step configure 90 cmake -S . -B "$build" -G "$generator" -DCMAKE_BUILD_TYPE=Release -DTGPT_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DTGPT_BUILD_BENCH=ON "${deps[@]}"
configured=$?
built=1
if [ $configured -eq 0 ]; then
  step build_tests 330 cmake --build "$build" -j "$jobs" --target tgpt_cuda_tests
  built=$?
else
  record build_tests not-run 0 330 "configure failed"
fi
if [ "$dry" = 0 ] && [ $built -eq 0 ]; then
  # Suites from the binary (parameterised ones as Prefix/Suite): the suite name after the '/'.
  mapfile -t suites < <("$build/tgpt_cuda_tests" --gtest_list_tests 2> /dev/null |
    grep -E '^[A-Za-z0-9_/]+\.$' | sed -E 's/\.$//; s#.*/##' | awk '!seen[$0]++')
  [ ${#suites[@]} -eq 0 ] && mapfile -t suites < <(suites_from_sources)
fi
# The device and tensor basics first: when they fail, the rest says little.
order_suites() {
  local s
  for s in "${suites[@]}"; do case $s in CudaDevice | CudaTensor) echo "$s" ;; esac; done
  for s in "${suites[@]}"; do case $s in CudaDevice | CudaTensor) ;; *) echo "$s" ;; esac; done
}
mapfile -t suites < <(order_suites)
bg_t0=0
if [ "$dry" = 0 ] && [ $configured -eq 0 ]; then
  bg_t0=$SECONDS
  (
    renice -n 5 "$BASHPID" > /dev/null 2>&1 # the tests' CPU references come first
    build_bench > "$logs/build_bench.log" 2>&1
    echo $? > "$logs/build_bench.rc"
  ) &
  bg_pid=$!
fi

# ---- CUDA tests, one suite per process ----------------------------------------------------------
for s in "${suites[@]}"; do
  if [ $built -ne 0 ]; then
    record "test:$s" not-run 0 150 "tgpt_cuda_tests did not build"
    continue
  fi
  step "test:$s" 150 "$build/tgpt_cuda_tests" --gtest_filter="$s.*:*/$s.*" --gtest_color=no
done

# ---- compute-sanitizer on a small subset --------------------------------------------------------
# sanitizer_refused LOG: the sanitizer checked nothing on this device (it never started the tests,
# or said the device or driver is not supported) and reported no memory error or race.
sanitizer_refused() {
  grep -qE '^=+ .*(Invalid|[Rr]ace|[Hh]azard|[Ll]eak|[Uu]ninitiali[sz]ed|[Oo]ut of bounds)' "$1" && return 1
  grep -q '^\[ RUN' "$1" || return 0
  grep -qiE '^=+ .*(not supported|unsupported|unable to|failed to initiali|cannot be used)' "$1"
}

# sanitize TOOL: runs the tool; a device or driver that refuses the sanitizer is recorded as
# skipped with its message rather than as a failure.
sanitize() {
  local tool=$1 log
  log=$logs/$tool.log
  if ! command -v compute-sanitizer > /dev/null && [ "$dry" = 0 ]; then
    record "$tool" skipped 0 150 "compute-sanitizer not found"
    return
  fi
  if [ $built -ne 0 ] && [ "$dry" = 0 ]; then
    record "$tool" not-run 0 150 "tgpt_cuda_tests did not build"
    return
  fi
  step "$tool" 150 compute-sanitizer --tool "$tool" --error-exitcode 1 \
    "$build/tgpt_cuda_tests" --gtest_filter="$sanitize_filter" --gtest_color=no
  local rc=$?
  if [ "$dry" = 0 ] && [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -ne 137 ] && [ -f "$log" ] &&
    sanitizer_refused "$log"; then
    # Replace the FAILED row: the sanitizer never ran the tests.
    sed -i '$d' "$logs/steps.tsv"
    status=0
    grep -qE $'\t(FAILED|TIMEOUT|CRASH)\t' "$logs/steps.tsv" && status=1
    record "$tool" skipped 0 150 "refused on this device: $(grep -m2 -E '^=+ |[Ee]rror' "$log" | tr '\n' ' ' | head -c 200)"
    pack
  fi
}
sanitize memcheck
sanitize racecheck

# ---- labs and benchmarks ------------------------------------------------------------------------
bench_ok=1
if [ "$dry" = 1 ]; then
  step build_bench 240 cmake --build "$build" -j "$jobs" --target "${labs[@]}" tgpt-bench clip-gpu-bench bench_tgpt_step
elif [ -n "$bg_pid" ]; then
  l=$(left)
  lim=$((l < 240 ? l : 240))
  t0=$SECONDS
  while kill -0 "$bg_pid" 2> /dev/null && [ $((SECONDS - t0)) -lt "$lim" ]; do sleep 1; done
  if kill -0 "$bg_pid" 2> /dev/null; then
    kill_tree "$bg_pid"
    wait "$bg_pid" 2> /dev/null
    record build_bench TIMEOUT $((SECONDS - bg_t0)) "$lim" "still building when the budget ran out"
    bench_ok=0
  else
    wait "$bg_pid" 2> /dev/null
    if [ "$(cat "$logs/build_bench.rc" 2> /dev/null)" = 0 ]; then
      record build_bench ok $((SECONDS - bg_t0)) 240 "in the background since t=$bg_t0 s"
    else
      record build_bench FAILED $((SECONDS - bg_t0)) 240 "some targets failed (build_bench.log); built ones still run"
    fi
  fi
  pack
else
  record build_bench not-run 0 240 "configure failed"
  bench_ok=0
fi

for lab in "${labs[@]}"; do
  if [ "$dry" = 0 ] && [ ! -x "$build/$lab" ]; then
    record "check:$lab" not-run 0 60 "$lab did not build"
    continue
  fi
  step "check:$lab" 60 "$build/$lab" --check-only
done
if [ "$dry" = 1 ] || { [ $bench_ok = 1 ] && [ -x "$build/tgpt-bench" ]; }; then
  step bench:gpu 200 bash bench/run_gpu_bench.sh "$build" "$logs/bench"
else
  record bench:gpu not-run 0 200 "tgpt-bench did not build"
fi
[ -f "$logs/bench/gpu_table.md" ] && cp "$logs/bench/gpu_table.md" "$logs/gpu_table.md"
# One TGP-T training iteration (B 8, C 1000, 32/64 queries; frozen CLIP in f32, then in bf16,
# tgpt-train's GPU default) and one CoOp step (C 1000) on the GPU: seconds per iteration and the
# caching allocator's peak (JSON lines in the step logs).
if [ "$dry" = 1 ] || [ -x "$build/bench_tgpt_step" ]; then
  step bench:tgpt_step 120 "$build/bench_tgpt_step" --device cuda --warmup 2 --iters 5
  step bench:tgpt_step_bf16 90 "$build/bench_tgpt_step" --device cuda --precision bf16 --warmup 2 \
    --iters 5
  step bench:coop_step 90 "$build/bench_tgpt_step" --device cuda --method coop --warmup 1 --iters 2
else
  record bench:tgpt_step not-run 0 120 "bench_tgpt_step did not build"
fi
for lab in "${labs[@]}"; do
  if [ "$dry" = 0 ] && [ ! -x "$build/$lab" ]; then
    record "timing:$lab" not-run 0 60 "$lab did not build"
    continue
  fi
  step "timing:$lab" 60 "$build/$lab"
done

pack
echo
cat "$out/summary.txt"
exit $status

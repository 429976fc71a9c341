/*
 * bench_clip_cpu.cpp — CPU benchmark of CLIP ViT-B/16 encode_image (batch 8) and encode_text
 * (16 sequences of 77 tokens, EOT at the last position so every position is computed) with
 * random weights of the real shapes. bench/run_cpu_bench.sh runs it beside
 * bench/torch_clip_cpu.py (the same model in PyTorch CPU, same thread count).
 */
#include <benchmark/benchmark.h>

#include "bench/clip_bench_weights.h"
#include "engine/autograd.h"
#include "engine/random.h"
#include "kernels/cpu/blas_setup.h"
#include "models/clip/clip.h"

using namespace tgpt;

namespace {

const ClipModel& model() {
  static const ClipModel m = [] {
    const ClipConfig cfg = ClipConfig::openai("ViT-B/16");
    return ClipModel::from_tensors(bench::random_clip_weights(cfg, 0), cfg);
  }();
  return m;
}

void BM_clip_encode_image(benchmark::State& state) {
  const ClipModel& m = model();
  Generator gen(1);
  Tensor images = gen.randn({state.range(0), 3, 224, 224});
  for (auto _ : state) {
    Tensor f = m.encode_image(images);
    benchmark::DoNotOptimize(f.data_ptr());
  }
  state.counters["items/s"] = benchmark::Counter(
      static_cast<double>(state.range(0) * state.iterations()), benchmark::Counter::kIsRate);
}

void BM_clip_encode_text(benchmark::State& state) {
  const ClipModel& m = model();
  const int64_t n = state.range(0);
  Generator gen(2);
  Tensor tokens = gen.randint({n, 77}, 1, 49406, DType::i64);
  int64_t* t = tokens.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    t[i * 77] = 49406;
    t[i * 77 + 76] = 49407;
  }
  for (auto _ : state) {
    Tensor f = m.encode_text(tokens);
    benchmark::DoNotOptimize(f.data_ptr());
  }
  state.counters["items/s"] =
      benchmark::Counter(static_cast<double>(n * state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_clip_encode_image)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_clip_encode_text)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime();

// Google Benchmark's main after select_blas_kernels (kernels/cpu/blas_setup.h); the JSON's context
// records the OpenBLAS kernels that ran and who chose them.
int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);
  const tgpt::BlasStatus blas = tgpt::blas_status();
  benchmark::AddCustomContext("blas_core", blas.core);
  benchmark::AddCustomContext("blas_core_reason", blas.reason);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

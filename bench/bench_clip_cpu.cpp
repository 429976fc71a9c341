/*
 * bench_clip_cpu.cpp — CPU benchmark of CLIP ViT-B/16 encode_image (batch 8) and encode_text
 * (16 sequences of 77 tokens, EOT at the last position so every position is computed) with
 * random weights of the real shapes. bench/run_cpu_bench.sh runs it beside
 * bench/torch_clip_cpu.py (the same model in PyTorch CPU, same thread count).
 */
#include <benchmark/benchmark.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/random.h"
#include "models/clip/clip.h"

using namespace tgpt;

namespace {

ClipConfig vit_b16() {
  return ClipConfig::openai("ViT-B/16");
}

const ClipModel& model() {
  static const ClipModel m = [] {
    Generator gen(0);
    std::map<std::string, Tensor> w;
    for (const auto& [name, shape] : expected_clip_tensors(vit_b16())) {
      double fan_in = shape.size() >= 2 ? static_cast<double>(shape.numel() / shape[0]) : 1.0;
      w[name] = gen.randn(shape, DType::f32, 1.0 / std::sqrt(fan_in));
    }
    return ClipModel::from_tensors(w, vit_b16());
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

BENCHMARK_MAIN();

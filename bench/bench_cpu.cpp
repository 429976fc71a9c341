/*
 * bench_cpu.cpp — CPU benchmark of tgpt's GEMM (linear) and attention at CLIP shapes.
 *
 * Google Benchmark; each case reports GFLOP/s as a counter. bench/run_cpu_bench.sh runs this and
 * bench/torch_cpu.py (the same operations in PyTorch CPU, same thread count) and prints the two
 * side by side.
 *   linear:    x [M, K] · Wᵀ, W [N, K]  (CLIP QKV and MLP projections; M = tokens x batch)
 *   attention: qkv [B, T, 3C] -> [B, T, C], H heads, causal for text (T = 77) and not for images
 */
#include <benchmark/benchmark.h>

#include "base/parallel.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "kernels/cpu/blas_setup.h"

using namespace tgpt;

namespace {

void BM_linear(benchmark::State& state) {
  int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  Generator gen(0);
  Tensor x = gen.randn({M, K});
  Tensor w = gen.randn({N, K}, DType::f32, 0.02);
  Tensor b = gen.randn({N});
  NoGradGuard ng;
  for (auto _ : state) {
    Tensor y = linear(x, w, b);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * M * K * N * 1e-9 * state.iterations(), benchmark::Counter::kIsRate);
}

void BM_attention(benchmark::State& state) {
  int64_t B = state.range(0), T = state.range(1), C = state.range(2), H = state.range(3);
  bool causal = state.range(4) != 0, backward = state.range(5) != 0;
  Generator gen(0);
  Tensor qkv = gen.randn({B, T, 3 * C});
  Tensor g = gen.randn({B, T, C});
  if (backward) qkv.set_requires_grad(true);
  for (auto _ : state) {
    if (backward) {
      qkv.zero_grad();
      Tensor o = attention(qkv, static_cast<int>(H), causal);
      o.backward(g);
      benchmark::DoNotOptimize(qkv.grad().data_ptr());
    } else {
      NoGradGuard ng;
      Tensor o = attention(qkv, static_cast<int>(H), causal);
      benchmark::DoNotOptimize(o.data_ptr());
    }
  }
  // QKᵀ and P·V: 2 GEMMs of 2·T·T·D per head (forward); backward is 2.5x forward.
  double flops = 4.0 * B * T * T * C * (backward ? 3.5 : 1.0);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9 * state.iterations(), benchmark::Counter::kIsRate);
}

}  // namespace

// M, K, N: ViT-B/16 one image (197 tokens) and a batch of 8 (QKV, attention output, MLP in and
// out); text 77 tokens and 16 sequences; 2048³ (issue 13's OpenBLAS core measurement).
BENCHMARK(BM_linear)
    ->Args({197, 768, 2304})
    ->Args({197, 768, 3072})
    ->Args({1576, 768, 2304})
    ->Args({1576, 768, 768})
    ->Args({1576, 768, 3072})
    ->Args({1576, 3072, 768})
    ->Args({77, 512, 1536})
    ->Args({77, 512, 2048})
    ->Args({1232, 512, 1536})
    ->Args({2048, 2048, 2048})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// B, T, C, H, causal, backward
BENCHMARK(BM_attention)
    ->Args({16, 77, 512, 8, 1, 0})
    ->Args({16, 77, 512, 8, 1, 1})
    ->Args({8, 197, 768, 12, 0, 0})
    ->Args({8, 197, 768, 12, 0, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

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

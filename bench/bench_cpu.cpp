/*
 * bench_cpu.cpp — CPU benchmark of tgpt's GEMM (linear) and attention at CLIP shapes.
 *
 * Google Benchmark; each case reports GFLOP/s as a counter. bench/run_cpu_bench.sh runs this and
 * bench/torch_cpu.py (the same operations in PyTorch CPU, same thread count) and prints the two
 * side by side.
 *   linear:    x [M, K] · Wᵀ, W [N, K]  (CLIP QKV and MLP projections; M = tokens x batch)
 *   gemm_backend: the same product (no bias) straight on one GEMM library: 0 OpenBLAS (the core
 *              in use: run once as selected and once with OPENBLAS_CORETYPE=Prescott), 1 oneDNN
 *              f32, 2 oneDNN bf16 (bf16 x and W, f32 result); bench/compare_gemm_backends.py
 *              tabulates them against the measured peak
 *   attention: qkv [B, T, 3C] -> [B, T, C], H heads, causal for text (T = 77) and not for images
 */
#include <benchmark/benchmark.h>

#include "base/parallel.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "kernels/cpu/blas_setup.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/onednn_gemm.h"

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

void BM_gemm_backend(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  const int backend = static_cast<int>(state.range(3));
  if (backend == 2 && !cpu::onednn_native_bf16()) {
    state.SkipWithError("no bf16 dot products on this CPU");
    return;
  }
  Generator gen(0);
  const std::vector<double> xv = gen.randn({M, K}).to_double_vector();
  const std::vector<double> wv = gen.randn({N, K}, DType::f32, 0.02).to_double_vector();
  std::vector<float> x(xv.begin(), xv.end()), w(wv.begin(), wv.end()), y(M * N);
  std::vector<bf16> xb(x.size()), wb(w.size());
  for (size_t i = 0; i < x.size(); ++i) xb[i] = f32_to_bf16(x[i]);
  for (size_t i = 0; i < w.size(); ++i) wb[i] = f32_to_bf16(w[i]);
  for (auto _ : state) {  // y [M, N] = x [M, K] @ wᵀ
    if (backend == 0)
      cpu::gemm_openblas(false, true, M, N, K, 1.f, x.data(), K, w.data(), K, 0.f, y.data(), N);
    else if (backend == 1)
      cpu::gemm_onednn(false, true, M, N, K, 1.f, x.data(), K, w.data(), K, 0.f, y.data(), N);
    else
      cpu::gemm_bf16(false, true, M, N, K, 1.f, xb.data(), K, wb.data(), K, 0.f, y.data(), N);
    benchmark::DoNotOptimize(y.data());
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

// M, K, N, backend: ViT-B/16 batch 8 (QKV, attention out, MLP in/out) and one image; the text
// encoder, 16 sequences (QKV, MLP in/out); the vocabulary projection (TGP-T's caption loss); the
// small CLIP of the main job (width 64, 8320 token rows; MLP 256) and small batches; 2048³.
static void gemm_backend_args(benchmark::internal::Benchmark* b) {
  const int64_t shapes[][3] = {
      {1576, 768, 2304}, {1576, 768, 768},  {1576, 768, 3072}, {1576, 3072, 768},
      {197, 768, 2304},  {1232, 512, 1536}, {1232, 512, 2048}, {1232, 2048, 512},
      {768, 512, 49408}, {8320, 64, 192},   {8320, 64, 64},    {8320, 64, 256},
      {8320, 256, 64},   {8, 512, 512},     {128, 512, 512},   {2048, 2048, 2048}};
  for (const auto& s : shapes)
    for (int64_t backend = 0; backend < 3; ++backend) b->Args({s[0], s[1], s[2], backend});
}
BENCHMARK(BM_gemm_backend)->Apply(gemm_backend_args)->Unit(benchmark::kMillisecond)->UseRealTime();

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

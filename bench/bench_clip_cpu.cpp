/*
 * bench_clip_cpu.cpp — CPU benchmark of CLIP ViT-B/16 encode_image (batch 8) and encode_text
 * (16 sequences of 77 tokens, EOT at the last position so every position is computed) with
 * random weights of the real shapes, in f32 and with `--precision bf16`'s model (bf16 weights and
 * activations; linear, matmul and the patch convolution as bf16 GEMMs with f32 accumulation where
 * the CPU has bf16 dot products, kernels/cpu/matmul.h). bench/run_cpu_bench.sh runs it beside
 * bench/torch_clip_cpu.py (the same model in PyTorch CPU f32, same thread count); the *_bf16
 * cases are compared with PyTorch's f32 ones.
 */
#include <benchmark/benchmark.h>

#include "bench/clip_bench_weights.h"
#include "engine/autograd.h"
#include "engine/random.h"
#include "kernels/cpu/blas_setup.h"
#include "kernels/cpu/matmul.h"
#include "models/clip/clip.h"

using namespace tgpt;

namespace {

// The ViT-B/16 of random weights, computing in `dtype` (f32 or bf16), built at first use.
const ClipModel& model(DType dtype) {
  static const ClipConfig cfg = ClipConfig::openai("ViT-B/16");
  if (dtype == DType::bf16) {
    static const ClipModel m =
        ClipModel::from_tensors(bench::random_clip_weights(cfg, 0), cfg, Device::CPU, DType::bf16);
    return m;
  }
  static const ClipModel m = ClipModel::from_tensors(bench::random_clip_weights(cfg, 0), cfg);
  return m;
}

void encode_image_case(benchmark::State& state, DType dtype) {
  const ClipModel& m = model(dtype);
  Generator gen(1);
  Tensor images = gen.randn({state.range(0), 3, 224, 224});
  for (auto _ : state) {
    Tensor f = m.encode_image(images);
    benchmark::DoNotOptimize(f.data_ptr());
  }
  state.counters["items/s"] = benchmark::Counter(
      static_cast<double>(state.range(0) * state.iterations()), benchmark::Counter::kIsRate);
}

void encode_text_case(benchmark::State& state, DType dtype) {
  const ClipModel& m = model(dtype);
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

void BM_clip_encode_image(benchmark::State& state) {
  encode_image_case(state, DType::f32);
}
void BM_clip_encode_text(benchmark::State& state) {
  encode_text_case(state, DType::f32);
}
void BM_clip_encode_image_bf16(benchmark::State& state) {
  encode_image_case(state, DType::bf16);
}
void BM_clip_encode_text_bf16(benchmark::State& state) {
  encode_text_case(state, DType::bf16);
}

}  // namespace

BENCHMARK(BM_clip_encode_image)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_clip_encode_text)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_clip_encode_image_bf16)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_clip_encode_text_bf16)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime();

// Google Benchmark's main after select_blas_kernels (kernels/cpu/blas_setup.h); the JSON's context
// records the OpenBLAS kernels that ran and who chose them.
int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);
  const tgpt::BlasStatus blas = tgpt::blas_status();
  benchmark::AddCustomContext("blas_core", blas.core);
  benchmark::AddCustomContext("blas_core_reason", blas.reason);
  // Whether the *_bf16 cases ran bf16 GEMMs (else: bf16 storage, f32 products).
  benchmark::AddCustomContext("bf16_gemm",
                              tgpt::cpu::bf16_gemm_native() ? "native" : "f32 fallback");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

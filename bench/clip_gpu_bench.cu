/*
 * clip_gpu_bench.cu — CLIP inference throughput on the GPU: ViT-B/16 encode_image at batch 256 and
 * encode_text at 256 × 77 tokens (EOT last, so every position is computed), random weights of the
 * real shapes, in bf16 and f16 compute (weights uploaded once in that dtype, f32 accumulation),
 * inputs already on the device. For each case: median time over repeats (CUDA events on tgpt's
 * stream), images (or sequences) per second, the model's GEMM + attention TFLOP/s as a percentage
 * of the cuBLAS bf16 GEMM rate measured in the same run, and the peak device memory of one call.
 *
 * Usage: clip-gpu-bench [OUT.tsv]   (TSV like tgpt-bench: name, ms, value, unit, pct_of_peak,
 * peak_mb). bench/torch_clip_gpu.py times the same cases with an nn.Module CLIP in PyTorch;
 * bench/run_gpu_bench.sh compares both (bench/compare_gpu.py).
 */
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "bench/clip_bench_weights.h"
#include "bench/gpu_bench_common.cuh"
#include "engine/autograd.h"
#include "engine/random.h"
#include "kernels/cpu/blas_setup.h"
#include "models/clip/clip.h"

using namespace tgpt;
using namespace tgpt::bench;

namespace {

// FLOPs of one transformer tower over T tokens of width W (GEMMs and attention products).
double tower_flops(double T, double W, double layers) {
  return layers * (2.0 * T * W * W * (3 + 1 + 8) + 4.0 * T * T * W);
}

double image_flops(const ClipConfig& c) {
  const double grid = c.image_resolution / c.vision_patch_size, T = grid * grid + 1;
  const double patch =
      2.0 * grid * grid * c.vision_width * 3.0 * c.vision_patch_size * c.vision_patch_size;
  return patch + tower_flops(T, c.vision_width, c.vision_layers) +
         2.0 * c.vision_width * c.embed_dim;
}

double text_flops(const ClipConfig& c) {
  return tower_flops(c.context_length, c.transformer_width, c.transformer_layers) +
         2.0 * c.transformer_width * c.embed_dim;
}

}  // namespace

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // the CPU side's GEMMs at the CPU's speed
  if (!cuda_available()) {
    std::fprintf(stderr, "clip-gpu-bench: no CUDA device\n");
    return 1;
  }
  const DevicePeaks peaks = measure_device_peaks();
  std::printf("device %s: measured D2D copy %.0f GB/s, cuBLAS bf16 GEMM %.0f TFLOP/s\n",
              peaks.name.c_str(), peaks.copy_gbs, peaks.gemm_tflops);

  const ClipConfig cfg = ClipConfig::openai("ViT-B/16");
  // f32 on the host; each model below uploads its own copy in its compute dtype.
  const std::map<std::string, Tensor> weights = random_clip_weights(cfg, 0);
  const int64_t B = 256;
  Generator gen(1);
  Tensor images = gen.randn({B, 3, 224, 224}).to(Device::CUDA);  // [B,3,224,224] f32
  Tensor tokens = gen.randint({B, 77}, 1, 49406, DType::i64);    // [B,77]
  for (int64_t i = 0; i < B; ++i) {
    tokens.data<int64_t>()[i * 77] = 49406;
    tokens.data<int64_t>()[i * 77 + 76] = 49407;
  }
  tokens = tokens.to(Device::CUDA);

  std::vector<BenchRow> rows;
  NoGradGuard no_grad;
  for (DType dt : {DType::bf16, DType::f16}) {
    std::string tag = dtype_name(dt);
    try {
      ClipModel model = ClipModel::from_tensors(weights, cfg, Device::CUDA, dt);
      BenchRow r = run_bench_case("clip_encode_image " + tag + " vitb16 b256", 10,
                                  [&] { Tensor f = model.encode_image(images); });
      r.value = B / r.ms * 1e3, r.unit = "img/s";
      r.pct = 100.0 * (B * image_flops(cfg) / r.ms * 1e-9) / peaks.gemm_tflops;
      rows.push_back(r);
      r = run_bench_case("clip_encode_text " + tag + " vitb16 256x77", 10,
                         [&] { Tensor f = model.encode_text(tokens); });
      r.value = B / r.ms * 1e3, r.unit = "seq/s";
      r.pct = 100.0 * (B * text_flops(cfg) / r.ms * 1e-9) / peaks.gemm_tflops;
      rows.push_back(r);
    } catch (const Error& e) {
      BenchRow r;
      r.name = "clip " + tag;
      r.note = std::string("n/a: ") + e.what();
      rows.push_back(r);
    }
  }
  print_bench_rows(rows, argc > 1 ? argv[1] : nullptr, peaks);
  return 0;
}

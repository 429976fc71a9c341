/*
 * tgpt_bench.cu — the tgpt-bench runner: times each CUDA kernel of the engine through the engine
 * ops on CUDA tensors (autograd included, as a training step calls them), at CLIP / TGP-T shapes:
 *   attention forward+backward (bf16 and f32), vocab cross-entropy forward+backward, the cosine
 *   classification loss, layer_norm forward+backward, softmax forward+backward (attention-row and
 *   vocabulary-row shapes), the token-embedding lookup forward+backward, an AdamW step, and GEMMs
 *   through linear.
 * For each: median time over repeats (CUDA events; an L2-sized memset before every repeat),
 * achieved TFLOP/s or GB/s, the percentage of the device peak measured in the same run (cuBLAS
 * bf16 GEMM rate for FLOP-bound ops; device-to-device cudaMemcpy bandwidth, bytes read + written,
 * for memory-bound ones), and the peak device memory the op took (caching allocator stats).
 * An op whose CUDA path is missing in this build prints "n/a" with the engine's error.
 *
 * Usage: tgpt-bench [OUT.tsv]   (TSV: name, ms, value, unit, pct_of_peak, peak_mb)
 * bench/torch_gpu.py measures the same cases in PyTorch; bench/run_gpu_bench.sh compares them.
 */
#include <cstdio>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "bench/gpu_bench_common.cuh"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/random.h"
#include "kernels/cpu/blas_setup.h"

using namespace tgpt;
using namespace tgpt::bench;

namespace {

Tensor dev_randn(Generator& g, const Shape& s, DType dt, double std = 1.0) {
  return g.randn(s, DType::f32, std).to(dt).to(Device::CUDA);
}

// Runs one case: fn is a whole forward(+backward) call; work = FLOPs or bytes.
BenchRow run_case(const std::string& name, bool flops, double work, double peak_rate, int repeats,
                  const std::function<void()>& fn) {
  BenchRow r = run_bench_case(name, repeats, fn);
  r.unit = flops ? "TFLOP/s" : "GB/s";
  if (r.note.empty()) {
    r.value = flops ? work / r.ms * 1e-9 : work / r.ms * 1e-6;
    r.pct = 100.0 * r.value / peak_rate;
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // the CPU side's GEMMs at the CPU's speed
  if (!cuda_available()) {
    std::fprintf(stderr, "tgpt-bench: no CUDA device\n");
    return 1;
  }
  const DevicePeaks peaks = measure_device_peaks();
  const double copy_gbs = peaks.copy_gbs, gemm_tflops = peaks.gemm_tflops;
  std::printf("device %s: measured D2D copy %.0f GB/s, cuBLAS bf16 GEMM %.0f TFLOP/s\n",
              peaks.name.c_str(), copy_gbs, gemm_tflops);

  Generator gen(0);
  std::vector<BenchRow> rows;

  // ---- attention forward + backward (FLOPs: 4·B·T²·C, halved causal, x3.5 for fwd+bwd) ----
  struct Att {
    const char* tag;
    int64_t B, T, H;
    bool causal;
    DType dt;
  };
  for (Att a : {Att{"text16x77h8", 16, 77, 8, true, DType::bf16},
                Att{"text256x77h8", 256, 77, 8, true, DType::bf16},
                Att{"vitb16_64x197h12", 64, 197, 12, false, DType::bf16},
                Att{"vitl14_32x257h16", 32, 257, 16, false, DType::bf16},
                Att{"text16x77h8", 16, 77, 8, true, DType::f32}}) {
    const int64_t C = a.H * 64;
    Tensor qkv = dev_randn(gen, {a.B, a.T, 3 * C}, a.dt).set_requires_grad(true);
    Tensor g = dev_randn(gen, {a.B, a.T, C}, a.dt);
    const double flops = 3.5 * 4.0 * a.B * a.T * a.T * C * (a.causal ? 0.5 : 1.0);
    rows.push_back(run_case(std::string("attention_fb ") + dtype_name(a.dt) + " " + a.tag, true,
                            flops, gemm_tflops, 30, [&] {
                              qkv.zero_grad();
                              Tensor o = attention(qkv, static_cast<int>(a.H), a.causal);
                              o.backward(g);
                            }));
  }

  // ---- vocab cross-entropy forward + backward (2 GEMMs of 2·N·W·V) ----
  for (DType dt : {DType::bf16, DType::f32}) {
    const int64_t N = 768, W = 512, V = 49408;
    Tensor h = dev_randn(gen, {N, W}, dt, 0.5).set_requires_grad(true);
    Tensor E = dev_randn(gen, {V, W}, dt, 0.05);
    Tensor t = gen.randint({N}, 0, V);
    for (int64_t i = 0; i < N; i += 3) t.data<int64_t>()[i] = -100;
    t = t.to(Device::CUDA);
    Tensor seed = Tensor::full({}, 1.0, dt).to(Device::CUDA);
    rows.push_back(run_case(std::string("vocab_ce_fb ") + dtype_name(dt) + " 768x512x49408", true,
                            4.0 * N * W * V, gemm_tflops, 20, [&] {
                              h.zero_grad();
                              Tensor loss = vocab_cross_entropy(h, E, t, 0.1, -100);
                              loss.backward(seed);
                            }));
  }

  // ---- cosine classification loss forward + backward (bytes: x, W read twice; dx, dW written)
  // ----
  {
    const int64_t N = 8, F = 1024, K = 1000;
    Tensor x = dev_randn(gen, {N, F}, DType::f32, 2.0).set_requires_grad(true);
    Tensor w = dev_randn(gen, {K, F}, DType::f32, 0.03).set_requires_grad(true);
    Tensor t = gen.randint({N}, 0, K).to(Device::CUDA);
    Tensor seed = Tensor::full({}, 1.0, DType::f32).to(Device::CUDA);
    rows.push_back(run_case("cosine_loss_fb f32 8x1024x1000", false, 3.0 * (N * F + K * F) * 4,
                            copy_gbs, 50, [&] {
                              x.zero_grad(), w.zero_grad();
                              Tensor loss = cosine_logit_loss(x, w, t, 100.0);
                              loss.backward(seed);
                            }));
  }

  // ---- layer_norm forward + backward (bytes: x, y, dy, dx + x again: 5·N·C) ----
  for (auto [tag, N, C] : {std::tuple{"1232x512", int64_t(16 * 77), int64_t(512)},
                           std::tuple{"12608x768", int64_t(64 * 197), int64_t(768)}}) {
    Tensor x = dev_randn(gen, {N, C}, DType::bf16).set_requires_grad(true);
    Tensor w = dev_randn(gen, {C}, DType::bf16).set_requires_grad(true);
    Tensor b = dev_randn(gen, {C}, DType::bf16).set_requires_grad(true);
    Tensor dy = dev_randn(gen, {N, C}, DType::bf16);
    rows.push_back(run_case(std::string("layernorm_fb bf16 ") + tag, false, 5.0 * N * C * 2,
                            copy_gbs, 50, [&] {
                              x.zero_grad(), w.zero_grad(), b.zero_grad();
                              Tensor y = layer_norm(x, w, b, 1e-5);
                              y.backward(dy);
                            }));
  }

  // ---- softmax forward + backward over the last dim: ViT-B/16 attention rows [64·12·197, 197]
  // in bf16 and the vocabulary rows [768, 49408] in f32 (bytes: x read, y written; dy and x read,
  // dx written: 5·N·C) ----
  for (auto [tag, N, C, dt] :
       {std::tuple{"151296x197", int64_t(64 * 12 * 197), int64_t(197), DType::bf16},
        std::tuple{"768x49408", int64_t(768), int64_t(49408), DType::f32}}) {
    Tensor x = dev_randn(gen, {N, C}, dt, 3.0).set_requires_grad(true);
    Tensor dy = dev_randn(gen, {N, C}, dt);
    rows.push_back(run_case(std::string("softmax_fb ") + dtype_name(dt) + " " + tag, false,
                            5.0 * N * C * dtype_size(dt), copy_gbs, 30, [&] {
                              x.zero_grad();
                              Tensor y = softmax(x);
                              y.backward(dy);
                            }));
  }

  // ---- token embedding forward + backward: [16, 77] ids (host tensor, as the text encoder
  // passes them) into weight [49408, 512] f32 (bytes: the n gathered rows read and written, g
  // read, the dense [V, C] gradient written: 4·(3·n·C + V·C)) ----
  {
    const int64_t V = 49408, C = 512, B = 16, T = 77;
    Tensor w = dev_randn(gen, {V, C}, DType::f32, 0.02).set_requires_grad(true);
    Tensor ids = gen.randint({B, T}, 0, V);
    Tensor g = dev_randn(gen, {B, T, C}, DType::f32);
    rows.push_back(run_case("embedding_fb f32 1232x49408x512", false,
                            4.0 * (3.0 * B * T * C + static_cast<double>(V) * C), copy_gbs, 30,
                            [&] {
                              w.zero_grad();
                              Tensor y = embedding(ids, w);
                              y.backward(g);
                            }));
  }

  // ---- AdamW step over 16M f32 parameters in 4 tensors (bytes: p, g, m, v read; p, m, v written)
  // ----
  {
    std::vector<Tensor> params;
    for (int i = 0; i < 4; ++i) {
      Tensor p = dev_randn(gen, {4 << 20}, DType::f32, 0.02).set_requires_grad(true);
      p.set_grad(dev_randn(gen, {4 << 20}, DType::f32, 1e-3));
      params.push_back(p);
    }
    const double n = 16.0 * (1 << 20);
    BenchRow r;
    try {
      AdamW opt(params, AdamWOptions::tgpt(1e-3));
      rows.push_back(
          run_case("adamw_step f32 16M", false, 7.0 * 4 * n, copy_gbs, 50, [&] { opt.step(); }));
    } catch (const Error& e) {
      r.name = "adamw_step f32 16M";
      r.note = std::string("n/a: ") + e.what();
      rows.push_back(r);
    }
  }

  // ---- GEMM through linear (forward only, bf16) ----
  for (auto [tag, M, K, N] :
       {std::tuple{"1232x512x2048", int64_t(1232), int64_t(512), int64_t(2048)},
        std::tuple{"12608x768x3072", int64_t(12608), int64_t(768), int64_t(3072)}}) {
    Tensor x = dev_randn(gen, {M, K}, DType::bf16);
    Tensor w = dev_randn(gen, {N, K}, DType::bf16, 0.02);
    rows.push_back(
        run_case(std::string("linear bf16 ") + tag, true, 2.0 * M * K * N, gemm_tflops, 50, [&] {
          NoGradGuard ng;
          Tensor y = linear(x, w);
        }));
  }

  return print_bench_rows(rows, argc > 1 ? argv[1] : nullptr, peaks) ? 0 : 1;
}

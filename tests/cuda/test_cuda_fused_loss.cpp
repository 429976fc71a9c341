/*
 * test_cuda_fused_loss.cpp — the CUDA fused losses through the engine ops, against the CPU ops:
 *   vocab_cross_entropy: f32 at TGP-T's shape (N = 8 x 96 tokens, W = 512, V = 49408, ls 0.1,
 *     ignored rows) against the CPU op in f32 (loss within 1e-5 relative, dhidden within 1e-5 of
 *     its largest value); awkward shapes (N = 1, V not a multiple of the chunk, odd W, i32
 *     targets on the device, every row ignored) against the CPU op in f64; bf16 with
 *     FlashAttention's rule against a low-precision reference (logits and dlogits rounded to bf16,
 *     as PyTorch's bf16 matmul + cross_entropy); peak device memory far below the [N, V] logits;
 *     the embedding-requires-grad error.
 *   cosine_logit_loss: f32 against the CPU op in f64 (N = 8, F = 1024, K = 1000 and odd shapes),
 *     bf16 within 2e-2 of the largest reference value, a frozen weight.
 * Outputs come from NaN-poisoned blocks. Skips without a CUDA device.
 */
#include <gtest/gtest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "tests/cuda/fused_test_util.h"

using namespace tgpt;
using namespace tgpt::test;

namespace {

struct VocabResult {
  double loss;
  std::vector<double> dh;
};

VocabResult run_vocab(const Tensor& h_host, const Tensor& E_host, const Tensor& t, double ls,
                      int64_t ignore, int64_t chunk, DType dt, Device dev) {
  Tensor h = h_host.to(dt).to(dev).set_requires_grad(true);
  Tensor E = E_host.to(dt).to(dev);
  if (dev == Device::CUDA)
    poison_cuda_cache({dtype_size(dt), static_cast<size_t>(h.numel()) * dtype_size(dt)});
  Tensor loss = vocab_cross_entropy(h, E, t.to(dev), ls, ignore, chunk);
  EXPECT_EQ(loss.device(), dev);
  loss.backward(Tensor::full({}, 0.75, dt).to(dev));
  return {loss.item(), h.grad().to_double_vector()};
}

Tensor targets(Generator& gen, int64_t N, int64_t V, double ignored_fraction,
               DType dt = DType::i64) {
  std::vector<double> v(static_cast<size_t>(N));
  std::uniform_real_distribution<double> u(0, 1);
  std::uniform_int_distribution<int64_t> cls(0, V - 1);
  for (auto& x : v)
    x = u(gen.engine()) < ignored_fraction ? -100.0 : static_cast<double>(cls(gen.engine()));
  return Tensor::from_vector(v, {N}, dt);
}

void expect_loss_close(double ours, double ref, double rel, const std::string& what) {
  std::printf("    %-40s loss %.8g vs %.8g (rel %.2e)\n", what.c_str(), ours, ref,
              std::abs(ours - ref) / std::abs(ref));
  EXPECT_TRUE(std::isfinite(ours)) << what;
  EXPECT_LE(std::abs(ours - ref), rel * std::abs(ref)) << what;
}

}  // namespace

TEST(CudaVocabCrossEntropy, F32AtTgptShapeMatchesCpu) {
  SKIP_WITHOUT_CUDA_DEVICE();
  Generator gen(1);
  const int64_t N = 8 * 96, W = 512, V = 49408;
  Tensor h = gen.randn({N, W}, DType::f32, 0.5);
  Tensor E = gen.randn({V, W}, DType::f32, 0.05);
  Tensor t = targets(gen, N, V, 0.3);
  VocabResult cpu = run_vocab(h, E, t, 0.1, -100, 0, DType::f32, Device::CPU);
  VocabResult gpu = run_vocab(h, E, t, 0.1, -100, 0, DType::f32, Device::CUDA);
  expect_loss_close(gpu.loss, cpu.loss, 1e-5, "f32 TGP-T shape");
  expect_rel_to_max(gpu.dh, cpu.dh, 1e-5, "f32 TGP-T shape dhidden");
}

TEST(CudaVocabCrossEntropy, AwkwardShapesMatchCpuF64) {
  SKIP_WITHOUT_CUDA_DEVICE();
  Generator gen(2);
  struct S {
    int64_t N, W, V, chunk;
    double ls;
  };
  for (S s : {S{1, 64, 1000, 256, 0.1}, S{1, 64, 1000, 0, 0.0}, S{5, 37, 777, 100, 0.1},
              S{33, 37, 4097, 1024, 0.1}, S{7, 512, 300, 1, 0.2}, S{3, 16, 5, 5, 0.1}}) {
    Tensor h = gen.randn({s.N, s.W}, DType::f32);
    Tensor E = gen.randn({s.V, s.W}, DType::f32, 0.3);
    Tensor t = targets(gen, s.N, s.V, s.N > 1 ? 0.25 : 0.0);
    std::string what = "N" + std::to_string(s.N) + " W" + std::to_string(s.W) + " V" +
                       std::to_string(s.V) + " chunk" + std::to_string(s.chunk);
    VocabResult ref = run_vocab(h, E, t, s.ls, -100, s.chunk, DType::f64, Device::CPU);
    VocabResult gpu = run_vocab(h, E, t, s.ls, -100, s.chunk, DType::f32, Device::CUDA);
    expect_loss_close(gpu.loss, ref.loss, 1e-5, what);
    expect_rel_to_max(gpu.dh, ref.dh, 1e-5, what + " dhidden");
  }
}

TEST(CudaVocabCrossEntropy, I32TargetsCustomIgnoreAndAllIgnored) {
  SKIP_WITHOUT_CUDA_DEVICE();
  Generator gen(3);
  Tensor h = gen.randn({6, 40}, DType::f32);
  Tensor E = gen.randn({90, 40}, DType::f32, 0.3);
  Tensor t = Tensor::from_vector({3, 7, 0, 89, 7, 2}, {6}, DType::i32);
  VocabResult ref = run_vocab(h, E, t, 0.1, 7, 32, DType::f64, Device::CPU);
  VocabResult gpu = run_vocab(h, E, t, 0.1, 7, 32, DType::f32, Device::CUDA);
  expect_loss_close(gpu.loss, ref.loss, 1e-5, "i32 targets, ignore 7");
  expect_rel_to_max(gpu.dh, ref.dh, 1e-5, "i32 targets dhidden");
  Tensor all = Tensor::from_vector({-100, -100}, {2}, DType::i64).to(Device::CUDA);
  Tensor loss = vocab_cross_entropy(h.narrow(0, 0, 2).to(Device::CUDA), E.to(Device::CUDA), all);
  EXPECT_TRUE(std::isnan(loss.item()));
}

TEST(CudaVocabCrossEntropy, Bf16WithinTwiceLowPrecisionError) {
  SKIP_WITHOUT_CUDA_DEVICE();
  Generator gen(4);
  const int64_t N = 96, W = 512, V = 49408;
  Tensor h = gen.randn({N, W}, DType::f32, 0.5).to(DType::bf16).to(DType::f32);
  Tensor E = gen.randn({V, W}, DType::f32, 0.05).to(DType::bf16).to(DType::f32);
  Tensor t = targets(gen, N, V, 0.3);
  VocabResult ref = run_vocab(h, E, t, 0.1, -100, 0, DType::f64, Device::CPU);
  VocabResult gpu = run_vocab(h, E, t, 0.1, -100, 0, DType::bf16, Device::CUDA);
  // Low-precision reference: logits = bf16(h Eᵀ) (f32 accumulation), cross_entropy in f32 on
  // them, dlogits rounded to bf16, dhidden = bf16(dlogits E), loss rounded to bf16.
  Tensor logits = matmul(h, E.transpose(0, 1)).to(DType::bf16).to(DType::f32);
  logits.set_requires_grad(true);
  Tensor loss = cross_entropy(logits, t, 0.1, -100);
  loss.backward(Tensor::full({}, 0.75, DType::f32));
  Tensor dlog = logits.grad().to(DType::bf16).to(DType::f32);
  std::vector<double> lowp_dh = matmul(dlog, E).to(DType::bf16).to_double_vector();
  const double lowp_loss = round_bf16(static_cast<float>(loss.item()));
  std::printf("    bf16 loss: ours %.6g, low-precision %.6g, f64 %.8g\n", gpu.loss, lowp_loss,
              ref.loss);
  EXPECT_LE(std::abs(gpu.loss - ref.loss),
            2 * std::abs(lowp_loss - ref.loss) + std::abs(ref.loss) * 4e-3)  // half a bf16 ulp
      << "loss";
  expect_within_lowp(gpu.dh, lowp_dh, ref.dh, "bf16 dhidden");
}

TEST(CudaVocabCrossEntropy, PeakMemoryFarBelowLogits) {
  SKIP_WITHOUT_CUDA_DEVICE();
  Generator gen(5);
  const int64_t N = 8 * 96, W = 512, V = 49408;
  Tensor h = gen.randn({N, W}, DType::f32, 0.5).to(DType::bf16).to(Device::CUDA);
  h.set_requires_grad(true);
  Tensor E = gen.randn({V, W}, DType::f32, 0.05).to(DType::bf16).to(Device::CUDA);
  Tensor t = targets(gen, N, V, 0.3).to(Device::CUDA);
  reset_peak_memory(Device::CUDA);
  const size_t before = memory_stats(Device::CUDA).current_bytes;
  Tensor loss = vocab_cross_entropy(h, E, t, 0.1);
  loss.backward(Tensor::full({}, 1.0, DType::bf16).to(Device::CUDA));
  const size_t extra = memory_stats(Device::CUDA).peak_bytes - before;
  // matmul + cross_entropy holds at least the bf16 logits, their log-softmax and dlogits (3 x
  // 76 MB); ours: one f32 chunk of logits (17 MB), its bf16 P̃ (9 MB) and the f32 gradient (2 MB).
  const size_t logits_bytes = static_cast<size_t>(N * V) * 2;  // bf16 logits alone
  std::printf("    peak extra %.1f MB vs bf16 logits %.1f MB\n", extra / 1e6, logits_bytes / 1e6);
  EXPECT_LT(extra, logits_bytes / 2);
  EXPECT_TRUE(std::isfinite(loss.item()));
}

TEST(CudaVocabCrossEntropy, EmbeddingRequiringGradIsRefused) {
  SKIP_WITHOUT_CUDA_DEVICE();
  Generator gen(6);
  Tensor h = gen.randn({4, 8}).to(Device::CUDA).set_requires_grad(true);
  Tensor E = gen.randn({20, 8}).to(Device::CUDA).set_requires_grad(true);
  Tensor t = gen.randint({4}, 0, 20);
  EXPECT_THROW(vocab_cross_entropy(h, E, t), Error);
}

// ---- cosine_logit_loss ---------------------------------------------------------------------

namespace {

struct CosResult {
  double loss;
  std::vector<double> dx, dw;
};

CosResult run_cos(const Tensor& x_host, const Tensor& w_host, const Tensor& t, DType dt, Device dev,
                  bool w_grad = true) {
  Tensor x = x_host.to(dt).to(dev).set_requires_grad(true);
  Tensor w = w_host.to(dt).to(dev).set_requires_grad(w_grad);
  if (dev == Device::CUDA)
    poison_cuda_cache({dtype_size(dt), static_cast<size_t>(x.numel()) * dtype_size(dt),
                       static_cast<size_t>(w.numel()) * dtype_size(dt)});
  Tensor loss = cosine_logit_loss(x, w, t.to(dev), 100.0);
  loss.backward(Tensor::full({}, 0.75, dt).to(dev));
  CosResult r{loss.item(), x.grad().to_double_vector(), {}};
  if (w_grad) r.dw = w.grad().to_double_vector();
  return r;
}

}  // namespace

TEST(CudaCosineLogitLoss, F32MatchesCpuF64) {
  SKIP_WITHOUT_CUDA_DEVICE();
  Generator gen(11);
  struct S {
    int64_t N, F, K;
  };
  for (S s : {S{8, 1024, 1000}, S{8, 1024, 37}, S{1, 33, 1}, S{5, 7, 300}, S{64, 1024, 102}}) {
    Tensor x = gen.randn({s.N, s.F}, DType::f32, 2.0);
    Tensor w =
        l2_normalize(gen.randn({s.K, s.F}, DType::f32)) + gen.randn({s.K, s.F}, DType::f32, 0.01);
    Tensor t = gen.randint({s.N}, 0, s.K);
    std::string what =
        "N" + std::to_string(s.N) + " F" + std::to_string(s.F) + " K" + std::to_string(s.K);
    CosResult ref = run_cos(x, w, t, DType::f64, Device::CPU);
    CosResult gpu = run_cos(x, w, t, DType::f32, Device::CUDA);
    expect_loss_close(gpu.loss, ref.loss, 1e-5, what);
    expect_rel_to_max(gpu.dx, ref.dx, 1e-5, what + " dfeatures");
    expect_rel_to_max(gpu.dw, ref.dw, 1e-5, what + " dweight");
  }
}

TEST(CudaCosineLogitLoss, Bf16AndFrozenWeight) {
  SKIP_WITHOUT_CUDA_DEVICE();
  Generator gen(12);
  Tensor x = gen.randn({8, 1024}, DType::f32, 2.0).to(DType::bf16).to(DType::f32);
  Tensor w =
      (l2_normalize(gen.randn({100, 1024}, DType::f32)) + gen.randn({100, 1024}, DType::f32, 0.01))
          .to(DType::bf16)
          .to(DType::f32);
  Tensor t = gen.randint({8}, 0, 100);
  CosResult ref = run_cos(x, w, t, DType::f64, Device::CPU);
  CosResult gpu = run_cos(x, w, t, DType::bf16, Device::CUDA);
  // bf16 storage of the outputs alone costs up to 2^-9 relative; f32 arithmetic inside.
  expect_loss_close(gpu.loss, ref.loss, 8e-3, "bf16");
  expect_rel_to_max(gpu.dx, ref.dx, 2e-2, "bf16 dfeatures");
  expect_rel_to_max(gpu.dw, ref.dw, 2e-2, "bf16 dweight");
  CosResult frozen = run_cos(x, w, t, DType::f32, Device::CUDA, false);
  expect_rel_to_max(frozen.dx, ref.dx, 1e-5, "frozen weight dfeatures");
  EXPECT_TRUE(frozen.dw.empty());
}

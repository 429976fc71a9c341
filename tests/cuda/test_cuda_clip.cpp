/*
 * test_cuda_clip.cpp — the CLIP model (models/clip) on CUDA against the same model on the CPU.
 *
 * A small random ViT CLIP (head dim 64, which the CUDA attention kernel supports: vision width
 * 128 / 2 heads, patch 8 at 32x32 = 17 tokens; text width 128 / 2 heads, 2 layers each) is built
 * in memory. encode_image, encode_image_with_tokens (pooled and tokens), encode_text (ids on the
 * CPU and on the device), encode_text_embeddings and its gradient with respect to x (for a fixed
 * random upstream gradient) run on the device in f32, bf16 and f16:
 *   f32:       max|cuda - cpu_f32| <= 1e-4 * max|cpu_f32| (the CPU f32 model, same weights);
 *   bf16/f16:  FlashAttention's rule, with the bound derived from the roundings the device
 *              path does. Weights and inputs are rounded once to the dtype; then
 *              ref  = the CPU model in f64 on those rounded values (the upcast reference),
 *              lowp = the CPU model computing op by op in the dtype (each op in f32, its result
 *                     rounded to the dtype, like PyTorch's eager half ops),
 *              max|cuda - ref| <= 2 * (2 * max|lowp - ref|) + 1e-5 * max|ref|.
 *              Why 2 * max|lowp - ref| inside: lowp's attention op runs in f32 and rounds only
 *              its result, while the CUDA kernel (kernels/cuda/attention.cu, as FlashAttention)
 *              also rounds P to the dtype in forward and P and dS in backward. Each of these
 *              roundings moves the attention result by at most what a rounding lowp already does
 *              at the same call moves it: P (relative u) in O = P V by u Σ P |V|, as lowp's
 *              rounding of V does; P in dV = Pᵀ dO as lowp's rounding of dO; dS in dQ = dS K and
 *              dK = dSᵀ Q as lowp's roundings of K and Q. So the device path makes at most twice
 *              lowp's roundings (each attention call: twice; elsewhere: the same), and its
 *              rounding error is bounded by twice lowp's; FlashAttention's factor 2 applies on
 *              top. (The other option, a reference that rounds inside attention, would need an
 *              unfused attention in the CPU model.)
 * Also: weights live on the device in the compute dtype (f16 weights stay f16, bit for bit, under
 * f16 compute), outputs are f32 on the device, the zero-shot batching helpers read device outputs,
 * and every device block is poisoned with NaN first, so an unwritten element fails.
 * Skips without a CUDA device.
 */
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "models/clip/clip.h"
#include "models/clip/zeroshot.h"
#include "train/evaluator.h"
#include "tests/cuda/cuda_clip_weights.h"
#include "tests/cuda/cuda_test_util.h"

using namespace tgpt;
using namespace tgpt::cudatest;

namespace {

ClipConfig cuda_config() {
  ClipConfig c;
  c.embed_dim = 32;
  c.image_resolution = 32;
  c.vision_layers = 2;
  c.vision_width = 128;
  c.vision_patch_size = 8;
  c.vision_heads = 2;
  c.context_length = 77;
  c.vocab_size = 64;
  c.transformer_width = 128;
  c.transformer_heads = 2;
  c.transformer_layers = 2;
  return c;
}

std::map<std::string, Tensor> rounded(const std::map<std::string, Tensor>& t, DType dt) {
  std::map<std::string, Tensor> r;
  for (const auto& [name, w] : t) r[name] = w.to(dt).to(DType::f32);
  return r;
}

// Token rows [SOT, ids..., EOT, 0...] with EOT = V-1 at the given positions.
Tensor make_tokens(const ClipConfig& c, const std::vector<int64_t>& eot_at) {
  const int64_t N = static_cast<int64_t>(eot_at.size()), ctx = c.context_length;
  std::vector<int64_t> v(static_cast<size_t>(N * ctx), 0);
  for (int64_t n = 0; n < N; ++n) {
    v[static_cast<size_t>(n * ctx)] = c.vocab_size - 2;
    for (int64_t j = 1; j < eot_at[static_cast<size_t>(n)]; ++j)
      v[static_cast<size_t>(n * ctx + j)] = 1 + (n * 7 + j * 3) % 60;
    v[static_cast<size_t>(n * ctx + eot_at[static_cast<size_t>(n)])] = c.vocab_size - 1;
  }
  return Tensor::from_data(v.data(), {N, ctx});
}

// Every output the test compares, as f32 CPU tensors.
struct Outputs {
  std::map<std::string, Tensor> t;
};

// Runs every entry point of `m` on the given inputs (CPU f32 tensors); dx is the gradient of
// sum(encode_text_embeddings(x, eot) * up) with respect to x.
Outputs run_model(const ClipModel& m, const Tensor& images, const Tensor& tokens, const Tensor& x,
                  const Tensor& eot, const Tensor& up) {
  Outputs o;
  auto keep = [&](const std::string& k, const Tensor& y) {
    EXPECT_EQ(y.dtype(), DType::f32) << k;
    EXPECT_EQ(y.device(), m.device()) << k;
    o.t[k] = y.detach().to(Device::CPU);
  };
  keep("image_features", m.encode_image(images));
  ClipModel::ImageOutput io = m.encode_image_with_tokens(images);
  keep("image_pooled", io.pooled);
  keep("image_tokens", io.tokens);
  keep("text_features", m.encode_text(tokens));
  Tensor xl = x.detach().clone().set_requires_grad(true);
  Tensor y = m.encode_text_embeddings(xl, eot);
  keep("text_embeddings", y);
  sum(mul(y, up.to(m.device()))).backward();
  EXPECT_TRUE(xl.grad().defined());
  if (xl.grad().defined()) o.t["text_embeddings_dx"] = xl.grad().detach().to(Device::CPU);
  return o;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_double_vector()) m = std::max(m, std::abs(v));
  return m;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  std::vector<double> va = a.to_double_vector(), vb = b.to_double_vector();
  double m = 0;
  for (size_t i = 0; i < va.size() && i < vb.size(); ++i) {
    const double d = std::abs(va[i] - vb[i]);
    if (std::isnan(d)) return d;
    m = std::max(m, d);
  }
  return m;
}

struct Inputs {
  Tensor images, tokens, x, eot, up;
};

Inputs make_inputs(const ClipConfig& c, DType round_to) {
  Generator g(11);
  Inputs in;
  in.images = g.randn({3, 3, c.image_resolution, c.image_resolution}).to(round_to).to(DType::f32);
  in.tokens = make_tokens(c, {5, 12, 76, 1});
  in.x = g.randn({3, c.context_length, c.transformer_width}, DType::f32, 0.5)
             .to(round_to)
             .to(DType::f32);
  in.eot = Tensor::from_vector({4, 20, 9}, {3}, DType::i64);
  in.up = g.randn({3, c.embed_dim}).to(round_to).to(DType::f32);
  return in;
}

TEST(CudaClip, F32MatchesCpu) {
  SKIP_WITHOUT_CUDA();
  const ClipConfig c = cuda_config();
  const auto w = random_clip_weights(c, 5);
  const Inputs in = make_inputs(c, DType::f32);
  ClipModel cpu = ClipModel::from_tensors(w, c);
  Outputs ref = run_model(cpu, in.images, in.tokens, in.x, in.eot, in.up);
  Outputs dev;
  {
    PoisonGuard poison;
    ClipModel gpu = ClipModel::from_tensors(w, c, Device::CUDA, DType::f32);
    EXPECT_EQ(gpu.device(), Device::CUDA);
    EXPECT_EQ(gpu.compute_dtype(), DType::f32);
    dev = run_model(gpu, in.images, in.tokens, in.x, in.eot, in.up);
  }
  for (const auto& [k, r] : ref.t) {
    ASSERT_TRUE(dev.t.count(k)) << k;
    const double err = max_abs_diff(dev.t.at(k), r), scale = max_abs(r);
    std::printf("  f32 %-20s max|cuda - cpu| %.3e  max|cpu| %.3e\n", k.c_str(), err, scale);
    EXPECT_GT(scale, 0.0) << k;
    EXPECT_LE(err, 1e-4 * scale) << k;
  }
}

class CudaClipLowPrecision : public ::testing::TestWithParam<DType> {};

TEST_P(CudaClipLowPrecision, WithinFlashAttentionRule) {
  SKIP_WITHOUT_CUDA();
  const DType dt = GetParam();
  const ClipConfig c = cuda_config();
  const auto w = rounded(random_clip_weights(c, 5), dt);  // exactly representable in dt
  const Inputs in = make_inputs(c, dt);
  ClipModel ref_model = ClipModel::from_tensors(w, c, Device::CPU, DType::f64);
  ClipModel lowp_model = ClipModel::from_tensors(w, c, Device::CPU, dt);
  Outputs ref = run_model(ref_model, in.images, in.tokens, in.x, in.eot, in.up);
  Outputs lowp = run_model(lowp_model, in.images, in.tokens, in.x, in.eot, in.up);
  Outputs dev;
  {
    PoisonGuard poison;
    ClipModel gpu = ClipModel::from_tensors(w, c, Device::CUDA, dt);
    EXPECT_EQ(gpu.compute_dtype(), dt);
    dev = run_model(gpu, in.images, in.tokens, in.x, in.eot, in.up);
  }
  for (const auto& [k, r] : ref.t) {
    ASSERT_TRUE(dev.t.count(k) && lowp.t.count(k)) << k;
    const double err = max_abs_diff(dev.t.at(k), r), lowp_err = max_abs_diff(lowp.t.at(k), r);
    // 2 * lowp_err: the device path's extra roundings inside attention (file comment).
    const double scale = max_abs(r), bound = 2 * (2 * lowp_err) + 1e-5 * scale;
    std::printf("  %s %-20s max|cuda - ref| %.3e  max|lowp - ref| %.3e  max|ref| %.3e\n",
                dtype_name(dt), k.c_str(), err, lowp_err, scale);
    EXPECT_GT(scale, 0.0) << k;
    EXPECT_LE(err, bound) << k << " [" << dtype_name(dt) << "]";
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaClipLowPrecision, ::testing::Values(DType::bf16, DType::f16),
                         [](const ::testing::TestParamInfo<DType>& i) {
                           return std::string(dtype_name(i.param));
                         });

TEST(CudaClip, WeightsLiveOnDeviceInComputeDtype) {
  SKIP_WITHOUT_CUDA();
  const ClipConfig c = cuda_config();
  auto w = random_clip_weights(c, 9);
  // OpenAI's mixed layout (clip.md §1.8): Linear/conv weights f16, LayerNorm and embeddings f32.
  std::map<std::string, Tensor> mixed = w;
  for (auto& [name, t] : mixed)
    if (name.find("ln_") == std::string::npos && name.find("embedding") == std::string::npos &&
        name != "logit_scale")
      t = t.to(DType::f16);
  const std::string fc = "visual.transformer.resblocks.0.mlp.c_fc.weight";
  const std::string ln = "transformer.resblocks.1.ln_2.weight";
  for (DType dt : {DType::f16, DType::bf16, DType::f32}) {
    ClipModel m = ClipModel::from_tensors(mixed, c, Device::CUDA, dt);
    for (const std::string& name : {fc, ln, std::string("token_embedding.weight")}) {
      EXPECT_EQ(m.weight(name).device(), Device::CUDA) << name;
      EXPECT_EQ(m.weight(name).dtype(), dt) << name;
      EXPECT_FALSE(m.weight(name).requires_grad()) << name;
    }
    // f16 weights are uploaded as stored under f16 compute: bit-identical values.
    if (dt == DType::f16) {
      EXPECT_EQ(m.weight(fc).to_double_vector(), mixed.at(fc).to_double_vector());
    }
    EXPECT_NEAR(m.logit_scale(), 100.0, 1e-4);
  }
}

TEST(CudaClip, InputsOnEitherDeviceAndZeroShotHelpers) {
  SKIP_WITHOUT_CUDA();
  const ClipConfig c = cuda_config();
  ClipModel m = ClipModel::from_tensors(random_clip_weights(c, 3), c, Device::CUDA, DType::bf16);
  const Inputs in = make_inputs(c, DType::bf16);
  NoGradGuard no_grad;
  Tensor host_ids = m.encode_text(in.tokens).to(Device::CPU);
  Tensor dev_ids = m.encode_text(in.tokens.to(Device::CUDA)).to(Device::CPU);
  Tensor dev_i32 = m.encode_text(in.tokens.to(DType::i32).to(Device::CUDA)).to(Device::CPU);
  EXPECT_EQ(host_ids.to_double_vector(), dev_ids.to_double_vector());
  EXPECT_EQ(host_ids.to_double_vector(), dev_i32.to_double_vector());
  Tensor img_host = m.encode_image(in.images).to(Device::CPU);
  Tensor img_dev = m.encode_image(in.images.to(Device::CUDA)).to(Device::CPU);
  EXPECT_EQ(img_host.to_double_vector(), img_dev.to_double_vector());
  // The embeddings from embed_tokens (compute dtype, on the device) feed encode_text_embeddings.
  Tensor emb = m.embed_tokens(in.tokens);
  EXPECT_EQ(emb.device(), Device::CUDA);
  EXPECT_EQ(emb.dtype(), DType::bf16);
  // Batched helpers read device outputs: the rows of one call, up to bf16 rounding (GEMM tiling
  // may depend on the batch size).
  Tensor batched = encode_text_batched(m, in.tokens, 3);
  EXPECT_EQ(batched.device(), Device::CPU);
  EXPECT_EQ(batched.shape(), Shape({4, c.embed_dim}));
  EXPECT_LE(max_abs_diff(batched, host_ids), 2e-2 * max_abs(host_ids));
  Tensor batched_img = encode_images_batched(m, in.images, 2);
  EXPECT_EQ(batched_img.shape(), Shape({3, c.embed_dim}));
  // Empty batches give empty f32 outputs on the device.
  Tensor none = m.encode_image(Tensor::zeros({0, 3, 32, 32}));
  EXPECT_EQ(none.shape(), Shape({0, c.embed_dim}));
  EXPECT_EQ(none.device(), Device::CUDA);
}

TEST(CudaClip, ArgumentChecks) {
  SKIP_WITHOUT_CUDA();
  const ClipConfig c = cuda_config();
  EXPECT_THROW(ClipModel::from_tensors(random_clip_weights(c, 1), c, Device::CUDA, DType::f64), Error);
  // Head dim 32 has no CUDA attention kernel: the op says so on first use.
  ClipConfig small = c;
  small.vision_heads = 4;
  ClipModel m = ClipModel::from_tensors(random_clip_weights(small, 1), small, Device::CUDA, DType::f16);
  EXPECT_THROW(m.encode_image(Tensor::zeros({1, 3, 32, 32})), Error);
}

}  // namespace

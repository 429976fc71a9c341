/*
 * test_cuda_coop.cpp — CoOp (models/coop) on a CUDA ClipModel against the same model on the CPU.
 *
 * A small random CLIP (text width 128 / 2 heads = head dim 64, which the CUDA attention kernel
 * supports, 2 layers, vocabulary 64) is built in memory, once on the CPU in f32 and once on the
 * device. CoopModel is built from the same made-up prompt tokens (SOT, n_ctx X's, name ids, '.',
 * EOT) with the same seeded ctx on both:
 *   f32:  text features, logits (image features given on the CPU), loss and d loss / d ctx
 *         match the CPU within 1e-4 · max|cpu| (max|cuda - cpu| / max|cpu|); chunked evaluation
 *         features within the same bound; the parameters live on the device (ctx f32).
 *   bf16: ctx stays an f32 master on the device and gets an f32 gradient through the cast into
 *         the compute dtype; loss and gradient are finite and the loss is within 5e-2 relative
 *         of the CPU f32 model's (a smoke bound for one bf16 rounding of weights and activations,
 *         not an accuracy claim).
 * Skips without a CUDA device.
 */
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "models/clip/clip.h"
#include "models/coop/coop.h"
#include "tests/cuda/cuda_clip_weights.h"
#include "tests/cuda/cuda_test_util.h"

using namespace tgpt;
using namespace tgpt::cudatest;

namespace {

ClipConfig coop_cuda_config() {
  ClipConfig c;
  c.embed_dim = 32;
  c.image_resolution = 32;
  c.vision_layers = 1;
  c.vision_width = 128;
  c.vision_patch_size = 16;
  c.vision_heads = 2;
  c.context_length = 77;
  c.vocab_size = 64;
  c.transformer_width = 128;
  c.transformer_heads = 2;
  c.transformer_layers = 2;
  return c;
}

// [C,77]: SOT (62), n_ctx X's (5), 1 + c % 3 name ids, '.' (7), EOT (63), padding.
Tensor coop_tokens(int64_t C, int64_t n_ctx) {
  std::vector<int64_t> v(static_cast<size_t>(C * 77), 0);
  for (int64_t c = 0; c < C; ++c) {
    int64_t* row = v.data() + c * 77;
    int64_t p = 0;
    row[p++] = 62;
    for (int64_t i = 0; i < n_ctx; ++i) row[p++] = 5;
    for (int64_t i = 0; i <= c % 3; ++i) row[p++] = 10 + (c * 5 + i) % 50;
    row[p++] = 7;
    row[p++] = 63;
  }
  return Tensor::from_data(v.data(), {C, 77});
}

double rel_to_max(const Tensor& a, const Tensor& ref) {
  std::vector<double> va = a.to(Device::CPU).to_double_vector(), vr = ref.to_double_vector();
  EXPECT_EQ(va.size(), vr.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < va.size() && i < vr.size(); ++i) {
    num = std::max(num, std::abs(va[i] - vr[i]));
    den = std::max(den, std::abs(vr[i]));
  }
  return num / std::max(den, 1e-30);
}

struct CoopRun {
  Tensor text, logits, loss, dctx, chunked;
};

CoopRun run_coop(const CoopModel& m, const Tensor& img, const Tensor& labels) {
  CoopRun r;
  r.text = m.text_features().detach().to(Device::CPU);
  r.logits = m.logits(img).detach().to(Device::CPU);
  clear_tape();
  Tensor loss = m.loss(img, labels);
  loss.backward();
  r.loss = loss.detach().to(Device::CPU);
  EXPECT_TRUE(m.ctx().grad().defined());
  if (m.ctx().grad().defined()) r.dctx = m.ctx().grad().to(Device::CPU);
  r.chunked = m.class_text_features(3).to(Device::CPU);
  return r;
}

TEST(CudaCoop, MatchesCpu) {
  SKIP_WITHOUT_CUDA();
  PoisonGuard poison;
  const ClipConfig c = coop_cuda_config();
  const auto w = random_clip_weights(c, 21);
  const ClipModel cpu = ClipModel::from_tensors(w, c);
  CoopOptions o;
  o.n_ctx = 16;
  o.init_std = 0.1;
  const Tensor tokens = coop_tokens(7, o.n_ctx);
  Generator g(3);
  const Tensor img = g.randn({4, c.embed_dim});
  std::vector<int64_t> y = {0, 6, 2, 2};
  const Tensor labels = Tensor::from_data(y.data(), {4});
  CoopModel ref_model = CoopModel::from_prompt_tokens(cpu, tokens, o);
  const CoopRun ref = run_coop(ref_model, img, labels);

  for (DType dt : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dt));
    const ClipModel dev = ClipModel::from_tensors(w, c, Device::CUDA, dt);
    CoopModel m = CoopModel::from_prompt_tokens(dev, tokens, o);
    EXPECT_EQ(m.ctx().device(), Device::CUDA);
    EXPECT_EQ(m.ctx().dtype(), DType::f32);
    EXPECT_EQ(m.parameters().get("prompt_learner.token_suffix").dtype(), dt);
    EXPECT_EQ(m.ctx().to(Device::CPU).to_double_vector(), ref_model.ctx().to_double_vector());
    const CoopRun r = run_coop(m, img, labels);
    ASSERT_TRUE(r.dctx.defined());
    EXPECT_EQ(r.dctx.dtype(), DType::f32);
    if (dt == DType::f32) {
      EXPECT_LE(rel_to_max(r.text, ref.text), 1e-4);
      EXPECT_LE(rel_to_max(r.logits, ref.logits), 1e-4);
      EXPECT_LE(rel_to_max(r.loss, ref.loss), 1e-4);
      EXPECT_LE(rel_to_max(r.dctx, ref.dctx), 1e-4);
      EXPECT_LE(rel_to_max(r.chunked, ref.text), 1e-4);
    } else {
      EXPECT_TRUE(std::isfinite(r.loss.item()));
      for (double v : r.dctx.to_double_vector()) ASSERT_TRUE(std::isfinite(v));
      EXPECT_LE(rel_to_max(r.loss, ref.loss), 5e-2);
    }
  }
}

}  // namespace

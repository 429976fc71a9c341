/*
 * test_cuda_tgpt.cpp — TGP-T (models/tgpt) on a CUDA ClipModel against the same model on the CPU.
 *
 * A small random CLIP (E = text width 128, 2 text heads: head dim 64, which the CUDA attention
 * kernel supports; 2 text layers; vocabulary 64) is built in memory on the CPU (f32) and on the
 * device (f32, then bf16 mixed precision: frozen encoders in bf16, TGP-T parameters, losses and
 * optimizer in f32). The Bonders use 2 heads (head dim 64). Both models are initialised from the
 * same seed, get the same zero-shot head, category sentences, images, labels and captions:
 *   f32:  features, logits, the three losses and every trainable gradient within
 *         1e-4 · max|cpu|; one AdamW step on the device equals the CPU AdamW applied to the
 *         device's gradients within 1e-6 · max|p| (the optimizer itself, not the gradients'
 *         rounding, is checked there);
 *   bf16: parameters stay f32 on the device, losses and gradients are finite, and the total loss
 *         is within 5e-2 relative of the CPU f32 model's (a smoke bound, not an accuracy claim).
 * Skips without a CUDA device.
 */
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <utility>
#include <vector>
#include <string>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/random.h"
#include "models/clip/clip.h"
#include "models/tgpt/tgpt.h"
#include "tests/cuda/cuda_clip_weights.h"
#include "tests/cuda/cuda_test_util.h"

using namespace tgpt;
using namespace tgpt::cudatest;

namespace {

ClipConfig tgpt_cuda_config() {
  ClipConfig c;
  c.embed_dim = 128;
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

// [N,77] rows: SOT (62), `len` ids in [1, 60], EOT (63), padding.
Tensor token_rows(const std::vector<int64_t>& lens, uint64_t seed) {
  Generator g(seed);
  const int64_t N = static_cast<int64_t>(lens.size());
  std::vector<int64_t> v(static_cast<size_t>(N * 77), 0);
  const std::vector<double> r = g.uniform({N * 77}, 1, 61).to_double_vector();
  for (int64_t n = 0; n < N; ++n) {
    int64_t* row = v.data() + n * 77;
    row[0] = 62;
    for (int64_t i = 0; i < lens[static_cast<size_t>(n)]; ++i)
      row[1 + i] = static_cast<int64_t>(r[static_cast<size_t>(n * 77 + i)]);
    row[1 + lens[static_cast<size_t>(n)]] = 63;
  }
  return Tensor::from_data(v.data(), {N, 77});
}

double rel_to_max(const Tensor& a, const Tensor& ref) {
  std::vector<double> va = a.to(Device::CPU).to_double_vector(),
                      vr = ref.to(Device::CPU).to_double_vector();
  EXPECT_EQ(va.size(), vr.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < va.size() && i < vr.size(); ++i) {
    num = std::max(num, std::abs(va[i] - vr[i]));
    den = std::max(den, std::abs(vr[i]));
  }
  return num / std::max(den, 1e-30);
}

struct TgptRun {
  Tensor features, logits, cls, category, content, total;
  std::map<std::string, Tensor> grads;  // CPU copies
};

TgptRun run_step(TgptModel& m, const Tensor& images, const std::vector<int64_t>& labels,
                 const Tensor& captions) {
  clear_tape();
  m.parameters().zero_grad();
  TgptRun r;
  const TgptModel::Output out = m.forward(m.encode_images(images));
  const TgptModel::Losses l = m.losses(out, labels, captions);
  l.total.backward();
  r.features = out.features.detach().to(Device::CPU);
  r.logits = m.logits(out.features).to(Device::CPU);
  r.cls = l.cls.detach().to(Device::CPU);
  r.category = l.category.detach().to(Device::CPU);
  r.content = l.content.detach().to(Device::CPU);
  r.total = l.total.detach().to(Device::CPU);
  for (const auto& [name, t] : m.parameters().items(true))
    if (t.grad().defined()) r.grads[name] = t.grad().to(Device::CPU);
  return r;
}

TEST(CudaTgpt, MatchesCpu) {
  SKIP_WITHOUT_CUDA();
  PoisonGuard poison;
  const ClipConfig c = tgpt_cuda_config();
  const auto w = random_clip_weights(c, 31);
  const ClipModel cpu = ClipModel::from_tensors(w, c);
  TgptConfig cfg;
  cfg.num_classes = 5;
  cfg.bonder_heads = 2;
  cfg.query_init_std = 0.5;
  TgptTokenIds ids;
  ids.sot = 62;
  ids.eot = 63;
  ids.period = 7;
  ids.init_words = {10, 11, 12, 10};
  Generator data(4);
  const Tensor images = data.randn({3, 3, 32, 32});
  const std::vector<int64_t> labels = {4, 0, 4};
  const Tensor captions = token_rows({5, 40, 70}, 6);
  const Tensor sentences = token_rows({6, 7, 8, 9, 6}, 7);
  const Tensor zs = tgpt_zeroshot_head(data.randn({5, c.embed_dim}));

  Generator g_cpu(9);
  TgptModel ref_model(cpu, cfg, ids, g_cpu);
  ref_model.set_zeroshot_head(zs);
  ref_model.set_category_sentences(sentences);
  const TgptRun ref = run_step(ref_model, images, labels, captions);
  ASSERT_GT(ref.grads.size(), 30u);

  for (DType dt : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dt));
    const ClipModel dev = ClipModel::from_tensors(w, c, Device::CUDA, dt);
    Generator g(9);
    TgptModel m(dev, cfg, ids, g);
    m.set_zeroshot_head(zs);
    m.set_category_sentences(sentences);
    for (const auto& [name, t] : m.parameters().items()) {
      EXPECT_EQ(t.device(), Device::CUDA) << name;
      EXPECT_EQ(t.dtype(), DType::f32) << name;
      EXPECT_LE(rel_to_max(t, ref_model.parameters().get(name)), 0.0) << name;
    }
    const TgptRun r = run_step(m, images, labels, captions);
    ASSERT_EQ(r.grads.size(), ref.grads.size());
    if (dt == DType::f32) {
      EXPECT_LE(rel_to_max(r.features, ref.features), 1e-4);
      EXPECT_LE(rel_to_max(r.logits, ref.logits), 1e-4);
      const std::vector<std::pair<const char*, std::pair<Tensor, Tensor>>> losses = {
          {"cls", {r.cls, ref.cls}},
          {"category", {r.category, ref.category}},
          {"content", {r.content, ref.content}},
          {"total", {r.total, ref.total}}};
      for (const auto& [what, pair] : losses)
        EXPECT_LE(rel_to_max(pair.first, pair.second), 1e-4) << what;
      for (const auto& [name, gr] : ref.grads) {
        ASSERT_TRUE(r.grads.count(name)) << name;
        EXPECT_LE(rel_to_max(r.grads.at(name), gr), 1e-4) << name;
      }
      // One AdamW step on the device against the CPU AdamW applied to the device's gradients.
      std::vector<Tensor> dev_params, cpu_params;
      for (const auto& [name, t] : m.parameters().items(true)) {
        if (!t.grad().defined()) continue;
        dev_params.push_back(t);
        Tensor p = t.detach().to(Device::CPU).clone().set_requires_grad(true);
        p.set_grad(t.grad().to(Device::CPU));
        cpu_params.push_back(p);
      }
      AdamW dev_opt(dev_params, AdamWOptions::tgpt(1e-3));
      AdamW cpu_opt(cpu_params, AdamWOptions::tgpt(1e-3));
      dev_opt.step();
      cpu_opt.step();
      for (size_t i = 0; i < dev_params.size(); ++i)
        EXPECT_LE(rel_to_max(dev_params[i], cpu_params[i]), 1e-6) << i;
    } else {
      EXPECT_TRUE(std::isfinite(r.total.item()));
      for (const auto& [name, gr] : r.grads) {
        EXPECT_EQ(gr.dtype(), DType::f32) << name;
        for (double v : gr.to_double_vector()) ASSERT_TRUE(std::isfinite(v)) << name;
      }
      EXPECT_LE(rel_to_max(r.total, ref.total), 5e-2);
    }
  }
}

}  // namespace

/*
 * test_clip_trainable.cpp — the trainable CLIP (ClipModel::init_random): OpenAI's initialisation
 * (statistics of the drawn weights), gradients of the contrastive loss through both towers to
 * every weight against central differences in f64 (about 6 entries of every tensor), save ->
 * ClipModel::load -> the same features, and the frozen model's refusals.
 */
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/safetensors.h"
#include "models/clip/clip.h"
#include "tests/test_util.h"

using namespace tgpt;
using namespace tgpt::test;
namespace fs = std::filesystem;

namespace {

ClipConfig tiny_config() {
  ClipConfig c;
  c.embed_dim = 6;
  c.image_resolution = 8;
  c.vision_layers = 1;
  c.vision_width = 8;
  c.vision_patch_size = 4;
  c.vision_heads = 2;
  c.context_length = 7;
  c.vocab_size = 12;
  c.transformer_width = 8;
  c.transformer_heads = 2;
  c.transformer_layers = 1;
  return c;
}

// Token rows [N, ctx]: SOT-like id, words, EOT (the largest id) at varying positions, zeros after.
Tensor tiny_tokens(const ClipConfig& c, int64_t N) {
  std::vector<double> v(static_cast<size_t>(N * c.context_length), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    const int64_t len = 2 + n % (c.context_length - 2);
    v[static_cast<size_t>(n * c.context_length)] = static_cast<double>(c.vocab_size - 2);
    for (int64_t t = 1; t < len; ++t)
      v[static_cast<size_t>(n * c.context_length + t)] = static_cast<double>(1 + (n * 3 + t) % 9);
    v[static_cast<size_t>(n * c.context_length + len)] = static_cast<double>(c.vocab_size - 1);
  }
  return Tensor::from_vector(v, {N, c.context_length}, DType::i64);
}

double stddev(const Tensor& t) {
  std::vector<double> v = t.to_double_vector();
  double s = 0, s2 = 0;
  for (double x : v) s += x, s2 += x * x;
  const double m = s / static_cast<double>(v.size());
  return std::sqrt(s2 / static_cast<double>(v.size()) - m * m);
}

}  // namespace

TEST(ClipTrainable, InitialisationFollowsOpenAi) {
  // Widths large enough for the statistics (>= 16k draws per checked tensor), quick to draw.
  ClipConfig c;
  c.embed_dim = 128;
  c.image_resolution = 16;
  c.vision_layers = 1;
  c.vision_width = 192;
  c.vision_patch_size = 8;
  c.vision_heads = 2;
  c.context_length = 77;
  c.vocab_size = 4096;
  c.transformer_width = 128;
  c.transformer_heads = 2;
  c.transformer_layers = 2;
  ClipModel m = ClipModel::init_random(c, 3);
  EXPECT_TRUE(m.trainable());
  EXPECT_NEAR(m.logit_scale(), 1 / 0.07, 1e-4);
  EXPECT_NEAR(stddev(m.weight("token_embedding.weight")), 0.02, 0.02 * 0.01);
  EXPECT_NEAR(stddev(m.weight("positional_embedding")), 0.01, 0.01 * 0.05);
  const double W = 128, L = 2;
  EXPECT_NEAR(stddev(m.weight("transformer.resblocks.0.attn.in_proj_weight")), 1 / std::sqrt(W),
              0.01 / std::sqrt(W));
  EXPECT_NEAR(stddev(m.weight("transformer.resblocks.0.mlp.c_fc.weight")), 1 / std::sqrt(2 * W),
              0.01 / std::sqrt(2 * W));
  const double proj_std = 1 / std::sqrt(W) / std::sqrt(2 * L);
  EXPECT_NEAR(stddev(m.weight("transformer.resblocks.0.mlp.c_proj.weight")), proj_std,
              0.01 * proj_std);
  EXPECT_NEAR(stddev(m.weight("text_projection")), 1 / std::sqrt(W), 0.02 / std::sqrt(W));
  EXPECT_NEAR(stddev(m.weight("visual.proj")), 1 / std::sqrt(192.0), 0.02 / std::sqrt(192.0));
  EXPECT_NEAR(stddev(m.weight("visual.transformer.resblocks.0.attn.out_proj.weight")),
              1 / std::sqrt(192.0) / std::sqrt(2.0), 0.02 / std::sqrt(192.0));
  EXPECT_EQ(m.weight("transformer.resblocks.0.attn.in_proj_bias").to_double_vector(),
            std::vector<double>(3 * 128, 0.0));
  EXPECT_EQ(m.weight("ln_final.weight").to_double_vector(), std::vector<double>(128, 1.0));
  for (const auto& [name, t] : m.parameters().items()) EXPECT_TRUE(t.requires_grad()) << name;
  // The same seed draws the same model.
  ClipModel again = ClipModel::init_random(c, 3);
  EXPECT_EQ(again.weight("visual.conv1.weight").to_double_vector(),
            m.weight("visual.conv1.weight").to_double_vector());
}

TEST(ClipTrainable, ContrastiveGradientsMatchFiniteDifferences) {
  const ClipConfig c = tiny_config();
  ClipModel m = ClipModel::init_random(c, 11, Device::CPU, DType::f64);
  const int64_t N = 4;
  Generator gen(12);
  Tensor images = gen.randn({N, 3, 8, 8}, DType::f64);
  Tensor tokens = tiny_tokens(c, N);
  // A logit scale below the clamp, so its gradient is live.
  m.mutable_parameters().get("logit_scale").data<double>()[0] = 1.3;
  auto loss_fn = [&]() {
    return clip_contrastive_loss(m.encode_image(images), m.encode_text(tokens),
                                 m.logit_scale_param());
  };
  nn::ParameterSet& params = m.mutable_parameters();
  params.zero_grad();
  Tensor loss = loss_fn();
  ASSERT_TRUE(loss.requires_grad());
  loss.backward();
  const double eps = 1e-6;
  NoGradGuard ng;
  int64_t checked = 0;
  for (const auto& [name, t] : params.items()) {
    Tensor g = t.grad();
    ASSERT_TRUE(g.defined()) << name << " got no gradient";
    std::vector<double> ga = g.to_double_vector();
    double* p = t.data<double>();
    const int64_t n = t.numel(), stride = std::max<int64_t>(1, n / 6);
    double max_abs = 0;
    for (double x : ga) max_abs = std::max(max_abs, std::abs(x));
    for (int64_t i = 0; i < n; i += stride) {
      const double orig = p[i];
      p[i] = orig + eps;
      const double lp = loss_fn().item();
      p[i] = orig - eps;
      const double lm = loss_fn().item();
      p[i] = orig;
      const double num = (lp - lm) / (2 * eps);
      EXPECT_NEAR(ga[static_cast<size_t>(i)], num, 1e-6 * std::max(1.0, std::abs(num)))
          << name << " element " << i;
      ++checked;
    }
    // Token rows that no text uses get exactly zero; everything else must move.
    if (name != "token_embedding.weight") {
      EXPECT_GT(max_abs, 0.0) << name;
    }
  }
  EXPECT_GT(checked, 150);
}

// The f32 training path (what tgpt-train --method clip runs: f32 GEMMs, the f32 attention
// kernels with a token count that is not a multiple of any block size, one head of width 96)
// gives the f64 path's gradients to f32 accuracy, for every weight of both towers.
TEST(ClipTrainable, F32GradientsAgreeWithF64AtPretrainingSize) {
  ClipConfig c;
  c.embed_dim = 96;
  c.image_resolution = 40;  // 5x5 patches + class token: T = 26
  c.vision_layers = 2;
  c.vision_width = 96;
  c.vision_patch_size = 8;
  c.vision_heads = 1;
  c.context_length = 77;
  c.vocab_size = 12;
  c.transformer_width = 96;
  c.transformer_heads = 1;
  c.transformer_layers = 2;
  c.activation = Activation::quick_gelu;
  ClipModel m64 = ClipModel::init_random(c, 21, Device::CPU, DType::f64);
  ClipModel m32 = ClipModel::init_random(c, 21, Device::CPU, DType::f32);
  const int64_t N = 6;
  Generator gen(22);
  Tensor images = gen.randn({N, 3, 40, 40}, DType::f64);
  Tensor tokens = tiny_tokens(c, N);
  auto grads = [&](ClipModel& m, DType dt) {
    nn::ParameterSet& params = m.mutable_parameters();
    params.zero_grad();
    Tensor x = dt == DType::f64 ? images : images.to(DType::f32);
    Tensor loss = clip_contrastive_loss(m.encode_image(x), m.encode_text(tokens),
                                        m.logit_scale_param());
    loss.backward();
    std::map<std::string, std::vector<double>> g;
    for (const auto& [name, t] : params.items()) g[name] = t.grad().to_double_vector();
    return g;
  };
  const auto g64 = grads(m64, DType::f64);
  const auto g32 = grads(m32, DType::f32);
  ASSERT_EQ(g64.size(), g32.size());
  for (const auto& [name, ref] : g64) {
    const std::vector<double>& got = g32.at(name);
    ASSERT_EQ(got.size(), ref.size()) << name;
    double max_ref = 0, max_err = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      max_ref = std::max(max_ref, std::abs(ref[i]));
      max_err = std::max(max_err, std::abs(got[i] - ref[i]));
    }
    // f32 rounding through ~10 layers: errors stay well below 1e-3 of the tensor's largest entry.
    EXPECT_LE(max_err, 1e-3 * max_ref + 1e-9) << name << " max |g| " << max_ref;
    if (name != "token_embedding.weight") {
      EXPECT_GT(max_ref, 0.0) << name;
    }
  }
}

TEST(ClipTrainable, SaveLoadGivesTheSameFeatures) {
  const ClipConfig c = tiny_config();
  ClipModel m = ClipModel::init_random(c, 21);
  m.set_bpe_merges("a b\nab c</w>");
  // Train-like change: a weight modified in place after init must reach the file.
  m.mutable_parameters().get("visual.proj").data<float>()[0] += 0.5f;
  const fs::path dir =
      fs::temp_directory_path() / ("tgpt_test_clip_trainable_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "clip.safetensors").string();
  m.save(path);
  ClipModel loaded = ClipModel::load(path);
  EXPECT_FALSE(loaded.trainable());
  EXPECT_EQ(loaded.bpe_merges(), "a b\nab c</w>");
  EXPECT_EQ(loaded.config().to_json(), c.to_json());
  EXPECT_NEAR(loaded.logit_scale(), m.logit_scale(), 1e-5);
  Generator gen(22);
  Tensor images = gen.randn({3, 3, 8, 8});
  Tensor tokens = tiny_tokens(c, 5);
  Tensor fi, ft;
  {
    NoGradGuard ng;
    fi = m.encode_image(images);
    ft = m.encode_text(tokens);
  }
  expect_close(loaded.encode_image(images), fi, 1e-6, 1e-6, "image features");
  expect_close(loaded.encode_text(tokens), ft, 1e-6, 1e-6, "text features");
  auto with_tokens = loaded.encode_image_with_tokens(images);
  expect_close(with_tokens.pooled, fi, 1e-6, 1e-6, "pooled image features");
  EXPECT_FALSE(fi.requires_grad());
  // Outside a no-grad scope a trainable model records autograd, a frozen one does not.
  EXPECT_TRUE(m.encode_image(images).requires_grad());
  EXPECT_FALSE(loaded.encode_image(images).requires_grad());
  fs::remove_all(dir);
}

TEST(ClipTrainable, FrozenModelAndBadConfigsAreRefused) {
  const ClipConfig c = tiny_config();
  ClipModel m = ClipModel::init_random(c, 1);
  std::map<std::string, Tensor> tensors;
  for (const auto& [name, t] : m.parameters().items()) tensors[name] = t.detach();
  ClipModel frozen = ClipModel::from_tensors(tensors, c);
  EXPECT_THROW(frozen.mutable_parameters(), Error);
  ClipConfig bad = c;
  bad.vision_heads = 3;
  EXPECT_THROW(ClipModel::init_random(bad, 1), Error);
  EXPECT_THROW(ClipModel::init_random(c, 1, Device::CPU, DType::i32), Error);
}

/*
 * test_golden_norm_attention_ce.cpp — layer_norm, attention (causal and not, T = 7 and 77) and
 * cross_entropy (label smoothing + ignore_index) against PyTorch 1.13 fixtures written by
 * tests/golden/gen_norm_attention_ce.py: outputs and input gradients for a fixed upstream gradient.
 *
 * Error measure, per tensor: max|ours - ref| / max|ref|. In f32 every output and gradient must be
 * within 1e-6 of PyTorch's f64 result for the same inputs, and within 1e-6 + (PyTorch f32's own
 * error against its f64 result) of PyTorch's f32 result. Run in f64, ours must match PyTorch's f64
 * result within 1e-12.
 */
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "engine/safetensors.h"
#include "tests/test_util.h"

using namespace tgpt;

namespace {

class GoldenNormAttentionCE : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test::golden_dir().empty()) GTEST_SKIP() << "run via ctest, which writes the fixtures";
    file_ = std::make_unique<SafetensorsFile>(
        SafetensorsFile::open(test::golden_dir() + "/norm_attention_ce.safetensors"));
  }
  Tensor get(const std::string& name) const { return file_->get(name); }

  // Checks ours (computed in f32) against "<key>" (PyTorch f32) and "<key>.f64".
  void check_f32(const Tensor& ours, const std::string& key) const {
    Tensor ref32 = get(key), ref64 = get(key + ".f64");
    double e64 = test::rel_error_to_max(ours, ref64), e32 = test::rel_error_to_max(ours, ref32);
    double torch_err = test::rel_error_to_max(ref32, ref64);
    std::printf("  %-26s ours-vs-f64 %.2e  ours-vs-torch-f32 %.2e  (torch f32 vs f64 %.2e)\n",
                key.c_str(), e64, e32, torch_err);
    EXPECT_LE(e64, 1e-6) << key << " vs PyTorch f64";
    EXPECT_LE(e32, 1e-6 + torch_err) << key << " vs PyTorch f32";
  }
  // Checks ours (computed in f64) against "<key>.f64".
  void check_f64(const Tensor& ours, const std::string& key) const {
    double e = test::rel_error_to_max(ours, get(key + ".f64"));
    EXPECT_LE(e, 1e-12) << key << " (f64) vs PyTorch f64";
  }

  std::unique_ptr<SafetensorsFile> file_;
};

Tensor leaf(const Tensor& t, DType dt) {
  return t.to(dt).clone().detach().set_requires_grad(true);
}

}  // namespace

TEST_F(GoldenNormAttentionCE, LayerNorm) {
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x = leaf(get("ln.x"), dt), w = leaf(get("ln.weight"), dt), b = leaf(get("ln.bias"), dt);
    Tensor y = layer_norm(x, w, b, 1e-5);
    y.backward(get("ln.dy").to(dt));
    const std::pair<Tensor, const char*> results[] = {
        {y, "ln.y"}, {x.grad(), "ln.dx"}, {w.grad(), "ln.dweight"}, {b.grad(), "ln.dbias"}};
    for (const auto& [t, key] : results) dt == DType::f32 ? check_f32(t, key) : check_f64(t, key);
  }
}

TEST_F(GoldenNormAttentionCE, Attention) {
  for (int T : {7, 77}) {
    for (bool causal : {false, true}) {
      std::string name = "attn.T" + std::to_string(T) + (causal ? ".causal" : ".full");
      for (DType dt : {DType::f32, DType::f64}) {
        Tensor qkv = leaf(get(name + ".qkv"), dt);
        ASSERT_EQ(qkv.shape(), Shape({2, T, 192}));
        Tensor y = attention(qkv, 4, causal);
        y.backward(get(name + ".dy").to(dt));
        if (dt == DType::f32) {
          check_f32(y, name + ".y");
          check_f32(qkv.grad(), name + ".dqkv");
        } else {
          check_f64(y, name + ".y");
          check_f64(qkv.grad(), name + ".dqkv");
        }
      }
    }
  }
}

TEST_F(GoldenNormAttentionCE, CrossEntropy) {
  for (std::string name : {"ce.smooth", "ce.plain"}) {
    double ls = get(name + ".label_smoothing").item();
    int64_t ignore = static_cast<int64_t>(get(name + ".ignore_index").item());
    Tensor target = get(name + ".target");
    double upstream = get(name + ".upstream").item();
    for (DType dt : {DType::f32, DType::f64}) {
      Tensor logits = leaf(get(name + ".logits"), dt);
      Tensor loss = cross_entropy(logits, target, ls, ignore);
      loss.backward(Tensor::full({}, upstream, dt));
      if (dt == DType::f32) {
        check_f32(loss.reshape({1}), name + ".loss");
        check_f32(logits.grad(), name + ".dlogits");
      } else {
        check_f64(loss.reshape({1}), name + ".loss");
        check_f64(logits.grad(), name + ".dlogits");
      }
    }
  }
}

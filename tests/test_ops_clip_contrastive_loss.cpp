/*
 * test_ops_clip_contrastive_loss.cpp — clip_contrastive_loss on the CPU: loss and all three
 * gradients against the composition l2_normalize + matmul + exp + cross_entropy (both
 * directions), central differences in f64 (unclamped and clamped scale), the clamp (s = 100 and no
 * gradient to the parameter above ln 100), a [1]-shaped parameter, bf16 through f32, argument
 * errors. Golden: against PyTorch 1.13 (tests/golden/gen_clip_contrastive_loss.py; ours in f32
 * within 1e-6 of PyTorch's f64 result relative to the tensor's max, ours in f64 within 1e-12).
 */
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "engine/safetensors.h"
#include "tests/fused_loss_test_util.h"

using namespace tgpt;
using namespace tgpt::test;

namespace {

const double kLn100 = std::log(100.0);

// The unfused reference; valid for an unclamped parameter (p <= ln 100).
Tensor clip_reference(const Tensor& img, const Tensor& txt, const Tensor& p) {
  const int64_t N = img.size(0);
  std::vector<double> ids(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) ids[static_cast<size_t>(i)] = static_cast<double>(i);
  Tensor labels = Tensor::from_vector(ids, {N}, DType::i64);
  Tensor logits = mul(matmul(l2_normalize(img), l2_normalize(txt).transpose(0, 1)), exp(p));
  return mul(add(cross_entropy(logits, labels), cross_entropy(logits.transpose(0, 1), labels)),
             0.5);
}

Tensor scalar(double v, DType dt) {
  return Tensor::full({}, v, dt);
}

}  // namespace

TEST(ClipContrastiveLoss, MatchesNormalizeMatmulCrossEntropy) {
  Generator gen(31);
  const int64_t N = 7, E = 12;
  for (DType dt : {DType::f64, DType::f32}) {
    Tensor img = gen.randn({N, E}, dt, 2.0).set_requires_grad(true);
    Tensor txt = gen.randn({N, E}, dt).set_requires_grad(true);
    for (double p : {std::log(1 / 0.07), 0.0, -1.5, kLn100 - 1e-3}) {
      Tensor ps = scalar(p, dt).set_requires_grad(true);
      auto ours = value_and_grads(
          [&](const std::vector<Tensor>& in) { return clip_contrastive_loss(in[0], in[1], in[2]); },
          {img, txt, ps}, 0.75);
      auto ref = value_and_grads(
          [&](const std::vector<Tensor>& in) { return clip_reference(in[0], in[1], in[2]); },
          {img, txt, ps}, 0.75);
      const double tol = dt == DType::f64 ? 1e-12 : 3e-5;
      std::string what = std::string(dtype_name(dt)) + " p " + std::to_string(p);
      ASSERT_EQ(ours.size(), 4u);
      expect_close(ours[0], ref[0], tol, tol, what + " loss");
      expect_close(ours[1], ref[1], tol, tol, what + " dimage");
      expect_close(ours[2], ref[2], tol, tol, what + " dtext");
      expect_close(ours[3], ref[3], tol, tol, what + " dscale");
    }
  }
}

TEST(ClipContrastiveLoss, GradientsFiniteDifferences) {
  Generator gen(32);
  Tensor img = gen.randn({5, 6}, DType::f64).set_requires_grad(true);
  Tensor txt = gen.randn({5, 6}, DType::f64, 0.5).set_requires_grad(true);
  for (double p : {0.7, 2.0}) {
    Tensor ps = scalar(p, DType::f64).set_requires_grad(true);
    expect_gradients_match(
        [&](const std::vector<Tensor>& in) { return clip_contrastive_loss(in[0], in[1], in[2]); },
        {img, txt, ps});
  }
}

TEST(ClipContrastiveLoss, ClampAboveLn100) {
  Generator gen(33);
  Tensor img = gen.randn({6, 8}, DType::f64).set_requires_grad(true);
  Tensor txt = gen.randn({6, 8}, DType::f64).set_requires_grad(true);
  // Above the bound: the value is that of p = ln 100 and the parameter gets exactly 0.
  auto clamped = value_and_grads(
      [&](const std::vector<Tensor>& in) { return clip_contrastive_loss(in[0], in[1], in[2]); },
      {img, txt, scalar(6.0, DType::f64).set_requires_grad(true)}, 1.0);
  auto at_bound = value_and_grads(
      [&](const std::vector<Tensor>& in) { return clip_reference(in[0], in[1], in[2]); },
      {img, txt, scalar(kLn100, DType::f64).set_requires_grad(true)}, 1.0);
  expect_close(clamped[0], at_bound[0], 1e-12, 1e-12, "loss at s = 100");
  expect_close(clamped[1], at_bound[1], 1e-12, 1e-12, "dimage at s = 100");
  expect_close(clamped[2], at_bound[2], 1e-12, 1e-12, "dtext at s = 100");
  EXPECT_EQ(clamped[3].item(), 0.0);
  EXPECT_NE(at_bound[3].item(), 0.0);
  // At the bound itself (p = ln 100 as a double, what torch.clamp(max=math.log(100)) compares
  // with) the gradient passes, as torch.clamp's does; one ulp above it is clamped.
  auto ours_at_bound = value_and_grads(
      [&](const std::vector<Tensor>& in) { return clip_contrastive_loss(in[0], in[1], in[2]); },
      {img, txt, scalar(kLn100, DType::f64).set_requires_grad(true)}, 1.0);
  expect_close(ours_at_bound[3], at_bound[3], 1e-12, 1e-12, "dscale at p = ln 100");
  auto above = value_and_grads(
      [&](const std::vector<Tensor>& in) { return clip_contrastive_loss(in[0], in[1], in[2]); },
      {img, txt, scalar(std::nextafter(kLn100, 10.0), DType::f64).set_requires_grad(true)}, 1.0);
  EXPECT_EQ(above[3].item(), 0.0);
  // Feature gradients under the clamp still match finite differences (the parameter's 0 too).
  expect_gradients_match(
      [&](const std::vector<Tensor>& in) { return clip_contrastive_loss(in[0], in[1], in[2]); },
      {img, txt, scalar(6.0, DType::f64).set_requires_grad(true)});
}

TEST(ClipContrastiveLoss, ShapesDtypesAndFrozenInputs) {
  Generator gen(34);
  Tensor img = gen.randn({4, 5}), txt = gen.randn({4, 5});
  // A [1] parameter gets a [1] gradient; frozen features get none.
  Tensor p1 = Tensor::full({1}, 1.0, DType::f32).set_requires_grad(true);
  Tensor loss = clip_contrastive_loss(img, txt, p1);
  loss.backward();
  ASSERT_TRUE(p1.grad().defined());
  EXPECT_EQ(p1.grad().shape(), Shape({1}));
  // N = 1: both cross-entropies are 0.
  EXPECT_EQ(
      clip_contrastive_loss(gen.randn({1, 5}), gen.randn({1, 5}), scalar(2.0, DType::f32)).item(),
      0.0);
  // bf16 inputs on the CPU go through f32 and come back as bf16.
  Tensor ref = clip_contrastive_loss(img.to(DType::bf16).to(DType::f32),
                                     txt.to(DType::bf16).to(DType::f32), scalar(1.0, DType::f32));
  Tensor half =
      clip_contrastive_loss(img.to(DType::bf16), txt.to(DType::bf16), scalar(1.0, DType::f32));
  EXPECT_EQ(half.dtype(), DType::bf16);
  EXPECT_NEAR(half.item(), ref.item(), 1e-2 * std::abs(ref.item()));
  // f32 features with an f64 parameter: the parameter's gradient is f64.
  Tensor p64 = scalar(1.0, DType::f64).set_requires_grad(true);
  clip_contrastive_loss(img, txt, p64).backward();
  EXPECT_EQ(p64.grad().dtype(), DType::f64);
}

TEST(ClipContrastiveLoss, Errors) {
  Generator gen(35);
  Tensor img = gen.randn({3, 8}), txt = gen.randn({3, 8});
  Tensor p = scalar(1.0, DType::f32);
  EXPECT_NO_THROW(clip_contrastive_loss(img, txt, p));
  EXPECT_THROW(clip_contrastive_loss(img, gen.randn({3, 7}), p), Error);
  EXPECT_THROW(clip_contrastive_loss(img, gen.randn({4, 8}), p), Error);
  EXPECT_THROW(clip_contrastive_loss(img, txt.to(DType::f64), p), Error);
  EXPECT_THROW(clip_contrastive_loss(img.reshape({24}), txt.reshape({24}), p), Error);
  EXPECT_THROW(clip_contrastive_loss(img, txt, Tensor::zeros({2})), Error);
  EXPECT_THROW(clip_contrastive_loss(img, txt, Tensor::zeros({1, 1})), Error);
  EXPECT_THROW(clip_contrastive_loss(img, txt, Tensor::zeros({}, DType::i64)), Error);
  EXPECT_THROW(clip_contrastive_loss(img, txt, scalar(std::nan(""), DType::f32)), Error);
  EXPECT_THROW(clip_contrastive_loss(img, txt, Tensor()), Error);
  EXPECT_THROW(clip_contrastive_loss(gen.randn({0, 8}), gen.randn({0, 8}), p), Error);
  EXPECT_THROW(clip_contrastive_loss(img, txt.to(DType::i64), p), Error);
}

class GoldenClipContrastiveLoss : public ::testing::Test {
 protected:
  void SetUp() override {
    if (golden_dir().empty()) GTEST_SKIP() << "run via ctest, which writes the fixtures";
    file_ = std::make_unique<SafetensorsFile>(
        SafetensorsFile::open(golden_dir() + "/clip_contrastive_loss.safetensors"));
  }
  Tensor get(const std::string& name) const { return file_->get(name); }
  void check_case(const std::string& c) const {
    std::vector<Tensor> r[2];
    for (int k = 0; k < 2; ++k) {
      DType dt = k == 0 ? DType::f32 : DType::f64;
      r[k] = value_and_grads(
          [&](const std::vector<Tensor>& in) { return clip_contrastive_loss(in[0], in[1], in[2]); },
          {get(c + ".image").to(dt).set_requires_grad(true),
           get(c + ".text").to(dt).set_requires_grad(true),
           get(c + ".logit_scale").to(dt).set_requires_grad(true)},
          0.75);
    }
    const char* outs[] = {"loss", "dimage", "dtext", "dscale"};
    for (int o = 0; o < 4; ++o) {
      const std::string key = c + "." + outs[o];
      Tensor ref64 = get(key + ".f64"), ref32 = get(key);
      double e = rel_to_max(r[0][o], ref64), e64 = rel_to_max(r[1][o], ref64);
      std::printf("  %-18s ours-f32-vs-f64 %.2e  (torch f32 vs f64 %.2e)  ours-f64 %.2e\n",
                  key.c_str(), e, rel_to_max(ref32, ref64), e64);
      EXPECT_LE(e, 1e-6) << key;
      EXPECT_LE(e64, 1e-12) << key;
    }
  }
  std::unique_ptr<SafetensorsFile> file_;
};

TEST_F(GoldenClipContrastiveLoss, InitScale) {
  check_case("init");
}

TEST_F(GoldenClipContrastiveLoss, ClampedScaleHasNoGradient) {
  check_case("clamped");
  EXPECT_EQ(get("clamped.dscale.f64").item(), 0.0);
}

TEST_F(GoldenClipContrastiveLoss, SmallScale) {
  check_case("small");
}

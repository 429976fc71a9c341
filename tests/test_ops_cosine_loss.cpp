/*
 * test_ops_cosine_loss.cpp — cosine_logit_loss on the CPU: loss and both gradients against
 * l2_normalize + linear + cross_entropy, finite differences, a zero feature row, a frozen weight,
 * argument errors. Golden: against PyTorch 1.13 (tests/golden/gen_fused_loss.py).
 */
#include <gtest/gtest.h>

#include <cmath>

#include "tests/fused_loss_test_util.h"

using namespace tgpt;
using namespace tgpt::test;

namespace {

Tensor cosine_reference(const Tensor& x, const Tensor& w, const Tensor& t, double scale) {
  return cross_entropy(mul(linear(l2_normalize(x), w), scale), t);
}

}  // namespace

// ---- cosine_logit_loss ---------------------------------------------------------------------

TEST(CosineLogitLoss, MatchesNormalizeLinearCrossEntropy) {
  Generator gen(21);
  const int64_t N = 6, F = 20, K = 7;
  for (DType dt : {DType::f64, DType::f32}) {
    Tensor x = gen.randn({N, F}, dt, 2.0).set_requires_grad(true);
    Tensor w = l2_normalize(gen.randn({K, F}, dt)).detach().set_requires_grad(true);
    Tensor t = gen.randint({N}, 0, K);
    for (double scale : {100.0, 1.0}) {
      auto ours = value_and_grads(
          [&](const std::vector<Tensor>& in) { return cosine_logit_loss(in[0], in[1], t, scale); },
          {x, w}, 0.75);
      auto ref = value_and_grads(
          [&](const std::vector<Tensor>& in) { return cosine_reference(in[0], in[1], t, scale); },
          {x, w}, 0.75);
      const double tol = dt == DType::f64 ? 1e-12 : 2e-5;
      std::string what = std::string(dtype_name(dt)) + " scale " + std::to_string(scale);
      expect_close(ours[0], ref[0], tol, tol, what + " loss");
      expect_close(ours[1], ref[1], tol, tol, what + " dfeatures");
      expect_close(ours[2], ref[2], tol, tol, what + " dweight");
    }
  }
}

TEST(CosineLogitLoss, GradientsFiniteDifferences) {
  Generator gen(22);
  Tensor x = gen.randn({4, 9}, DType::f64).set_requires_grad(true);
  Tensor w = gen.randn({5, 9}, DType::f64, 0.3).set_requires_grad(true);
  Tensor t = gen.randint({4}, 0, 5);
  expect_gradients_match(
      [&](const std::vector<Tensor>& in) { return cosine_logit_loss(in[0], in[1], t, 10.0); },
      {x, w});
}

TEST(CosineLogitLoss, ZeroFeatureRowAndFrozenWeight) {
  Generator gen(23);
  Tensor x = gen.randn({3, 8}, DType::f64);
  for (int64_t f = 0; f < 8; ++f) x.data<double>()[8 + f] = 0.0;  // row 1 is zero
  x.set_requires_grad(true);
  Tensor w = gen.randn({4, 8}, DType::f64);  // frozen
  Tensor t = Tensor::from_vector({1, 3, 0}, {3}, DType::i64);
  auto ours = value_and_grads(
      [&](const std::vector<Tensor>& in) { return cosine_logit_loss(in[0], in[1], t); }, {x, w},
      1.0);
  auto ref = value_and_grads(
      [&](const std::vector<Tensor>& in) { return cosine_reference(in[0], in[1], t, 100.0); },
      {x, w}, 1.0);
  ASSERT_EQ(ours.size(), 2u);  // loss and dfeatures only
  expect_close(ours[0], ref[0], 1e-12, 1e-12, "loss");
  expect_close(ours[1], ref[1], 1e-12, 1e-12, "dfeatures");
}

TEST(CosineLogitLoss, Errors) {
  Generator gen(24);
  Tensor x = gen.randn({3, 8});
  Tensor w = gen.randn({4, 8});
  Tensor t = gen.randint({3}, 0, 4);
  EXPECT_NO_THROW(cosine_logit_loss(x, w, t));
  EXPECT_THROW(cosine_logit_loss(x, gen.randn({4, 7}), t), Error);
  EXPECT_THROW(cosine_logit_loss(x, w, gen.randint({2}, 0, 4)), Error);
  EXPECT_THROW(cosine_logit_loss(x, w, Tensor::from_vector({0, 4, 1}, {3}, DType::i64)), Error);
  EXPECT_THROW(cosine_logit_loss(x, w, Tensor::from_vector({0, -100, 1}, {3}, DType::i64)), Error);
  EXPECT_THROW(cosine_logit_loss(x, w.to(DType::f64), t), Error);
  EXPECT_THROW(cosine_logit_loss(x, w, t, std::nan("")), Error);
  EXPECT_THROW(cosine_logit_loss(x.reshape({24}), w, t), Error);
}

TEST_F(GoldenFusedLoss, CosineLogitLoss) {
  Tensor t = get("cos.target");
  std::vector<Tensor> r[2];
  for (int k = 0; k < 2; ++k) {
    DType dt = k == 0 ? DType::f32 : DType::f64;
    r[k] = value_and_grads(
        [&](const std::vector<Tensor>& in) { return cosine_logit_loss(in[0], in[1], t, 100.0); },
        {get("cos.features").to(dt).set_requires_grad(true),
         get("cos.weight").to(dt).set_requires_grad(true)},
        0.75);
  }
  check(r[0][0], r[1][0], "cos.loss");
  check(r[0][1], r[1][1], "cos.dfeatures");
  check(r[0][2], r[1][2], "cos.dweight");
}

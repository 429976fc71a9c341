/*
 * test_ops_mse_loss.cpp — mse_loss: forward against a double loop (contiguous and transposed
 * inputs), gradients of both inputs against finite differences in f64, 16-bit inputs and errors.
 */
#include <gtest/gtest.h>

#include <vector>

#include "engine/ops.h"
#include "engine/random.h"
#include "tests/test_util.h"

using namespace tgpt;
using namespace tgpt::test;

TEST(OpsMseLoss, ForwardMatchesLoop) {
  Generator gen(31);
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor a = gen.randn({5, 9000}, dt), b = gen.randn({5, 9000}, dt);  // several chunks
    std::vector<double> av = a.to_double_vector(), bv = b.to_double_vector();
    double acc = 0;
    for (size_t i = 0; i < av.size(); ++i) acc += (av[i] - bv[i]) * (av[i] - bv[i]);
    Tensor l = mse_loss(a, b);
    EXPECT_EQ(l.dim(), 0);
    EXPECT_EQ(l.dtype(), dt);
    double tol = dt == DType::f64 ? 1e-13 : 1e-7;
    EXPECT_NEAR(l.item(), acc / static_cast<double>(av.size()), tol * acc / av.size());
    Tensor at = a.transpose(0, 1), bt = b.transpose(0, 1);  // non-contiguous, same pairs
    EXPECT_NEAR(mse_loss(at, bt).item(), acc / static_cast<double>(av.size()),
                tol * acc / av.size());
  }
  Tensor one_a = Tensor::from_vector({3}, {1}), one_b = Tensor::from_vector({1}, {1});
  EXPECT_EQ(mse_loss(one_a, one_b).item(), 4.0);
}

TEST(OpsMseLoss, GradientsMatchFiniteDifferences) {
  Generator gen(32);
  Tensor a = gen.randn({3, 4}, DType::f64).set_requires_grad(true);
  Tensor b = gen.randn({3, 4}, DType::f64).set_requires_grad(true);
  auto f = [](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1]); };
  expect_gradients_match(f, {a, b});
  Tensor frozen = gen.randn({3, 4}, DType::f64);
  expect_gradients_match(f, {a, frozen});
  EXPECT_FALSE(frozen.grad().defined());
  // as part of a larger graph (output gradient other than 1)
  expect_gradients_match(
      [](const std::vector<Tensor>& in) { return mul(mse_loss(in[0], in[1]), 3.5); }, {a, b});
}

TEST(OpsMseLoss, HalfAndErrors) {
  Generator gen(33);
  for (DType dt : {DType::f16, DType::bf16}) {
    Tensor a = gen.randn({16}).to(dt), b = gen.randn({16}).to(dt);
    Tensor l = mse_loss(a, b);
    EXPECT_EQ(l.dtype(), dt);
    std::vector<double> av = a.to_double_vector(), bv = b.to_double_vector();
    double acc = 0;
    for (size_t i = 0; i < av.size(); ++i) acc += (av[i] - bv[i]) * (av[i] - bv[i]);
    EXPECT_NEAR(l.item(), acc / 16, 1e-2 * acc / 16);
  }
  EXPECT_THROW(mse_loss(Tensor::ones({3}), Tensor::ones({4})), Error);
  EXPECT_THROW(mse_loss(Tensor::ones({3, 1}), Tensor::ones({3})), Error);  // no broadcasting
  EXPECT_THROW(mse_loss(Tensor::ones({3}), Tensor::ones({3}, DType::f64)), Error);
  EXPECT_THROW(mse_loss(Tensor::ones({3}, DType::i64), Tensor::ones({3}, DType::i64)), Error);
}

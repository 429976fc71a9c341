/*
 * test_add_layer_norm.cpp — add_layer_norm on the CPU: equals add then layer_norm, returns the
 * residual sum, and its gradients (through both outputs) match finite differences in f64.
 */
#include <gtest/gtest.h>

#include "tests/test_util.h"

using namespace tgpt;
using namespace tgpt::test;

TEST(AddLayerNorm, EqualsAddThenLayerNorm) {
  Generator g(1);
  Tensor x = g.randn({2, 5, 7}), r = g.randn({2, 5, 7}), w = g.randn({7}), b = g.randn({7});
  Tensor s;
  Tensor y = add_layer_norm(x, r, w, b, 1e-5, &s);
  Tensor s_ref = add(x, r);
  EXPECT_EQ(s.to_double_vector(), s_ref.to_double_vector());
  EXPECT_EQ(y.to_double_vector(), layer_norm(s_ref, w, b, 1e-5).to_double_vector());
}

TEST(AddLayerNorm, GradientsMatchFiniteDifferences) {
  Generator g(2);
  std::vector<Tensor> in = {g.randn({3, 4, 6}, DType::f64), g.randn({3, 4, 6}, DType::f64),
                            g.randn({6}, DType::f64), g.randn({6}, DType::f64)};
  for (Tensor& t : in) t.set_requires_grad(true);
  expect_gradients_match(
      [](const std::vector<Tensor>& v) {
        Tensor s;
        Tensor y = add_layer_norm(v[0], v[1], v[2], v[3], 1e-5, &s);
        return concat({y, mul(s, 0.5)}, -1);
      },
      in);
}

TEST(AddLayerNorm, RejectsMismatchedShapes) {
  Generator g(3);
  EXPECT_THROW(add_layer_norm(g.randn({2, 3}), g.randn({3}), Tensor(), Tensor()), Error);
}

/*
 * test_ops_bias_activation.cpp — bias_activation(x, bias, act) = act(x + bias): forward against the
 * unfused composition (add then relu/gelu/quick_gelu), gradients of x and bias against f64
 * finite differences, frozen inputs, 16-bit inputs, thread-count determinism and bad input.
 */
#include <gtest/gtest.h>

#include "base/parallel.h"
#include "tests/test_util.h"

using namespace tgpt;
using namespace tgpt::test;

namespace {

Tensor unfused(const Tensor& x, const Tensor& b, Activation a) {
  Tensor s = add(x, b);
  switch (a) {
    case Activation::relu: return relu(s);
    case Activation::gelu: return gelu(s);
    case Activation::quick_gelu: return quick_gelu(s);
  }
  return s;
}

const Activation kActs[] = {Activation::relu, Activation::gelu, Activation::quick_gelu};

}  // namespace

TEST(BiasActivation, ForwardMatchesAddThenActivation) {
  Generator g(11);
  for (Activation a : kActs)
    for (Shape s : {Shape{2, 5, 7}, Shape{3}, Shape{4, 1}, Shape{1, 130}}) {
      Tensor x = g.randn(s, DType::f64, 2.0);
      Tensor b = g.randn({s.back()}, DType::f64);
      Tensor got = bias_activation(x, b, a), ref = unfused(x, b, a);
      EXPECT_EQ(got.shape(), s);
      expect_close(got, ref, 1e-15, 1e-15, "f64 " + s.str());
      Tensor xf = x.to(DType::f32), bf = b.to(DType::f32);
      expect_close(bias_activation(xf, bf, a), unfused(xf, bf, a), 1e-6, 1e-7, "f32 " + s.str());
    }
}

TEST(BiasActivation, GradientsMatchFiniteDifferences) {
  Generator g(12);
  for (Activation a : kActs)
    for (Shape s : {Shape{3, 4, 5}, Shape{6}, Shape{2, 1}, Shape{70, 3}}) {
      Tensor x = g.randn(s, DType::f64, 1.5);
      Tensor b = g.randn({s.back()}, DType::f64);
      if (a == Activation::relu) {  // keep x + b away from relu's kink so differences are smooth
        double* p = x.data<double>();
        const double* pb = b.data<double>();
        for (int64_t i = 0; i < x.numel(); ++i) {
          const double v = p[i] + pb[i % s.back()];
          if (std::abs(v) < 1e-3) p[i] += 0.01;
        }
      }
      x.set_requires_grad(true);
      b.set_requires_grad(true);
      expect_gradients_match(
          [a](const std::vector<Tensor>& v) { return bias_activation(v[0], v[1], a); }, {x, b});
    }
}

TEST(BiasActivation, GradientsMatchUnfusedComposition) {
  Generator g(13);
  for (Activation a : kActs) {
    Tensor x = g.randn({5, 9, 33}, DType::f64), b = g.randn({33}, DType::f64);
    Tensor x1 = x.detach(), b1 = b.detach(), x2 = x.clone(), b2 = b.clone();
    for (Tensor* t : {&x1, &b1, &x2, &b2}) t->set_requires_grad(true);
    weighted_sum(bias_activation(x1, b1, a)).backward();
    weighted_sum(unfused(x2, b2, a)).backward();
    expect_close(x1.grad(), x2.grad(), 1e-12, 1e-13, "dx");
    expect_close(b1.grad(), b2.grad(), 1e-12, 1e-12, "dbias");
  }
}

TEST(BiasActivation, FrozenInputsGetNoGradient) {
  Generator g(14);
  Tensor x = g.randn({4, 6}, DType::f64), b = g.randn({6}, DType::f64);
  x.set_requires_grad(true);
  weighted_sum(bias_activation(x, b, Activation::gelu)).backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_FALSE(b.grad().defined());
  Tensor x2 = g.randn({4, 6}, DType::f64), b2 = g.randn({6}, DType::f64);
  b2.set_requires_grad(true);
  weighted_sum(bias_activation(x2, b2, Activation::quick_gelu)).backward();
  EXPECT_TRUE(b2.grad().defined());
  EXPECT_FALSE(x2.grad().defined());
}

TEST(BiasActivation, HalfInputsComputeInF32) {
  Generator g(15);
  for (DType dt : {DType::bf16, DType::f16}) {
    Tensor x = g.randn({3, 17}, DType::f32).to(dt), b = g.randn({17}, DType::f32).to(dt);
    Tensor got = bias_activation(x, b, Activation::quick_gelu);
    EXPECT_EQ(got.dtype(), dt);
    Tensor ref = bias_activation(x.to(DType::f32), b.to(DType::f32), Activation::quick_gelu).to(dt);
    expect_close(got, ref, 0, 0, dtype_name(dt));
  }
}

TEST(BiasActivation, DeterministicAcrossThreadCounts) {
  Generator g(16);
  Tensor x = g.randn({300, 200}, DType::f32), b = g.randn({200}, DType::f32);
  auto run = [&](int threads) {
    set_num_threads(threads);
    Tensor xa = x.detach(), ba = b.detach();
    xa.set_requires_grad(true);
    ba.set_requires_grad(true);
    Tensor out = bias_activation(xa, ba, Activation::gelu);
    weighted_sum(out).backward();
    return std::vector<Tensor>{out.detach(), xa.grad(), ba.grad()};
  };
  const int n = num_threads();
  std::vector<Tensor> one = run(1), many = run(std::max(n, 4));
  set_num_threads(n);
  for (size_t i = 0; i < one.size(); ++i) expect_close(one[i], many[i], 0, 0, "bitwise");
}

TEST(BiasActivation, RejectsBadInput) {
  Tensor x = Tensor::zeros({2, 3});
  EXPECT_THROW(bias_activation(x, Tensor::zeros({4}), Activation::relu), Error);
  EXPECT_THROW(bias_activation(x, Tensor::zeros({1, 3}), Activation::relu), Error);
  EXPECT_THROW(bias_activation(x, Tensor::zeros({3}, DType::f64), Activation::relu), Error);
  EXPECT_THROW(bias_activation(x, Tensor(), Activation::relu), Error);
  EXPECT_THROW(
      bias_activation(Tensor::zeros({2, 3}, DType::i32), Tensor::zeros({3}, DType::i32), Activation::gelu),
      Error);
  EXPECT_THROW(bias_activation(Tensor::zeros({}), Tensor::zeros({1}), Activation::gelu), Error);
}

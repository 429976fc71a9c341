/*
 * test_autograd.cpp — tape semantics: accumulation, zeroing, frozen inputs, no-grad mode,
 * released graphs, views, and allocation-free repeated steps.
 */
#include <gtest/gtest.h>

#include "engine/autograd.h"
#include "tests/test_util.h"

using namespace tgpt;
using tgpt::test::expect_gradients_match;

TEST(Autograd, SimpleChainAndAccumulation) {
  Tensor x = Tensor::from_vector({1, 2, 3}, {3}, DType::f64).set_requires_grad(true);
  Tensor y = sum(mul(x, x));  // d/dx = 2x
  y.backward();
  EXPECT_EQ(x.grad().to_double_vector(), std::vector<double>({2, 4, 6}));
  Tensor y2 = sum(mul(x, 3.0));
  y2.backward();  // accumulates
  EXPECT_EQ(x.grad().to_double_vector(), std::vector<double>({5, 7, 9}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  EXPECT_EQ(tape_size(), 0u);
}

TEST(Autograd, FrozenInputsGetNoGradientAndNoNode) {
  Tensor w = Tensor::from_vector({1, 2}, {2}, DType::f64);  // frozen
  Tensor x = Tensor::from_vector({3, 4}, {2}, DType::f64).set_requires_grad(true);
  Tensor frozen_only = mul(w, w);
  EXPECT_FALSE(frozen_only.requires_grad());
  EXPECT_EQ(tape_size(), 0u);
  Tensor y = sum(mul(x, w));
  EXPECT_EQ(tape_size(), 2u);
  y.backward();
  EXPECT_FALSE(w.grad().defined());
  EXPECT_EQ(x.grad().to_double_vector(), std::vector<double>({1, 2}));
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = Tensor::ones({3}).set_requires_grad(true);
  {
    NoGradGuard g;
    Tensor y = mul(x, 2.0);
    EXPECT_FALSE(y.requires_grad());
  }
  EXPECT_EQ(tape_size(), 0u);
  EXPECT_TRUE(grad_enabled());
}

TEST(Autograd, ErrorsAreClear) {
  Tensor x = Tensor::ones({3});
  EXPECT_THROW(sum(x).backward(), Error);  // does not require grad
  Tensor p = Tensor::ones({3}).set_requires_grad(true);
  Tensor y = mul(p, 2.0);
  EXPECT_THROW(y.backward(), Error);  // not a scalar
  Tensor s = sum(y);
  s.backward();
  EXPECT_THROW(s.backward(), Error);  // graph released
  EXPECT_THROW(Tensor::ones({2}, DType::i32).set_requires_grad(true), Error);
}

TEST(Autograd, BackwardWithGivenGradient) {
  Tensor x = Tensor::from_vector({1, 2}, {2}, DType::f64).set_requires_grad(true);
  Tensor y = mul(x, 5.0);
  y.backward(Tensor::from_vector({1, -1}, {2}, DType::f64));
  EXPECT_EQ(x.grad().to_double_vector(), std::vector<double>({5, -5}));
}

TEST(Autograd, ViewsAndCastsPropagateGradients) {
  Generator gen(3);
  Tensor x = gen.randn({2, 3, 4}, DType::f64).set_requires_grad(true);
  expect_gradients_match(
      [](const std::vector<Tensor>& in) {
        Tensor a = in[0].transpose(0, 2).reshape({4, 6});
        Tensor b = in[0].narrow(1, 1, 2).permute({2, 1, 0}).contiguous();
        Tensor c = in[0].select(0, 1).unsqueeze(0).squeeze(0).flatten();
        return add(sum(a, {0}), add(sum(b), sum(c)));
      },
      {x});
}

TEST(Autograd, CastBackwardConvertsGradient) {
  Tensor x = Tensor::from_vector({1, 2}, {2}, DType::f64).set_requires_grad(true);
  Tensor y = sum(mul(x.to(DType::bf16), 4.0));
  EXPECT_EQ(y.dtype(), DType::bf16);
  y.backward();
  EXPECT_EQ(x.grad().dtype(), DType::f64);
  EXPECT_EQ(x.grad().to_double_vector(), std::vector<double>({4, 4}));
}

TEST(Autograd, BroadcastElementwiseGradients) {
  Generator gen(4);
  Tensor a = gen.randn({2, 3, 4}, DType::f64).set_requires_grad(true);
  Tensor b = gen.uniform({3, 1}, 0.5, 2.0, DType::f64).set_requires_grad(true);
  expect_gradients_match([](const std::vector<Tensor>& in) { return add(in[0], in[1]); }, {a, b});
  expect_gradients_match([](const std::vector<Tensor>& in) { return sub(in[0], in[1]); }, {a, b});
  expect_gradients_match([](const std::vector<Tensor>& in) { return mul(in[0], in[1]); }, {a, b});
  expect_gradients_match([](const std::vector<Tensor>& in) { return div(in[0], in[1]); }, {a, b});
}

TEST(Autograd, UnaryGradients) {
  Generator gen(5);
  Tensor x = gen.uniform({3, 5}, 0.5, 2.0, DType::f64).set_requires_grad(true);
  auto check = [&](std::function<Tensor(const Tensor&)> f) {
    expect_gradients_match([&](const std::vector<Tensor>& in) { return f(in[0]); }, {x});
  };
  check([](const Tensor& t) { return neg(t); });
  check([](const Tensor& t) { return exp(t); });
  check([](const Tensor& t) { return log(t); });
  check([](const Tensor& t) { return sqrt(t); });
  check([](const Tensor& t) { return pow(t, 3.5); });
  check([](const Tensor& t) { return add(t, 2.0); });
  check([](const Tensor& t) { return mul(t, -1.5); });
  check([](const Tensor& t) { return broadcast_to(t.unsqueeze(0), {2, 3, 5}); });
}

TEST(Autograd, ReductionGradients) {
  Generator gen(6);
  Tensor x = gen.randn({2, 3, 4}, DType::f64).set_requires_grad(true);
  auto check = [&](std::function<Tensor(const Tensor&)> f) {
    expect_gradients_match([&](const std::vector<Tensor>& in) { return f(in[0]); }, {x});
  };
  check([](const Tensor& t) { return sum(t); });
  check([](const Tensor& t) { return mean(t); });
  check([](const Tensor& t) { return sum(t, {1}); });
  check([](const Tensor& t) { return mean(t, {0, 2}, true); });
  check([](const Tensor& t) { return sum(t, {-1}, true); });
}

TEST(Autograd, ReductionValues) {
  Tensor x = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(sum(x).item(), 21.0);
  EXPECT_EQ(sum(x).dim(), 0);
  EXPECT_EQ(sum(x, {0}).to_double_vector(), std::vector<double>({5, 7, 9}));
  EXPECT_EQ(mean(x, {1}).to_double_vector(), std::vector<double>({2, 5}));
  EXPECT_EQ(sum(x, {1}, true).shape(), Shape({2, 1}));
  EXPECT_THROW(sum(x, {2}), Error);
  EXPECT_THROW(add(x, Tensor::ones({4})), Error);
}

TEST(Autograd, RepeatedStepAllocatesNothingNew) {
  Generator gen(7);
  Tensor w = gen.randn({16, 8}).set_requires_grad(true);
  Tensor x = gen.randn({4, 16, 8});
  auto step = [&] {
    w.zero_grad();
    Tensor y = mean(mul(exp(mul(x, w)), add(x, 1.0)));
    y.backward();
  };
  step();
  step();
  uint64_t before = memory_stats(Device::CPU).system_allocs;
  for (int i = 0; i < 5; ++i) step();
  EXPECT_EQ(memory_stats(Device::CPU).system_allocs, before);
}

// A node keeps a gradient route of an intermediate input, not its storage: an intermediate that
// no node saved is freed when the forward code drops it (the casts of the CPU's bf16 ops, residual
// adds, reshapes), and backward still routes its gradient through the producing node.
TEST(Autograd, NodesDoNotKeepUnsavedIntermediatesAlive) {
  Generator gen(3);
  Tensor x = gen.randn({64, 256}).set_requires_grad(true);
  const size_t bytes = 64 * 256 * sizeof(float);
  Tensor y;
  size_t held = 0;
  {
    Tensor t = mul(x, 2.0);         // intermediate: mul_scalar saves nothing
    Tensor t64 = t.to(DType::f64);  // cast: saves nothing
    y = add(t64, 1.0);              // add_scalar: saves nothing
    held = memory_stats(Device::CPU).current_bytes;
  }  // t and t64 dropped: their buffers go back to the allocator
  EXPECT_EQ(memory_stats(Device::CPU).current_bytes, held - bytes - 2 * bytes);
  Tensor s = sum(y);
  s.backward();
  ASSERT_TRUE(x.grad().defined());
  for (double g : x.grad().to_double_vector()) EXPECT_EQ(g, 2.0);
  // The route of an intermediate has its shape, dtype and device, and no data.
  Tensor a = mul(x, 3.0);
  const Tensor r = gradient_route(a);
  EXPECT_EQ(r.shape(), a.shape());
  EXPECT_EQ(r.dtype(), a.dtype());
  EXPECT_EQ(r.device(), a.device());
  EXPECT_EQ(r.grad_fn(), a.grad_fn());
  EXPECT_EQ(r.data_ptr(), nullptr);
  // A leaf is its own route (backward accumulates into its .grad).
  EXPECT_EQ(gradient_route(x).data_ptr(), x.data_ptr());
  clear_tape();
}

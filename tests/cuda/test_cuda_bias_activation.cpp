/*
 * test_cuda_bias_activation.cpp — the fused bias + activation op on the device against the CPU
 * op (f64 reference and the same-dtype CPU run, cuda_test_util.h's rule), forward and the
 * gradients of x and bias, in f32, bf16 and f16, at CLIP MLP shapes and awkward ones (1 row,
 * 1 column, widths not a multiple of 32, more rows than one dbias chunk); bitwise determinism of
 * dbias; frozen inputs; bad input. Labelled `cuda`; skips without a device.
 */
#include <gtest/gtest.h>

#include "tests/cuda/cuda_test_util.h"

using namespace tgpt;
using namespace tgpt::cudatest;

namespace {

Tensor rnd(const Shape& s, uint64_t seed, double std = 1.0) {
  Generator g(seed);
  return g.randn(s, DType::f32, std);
}

const char* act_str(Activation a) {
  switch (a) {
    case Activation::relu: return "relu";
    case Activation::gelu: return "gelu";
    case Activation::quick_gelu: return "quick_gelu";
  }
  return "?";
}

}  // namespace

TEST(CudaBiasActivation, MatchesCpuForwardAndBackward) {
  SKIP_WITHOUT_CUDA();
  uint64_t seed = 100;
  for (DType dt : all_float_dtypes())
    for (Activation a : {Activation::relu, Activation::gelu, Activation::quick_gelu})
      for (Shape s : {Shape{2, 77, 256}, Shape{1, 1, 3}, Shape{4, 197, 1}, Shape{3, 50, 769},
                      Shape{1200, 33}}) {
        std::vector<Tensor> in = {rnd(s, seed++, 2.0), rnd({s.back()}, seed++)};
        check_op([a](const std::vector<Tensor>& v) { return bias_activation(v[0], v[1], a); }, in,
                 {true, true}, dt, true,
                 std::string("bias_activation ") + act_str(a) + " " + s.str());
      }
}

TEST(CudaBiasActivation, FrozenBiasOrFrozenInput) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : {DType::f32, DType::bf16}) {
    std::vector<Tensor> in = {rnd({5, 40, 70}, 7, 2.0), rnd({70}, 8)};
    auto f = [](const std::vector<Tensor>& v) { return bias_activation(v[0], v[1], Activation::gelu); };
    check_op(f, in, {true, false}, dt, true, "frozen bias");
    check_op(f, in, {false, true}, dt, true, "frozen x");
  }
}

TEST(CudaBiasActivation, BackwardIsBitwiseDeterministic) {
  SKIP_WITHOUT_CUDA();
  Tensor x0 = rnd({4096, 300}, 9).to(Device::CUDA), b0 = rnd({300}, 10).to(Device::CUDA);
  Tensor w = rnd({4096, 300}, 11).to(Device::CUDA);
  auto run = [&] {
    Tensor x = x0.detach(), b = b0.detach();
    x.set_requires_grad(true);
    b.set_requires_grad(true);
    sum(mul(bias_activation(x, b, Activation::quick_gelu), w)).backward();
    return std::pair<Tensor, Tensor>{x.grad().to(Device::CPU), b.grad().to(Device::CPU)};
  };
  auto [dx1, db1] = run();
  auto [dx2, db2] = run();
  EXPECT_EQ(dx1.to_double_vector(), dx2.to_double_vector());
  EXPECT_EQ(db1.to_double_vector(), db2.to_double_vector());
}

TEST(CudaBiasActivation, Errors) {
  SKIP_WITHOUT_CUDA();
  Tensor x = Tensor::zeros({2, 3}, DType::f32, Device::CUDA);
  EXPECT_THROW(bias_activation(x, Tensor::zeros({3}), Activation::relu), Error);  // bias on the CPU
  EXPECT_THROW(bias_activation(x, Tensor::zeros({4}, DType::f32, Device::CUDA), Activation::relu), Error);
  EXPECT_THROW(bias_activation(x, Tensor::zeros({3}, DType::bf16, Device::CUDA), Activation::relu), Error);
}

/*
 * test_ops_conv.cpp — conv2d_patch (CLIP patch embedding, kernel = stride = P): forward against a
 * direct convolution loop (with and without bias, P = 1, non-square images, strided x),
 * gradients for x, weight and bias against finite differences in f64, a frozen weight, f16/bf16,
 * thread counts and argument errors.
 */
#include <gtest/gtest.h>

#include "engine/ops.h"
#include "base/parallel.h"
#include "engine/random.h"
#include "tests/test_util.h"

using namespace tgpt;
using tgpt::test::expect_close;
using tgpt::test::expect_gradients_match;

namespace {

// out[b, o, gy, gx] = bias[o] + sum_{c, py, px} x[b, c, gy*P + py, gx*P + px] * w[o, c, py, px]
Tensor conv_reference(const Tensor& x, const Tensor& w, const Tensor& bias) {
  int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  int64_t O = w.size(0), P = w.size(2), Gh = H / P, Gw = W / P;
  std::vector<double> xv = x.to_double_vector(), wv = w.to_double_vector();
  std::vector<double> bv = bias.defined() ? bias.to_double_vector() : std::vector<double>(O, 0.0);
  std::vector<double> out(static_cast<size_t>(B * O * Gh * Gw));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t gy = 0; gy < Gh; ++gy)
        for (int64_t gx = 0; gx < Gw; ++gx) {
          double acc = bv[o];
          for (int64_t c = 0; c < C; ++c)
            for (int64_t py = 0; py < P; ++py)
              for (int64_t px = 0; px < P; ++px)
                acc += xv[((b * C + c) * H + gy * P + py) * W + gx * P + px] *
                       wv[((o * C + c) * P + py) * P + px];
          out[((b * O + o) * Gh + gy) * Gw + gx] = acc;
        }
  return Tensor::from_vector(out, {B, O, Gh, Gw}, DType::f64);
}

}  // namespace

TEST(OpsConv, ForwardMatchesDirectConvolution) {
  Generator gen(41);
  for (DType dt : {DType::f32, DType::f64}) {
    double tol = dt == DType::f64 ? 1e-12 : 3e-5;
    Tensor x = gen.randn({2, 3, 8, 12}, dt), w = gen.randn({5, 3, 4, 4}, dt);
    Tensor b = gen.randn({5}, dt);
    Tensor y = conv2d_patch(x, w, b);
    EXPECT_EQ(y.shape(), Shape({2, 5, 2, 3}));
    EXPECT_EQ(y.dtype(), dt);
    expect_close(y, conv_reference(x, w, b), tol, tol, "with bias");
    expect_close(conv2d_patch(x, w), conv_reference(x, w, Tensor()), tol, tol, "no bias");
    Tensor w1 = gen.randn({4, 3, 1, 1}, dt);  // P = 1: a per-pixel linear map
    expect_close(conv2d_patch(x, w1, Tensor()), conv_reference(x, w1, Tensor()), tol, tol, "P=1");
    Tensor wfull = gen.randn({2, 3, 8, 8}, dt);  // one patch covering the image
    Tensor xsq = gen.randn({1, 3, 8, 8}, dt);
    expect_close(conv2d_patch(xsq, wfull), conv_reference(xsq, wfull, Tensor()), tol, tol,
                 "single patch");
    Tensor xs = gen.randn({2, 8, 12, 3}, dt).permute({0, 3, 1, 2});  // channels-last storage
    ASSERT_FALSE(xs.is_contiguous());
    expect_close(conv2d_patch(xs, w, b), conv_reference(xs, w, b), tol, tol, "strided x");
  }
}

TEST(OpsConv, GradientsMatchFiniteDifferences) {
  Generator gen(42);
  Tensor x = gen.randn({2, 2, 4, 6}, DType::f64).set_requires_grad(true);
  Tensor w = gen.randn({3, 2, 2, 2}, DType::f64).set_requires_grad(true);
  Tensor b = gen.randn({3}, DType::f64).set_requires_grad(true);
  expect_gradients_match(
      [](const std::vector<Tensor>& in) { return conv2d_patch(in[0], in[1], in[2]); }, {x, w, b});
  expect_gradients_match([](const std::vector<Tensor>& in) { return conv2d_patch(in[0], in[1]); },
                         {x, w});
}

TEST(OpsConv, FrozenWeightGetsNoGradient) {
  Generator gen(43);
  Tensor x = gen.randn({2, 2, 4, 4}, DType::f64).set_requires_grad(true);
  Tensor w = gen.randn({3, 2, 2, 2}, DType::f64);
  expect_gradients_match([](const std::vector<Tensor>& in) { return conv2d_patch(in[0], in[1]); },
                         {x, w});
  EXPECT_FALSE(w.grad().defined());
  Tensor xf = gen.randn({2, 2, 4, 4}, DType::f64);  // frozen image, trained weight
  Tensor wt = gen.randn({3, 2, 2, 2}, DType::f64).set_requires_grad(true);
  expect_gradients_match([](const std::vector<Tensor>& in) { return conv2d_patch(in[0], in[1]); },
                         {xf, wt});
  EXPECT_FALSE(xf.grad().defined());
  Tensor y = conv2d_patch(xf, w);  // nothing trains: no node
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(tape_size(), 0u);
}

TEST(OpsConv, HalfInputsReturnTheirDtype) {
  Generator gen(44);
  for (DType dt : {DType::f16, DType::bf16}) {
    Tensor x = gen.randn({1, 3, 4, 4}).to(dt), w = gen.randn({2, 3, 2, 2}, DType::f32, 0.5).to(dt);
    Tensor y = conv2d_patch(x, w);
    EXPECT_EQ(y.dtype(), dt);
    double rtol = dt == DType::f16 ? 1e-3 : 8e-3;
    expect_close(y, conv_reference(x, w, Tensor()), rtol, 1e-2, "half conv");
  }
}

TEST(OpsConv, ThreadCountInvariance) {
  // The patch permutation and the bias gradient are engine loops split by rows / channels: they
  // must be bit-identical. The GEMMs are OpenBLAS's: checked to agree to f32 rounding.
  Generator gen(45);
  Tensor x = gen.randn({4, 3, 64, 64}).set_requires_grad(true);  // large enough for threads
  Tensor w = gen.randn({16, 3, 4, 4}).set_requires_grad(true);
  Tensor b = gen.randn({16}).set_requires_grad(true);
  Tensor gout = gen.randn({4, 16, 16, 16});
  int saved = num_threads();
  std::vector<Tensor> y(2), dx(2), dw(2), db(2);
  for (int k = 0; k < 2; ++k) {
    set_num_threads(k + 1);
    x.zero_grad();
    w.zero_grad();
    b.zero_grad();
    y[k] = conv2d_patch(x, w, b);
    y[k].backward(gout);
    dx[k] = x.grad();
    dw[k] = w.grad();
    db[k] = b.grad();
  }
  set_num_threads(saved);
  EXPECT_EQ(db[0].to_double_vector(), db[1].to_double_vector());
  expect_close(y[1], y[0], 1e-5, 1e-5, "output");
  expect_close(dx[1], dx[0], 1e-5, 1e-5, "dx");
  expect_close(dw[1], dw[0], 1e-5, 1e-5, "dw");
}

TEST(OpsConv, ArgumentErrors) {
  Tensor w = Tensor::ones({5, 3, 4, 4});
  EXPECT_THROW(conv2d_patch(Tensor::ones({1, 3, 10, 8}), w), Error);  // H not a multiple of P
  EXPECT_THROW(conv2d_patch(Tensor::ones({1, 3, 8, 10}), w), Error);  // W not a multiple of P
  EXPECT_THROW(conv2d_patch(Tensor::ones({1, 2, 8, 8}), w), Error);   // Cin mismatch
  EXPECT_THROW(conv2d_patch(Tensor::ones({3, 8, 8}), w), Error);      // x not 4-D
  EXPECT_THROW(conv2d_patch(Tensor::ones({1, 3, 8, 8}), Tensor::ones({5, 3, 4, 2})), Error);
  EXPECT_THROW(conv2d_patch(Tensor::ones({1, 3, 8, 8}), w, Tensor::ones({4})), Error);  // bias
  EXPECT_THROW(conv2d_patch(Tensor::ones({1, 3, 8, 8}, DType::f64), w), Error);         // dtype
  try {
    conv2d_patch(Tensor::ones({1, 3, 10, 8}), w);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("conv2d_patch"), std::string::npos) << m;
    EXPECT_NE(m.find("multiple"), std::string::npos) << m;
  }
}

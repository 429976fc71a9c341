/*
 * test_ops_norm.cpp — layer_norm, add_layer_norm, l2_normalize, softmax and log_softmax: forward
 * against naive references written here, backward against f64 finite differences, argument
 * errors, 16-bit inputs, and bit-identical results for 1 and 2 threads. add_layer_norm equals add
 * then layer_norm and returns the residual sum; its gradients flow through both outputs.
 */
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "base/parallel.h"
#include "tests/test_util.h"

using namespace tgpt;
using tgpt::test::expect_close;
using tgpt::test::expect_gradients_match;

namespace {

// Naive LayerNorm over the last dim in double; w/b may be empty (no affine part).
Tensor layernorm_reference(const Tensor& x, const std::vector<double>& w,
                           const std::vector<double>& b, double eps) {
  std::vector<double> v = x.to_double_vector();
  int64_t C = x.shape().back(), N = x.numel() / C;
  std::vector<double> out(v.size());
  for (int64_t n = 0; n < N; ++n) {
    double m = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) m += v[n * C + c];
    m /= C;
    for (int64_t c = 0; c < C; ++c) var += (v[n * C + c] - m) * (v[n * C + c] - m);
    var /= C;
    for (int64_t c = 0; c < C; ++c) {
      double y = (v[n * C + c] - m) / std::sqrt(var + eps);
      if (!w.empty()) y *= w[c];
      if (!b.empty()) y += b[c];
      out[n * C + c] = y;
    }
  }
  return Tensor::from_vector(out, x.shape(), DType::f64);
}

Tensor l2_normalize_reference(const Tensor& x, double eps) {
  std::vector<double> v = x.to_double_vector();
  int64_t C = x.shape().back(), N = x.numel() / C;
  for (int64_t n = 0; n < N; ++n) {
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += v[n * C + c] * v[n * C + c];
    double d = std::max(std::sqrt(s), eps);
    for (int64_t c = 0; c < C; ++c) v[n * C + c] /= d;
  }
  return Tensor::from_vector(v, x.shape(), DType::f64);
}

Tensor softmax_reference(const Tensor& x, bool log) {
  std::vector<double> v = x.to_double_vector();
  int64_t C = x.shape().back(), N = x.numel() / C;
  for (int64_t n = 0; n < N; ++n) {
    double mx = -INFINITY, s = 0;
    for (int64_t c = 0; c < C; ++c) mx = std::max(mx, v[n * C + c]);
    for (int64_t c = 0; c < C; ++c) s += std::exp(v[n * C + c] - mx);
    for (int64_t c = 0; c < C; ++c)
      v[n * C + c] = log ? v[n * C + c] - mx - std::log(s) : std::exp(v[n * C + c] - mx) / s;
  }
  return Tensor::from_vector(v, x.shape(), DType::f64);
}

// Runs f with 1 and with 2 threads and expects bit-identical outputs and input gradients.
void expect_thread_invariant(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                             std::vector<Tensor> inputs) {
  int saved = num_threads();
  std::vector<std::vector<double>> results[2];
  for (int k = 0; k < 2; ++k) {
    set_num_threads(k + 1);
    for (Tensor& t : inputs)
      if (t.requires_grad()) t.zero_grad();
    Tensor out = f(inputs);
    results[k].push_back(out.to_double_vector());
    tgpt::test::weighted_sum(out).backward();
    for (Tensor& t : inputs)
      if (t.requires_grad()) results[k].push_back(t.grad().to_double_vector());
  }
  set_num_threads(saved);
  ASSERT_EQ(results[0].size(), results[1].size());
  for (size_t i = 0; i < results[0].size(); ++i)
    EXPECT_TRUE(results[0][i] == results[1][i])
        << "result " << i << " differs between 1 and 2 threads";
}

}  // namespace

TEST(LayerNorm, ForwardMatchesReference) {
  Generator gen(11);
  for (DType dt : {DType::f64, DType::f32}) {
    Tensor x = gen.randn({3, 5, 24}, dt, 2.0);
    x = add(x, 3.0);  // a non-zero mean
    Tensor w = gen.randn({24}, dt), b = gen.randn({24}, dt);
    double tol = dt == DType::f64 ? 1e-12 : 1e-6;
    Tensor y = layer_norm(x, w, b, 1e-5);
    EXPECT_EQ(y.dtype(), dt);
    expect_close(y, layernorm_reference(x, w.to_double_vector(), b.to_double_vector(), 1e-5), tol,
                 tol, "affine");
    expect_close(layer_norm(x, Tensor(), Tensor(), 1e-3), layernorm_reference(x, {}, {}, 1e-3), tol,
                 tol, "no affine");
    expect_close(layer_norm(x, w, Tensor()), layernorm_reference(x, w.to_double_vector(), {}, 1e-5),
                 tol, tol, "weight only");
  }
}

TEST(LayerNorm, NonContiguousInput) {
  Generator gen(12);
  Tensor x = gen.randn({6, 4, 3}, DType::f64).transpose(0, 2);  // [3, 4, 6], strided
  Tensor w = gen.randn({6}, DType::f64), b = gen.randn({6}, DType::f64);
  expect_close(layer_norm(x, w, b),
               layernorm_reference(x, w.to_double_vector(), b.to_double_vector(), 1e-5), 1e-12,
               1e-12);
}

TEST(LayerNorm, Gradients) {
  Generator gen(13);
  Tensor x = gen.randn({2, 3, 8}, DType::f64).set_requires_grad(true);
  Tensor w = gen.randn({8}, DType::f64).set_requires_grad(true);
  Tensor b = gen.randn({8}, DType::f64).set_requires_grad(true);
  auto f = [](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2], 1e-5); };
  expect_gradients_match(f, {x, w, b});
  // Frozen weight and bias: only x gets a gradient.
  Tensor wf = w.detach(), bf = b.detach();
  expect_gradients_match(f, {x, wf, bf});
  EXPECT_FALSE(wf.grad().defined());
  EXPECT_FALSE(bf.grad().defined());
  // Only the affine parameters need a gradient.
  Tensor xf = x.detach();
  expect_gradients_match(f, {xf, w, b});
  EXPECT_FALSE(xf.grad().defined());
  // No affine part.
  expect_gradients_match(
      [](const std::vector<Tensor>& in) { return layer_norm(in[0], Tensor(), Tensor(), 1e-3); },
      {x});
}

TEST(LayerNorm, Errors) {
  Tensor x = Tensor::ones({2, 4});
  EXPECT_THROW(layer_norm(x, Tensor::ones({3}), Tensor()), Error);              // wrong C
  EXPECT_THROW(layer_norm(x, Tensor(), Tensor::ones({4, 1})), Error);           // not 1-D
  EXPECT_THROW(layer_norm(x, Tensor::ones({4}, DType::f64), Tensor()), Error);  // dtype mismatch
  EXPECT_THROW(layer_norm(Tensor::ones({2, 4}, DType::i32), Tensor(), Tensor()), Error);
  EXPECT_THROW(layer_norm(Tensor::ones({}), Tensor(), Tensor()), Error);      // 0-d
  EXPECT_THROW(layer_norm(Tensor::ones({2, 0}), Tensor(), Tensor()), Error);  // empty rows
  EXPECT_THROW(layer_norm(x, Tensor(), Tensor(), -1.0), Error);
  EXPECT_THROW(layer_norm(Tensor(), Tensor(), Tensor()), Error);
  try {
    layer_norm(x, Tensor::ones({3}), Tensor());
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer_norm"), std::string::npos) << e.what();
  }
}

TEST(LayerNorm, HalfInputsComputedInF32) {
  Generator gen(14);
  Tensor x = gen.randn({4, 16});
  Tensor w = gen.randn({16}), b = gen.randn({16});
  for (DType dt : {DType::bf16, DType::f16}) {
    Tensor xh = x.to(dt);
    Tensor y = layer_norm(xh, w, b);  // half x with f32 parameters, as in CLIP
    EXPECT_EQ(y.dtype(), dt);
    Tensor ref = layer_norm(xh.to(DType::f32), w, b).to(dt);
    EXPECT_EQ(y.to_double_vector(), ref.to_double_vector());
  }
  Tensor xr = x.to(DType::bf16).to(DType::f32).set_requires_grad(true);
  Tensor y = layer_norm(xr.to(DType::bf16), w.to(DType::bf16), b.to(DType::bf16));
  sum(y).backward();
  EXPECT_TRUE(xr.grad().defined());
}

TEST(LayerNorm, ThreadCountInvariant) {
  Generator gen(15);
  Tensor x = gen.randn({64, 96}, DType::f32).set_requires_grad(true);
  Tensor w = gen.randn({96}).set_requires_grad(true), b = gen.randn({96}).set_requires_grad(true);
  expect_thread_invariant(
      [](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2]); }, {x, w, b});
}

TEST(L2Normalize, ForwardMatchesReference) {
  Generator gen(21);
  Tensor x = gen.randn({4, 3, 10}, DType::f64);
  expect_close(l2_normalize(x), l2_normalize_reference(x, 1e-12), 1e-12, 1e-14);
  Tensor xf = gen.randn({5, 33});
  expect_close(l2_normalize(xf), l2_normalize_reference(xf, 1e-12), 1e-6, 1e-7);
  // A zero row stays zero; a row with norm below eps is divided by eps.
  Tensor z = Tensor::from_vector({0, 0, 0, 0.03, 0.04, 0}, {2, 3}, DType::f64);
  expect_close(l2_normalize(z, 0.1),
               Tensor::from_vector({0, 0, 0, 0.3, 0.4, 0}, {2, 3}, DType::f64), 1e-12, 1e-15);
}

TEST(L2Normalize, Gradients) {
  Generator gen(22);
  Tensor x = gen.randn({3, 7}, DType::f64).set_requires_grad(true);
  expect_gradients_match([](const std::vector<Tensor>& in) { return l2_normalize(in[0]); }, {x});
  // Rows with norm above and below eps (the clamped branch).
  Tensor y =
      Tensor::from_vector({0.3, -0.2, 0.1, 1.0, 2.0, -0.5, 0.01, 0.02, -0.03}, {3, 3}, DType::f64)
          .set_requires_grad(true);
  expect_gradients_match([](const std::vector<Tensor>& in) { return l2_normalize(in[0], 0.5); },
                         {y});
}

// A one-element row normalises to ±1 whatever x is, so its gradient is exactly 0: the backward
// cancels the radial part exactly (y = ±1), also where ||x|| equals eps (n = eps, the gradient
// still passes through the norm). Below eps the norm is clamped to the constant eps and the
// gradient is dout / eps, as in PyTorch.
TEST(L2Normalize, OneElementRowGradientIsExactlyZero) {
  for (DType dt : {DType::f32, DType::f64}) {
    const double eps = 0.5;
    // rows: above eps (several magnitudes and signs), equal to eps, below eps
    Tensor x = Tensor::from_vector({3.0, -0.7, 1234.5, -0.5000001, 0.5, -0.5, 0.25}, {7, 1}, dt)
                   .set_requires_grad(true);
    Tensor g = Tensor::from_vector({0.3, -1.7, 2.5, 0.9, -0.4, 1.1, 0.8}, {7, 1}, dt);
    sum(mul(l2_normalize(x, eps), g)).backward();
    std::vector<double> dx = x.grad().to_double_vector();
    for (int i = 0; i < 6; ++i) EXPECT_EQ(dx[i], 0.0) << dtype_name(dt) << " row " << i;
    EXPECT_NEAR(dx[6], 0.8 / eps, dt == DType::f64 ? 1e-15 : 1e-6) << dtype_name(dt);
  }
}

TEST(L2Normalize, ErrorsAndThreads) {
  EXPECT_THROW(l2_normalize(Tensor::ones({3}, DType::i64)), Error);
  EXPECT_THROW(l2_normalize(Tensor::ones({})), Error);
  EXPECT_THROW(l2_normalize(Tensor::ones({3}), -1.0), Error);
  Generator gen(23);
  Tensor x = gen.randn({80, 64}).set_requires_grad(true);
  expect_thread_invariant([](const std::vector<Tensor>& in) { return l2_normalize(in[0]); }, {x});
}

TEST(Softmax, ForwardMatchesReference) {
  Generator gen(31);
  for (bool log : {false, true}) {
    Tensor x = gen.randn({2, 3, 9}, DType::f64, 3.0);
    Tensor y = log ? log_softmax(x) : softmax(x);
    expect_close(y, softmax_reference(x, log), 1e-12, 1e-14, log ? "log_softmax" : "softmax");
    Tensor xf = gen.randn({4, 50}, DType::f32, 3.0);
    Tensor yf = log ? log_softmax(xf) : softmax(xf);
    expect_close(yf, softmax_reference(xf, log), 1e-6, 1e-7, "f32");
    // Stable for large logits (max subtracted).
    Tensor big = add(x, 1000.0);
    Tensor yb = log ? log_softmax(big) : softmax(big);
    expect_close(yb, softmax_reference(big, log), 1e-9, 1e-12, "large logits");
  }
  // Rows sum to one; -inf entries get probability 0.
  Tensor m = Tensor::from_vector({1, -INFINITY, 2, 0.5}, {1, 4}, DType::f64);
  std::vector<double> p = softmax(m).to_double_vector();
  EXPECT_EQ(p[1], 0.0);
  EXPECT_NEAR(p[0] + p[2] + p[3], 1.0, 1e-15);
}

TEST(Softmax, Gradients) {
  Generator gen(32);
  Tensor x = gen.randn({3, 2, 6}, DType::f64).set_requires_grad(true);
  expect_gradients_match([](const std::vector<Tensor>& in) { return softmax(in[0]); }, {x});
  expect_gradients_match([](const std::vector<Tensor>& in) { return log_softmax(in[0]); }, {x});
  Tensor xt = gen.randn({6, 4}, DType::f64).set_requires_grad(true);
  expect_gradients_match(
      [](const std::vector<Tensor>& in) { return softmax(in[0].transpose(0, 1)); }, {xt});
}

TEST(Softmax, ErrorsHalfAndThreads) {
  EXPECT_THROW(softmax(Tensor::ones({3}, DType::i32)), Error);
  EXPECT_THROW(log_softmax(Tensor::ones({})), Error);
  EXPECT_THROW(softmax(Tensor()), Error);
  Generator gen(33);
  Tensor x = gen.randn({8, 20});
  Tensor yh = softmax(x.to(DType::bf16));
  EXPECT_EQ(yh.dtype(), DType::bf16);
  EXPECT_EQ(yh.to_double_vector(),
            softmax(x.to(DType::bf16).to(DType::f32)).to(DType::bf16).to_double_vector());
  Tensor xl = gen.randn({70, 100}).set_requires_grad(true);
  expect_thread_invariant([](const std::vector<Tensor>& in) { return softmax(in[0]); }, {xl});
  expect_thread_invariant([](const std::vector<Tensor>& in) { return log_softmax(in[0]); }, {xl});
}

// ---- add_layer_norm ----------------------------------------------------------------------------

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

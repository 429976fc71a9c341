/*
 * test_ops_activation.cpp — relu, gelu (exact erf) and quick_gelu: forward against
 * per-element formulas, gradients against finite differences in f64, f16/bf16, bit-identical
 * results for 1 and 2 threads, and argument errors.
 */
#include <gtest/gtest.h>

#include <cmath>

#include "engine/ops.h"
#include "base/parallel.h"
#include "engine/random.h"
#include "tests/test_util.h"

using namespace tgpt;
using tgpt::test::expect_close;
using tgpt::test::expect_gradients_match;

namespace {

double relu_ref(double v) {
  return v > 0 ? v : 0;
}
double gelu_ref(double v) {
  return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
}
double quick_gelu_ref(double v) {
  return v / (1 + std::exp(-1.702 * v));
}

Tensor map_reference(const Tensor& x, double (*f)(double)) {
  std::vector<double> v = x.to_double_vector();
  for (double& e : v) e = f(e);
  return Tensor::from_vector(v, x.shape(), DType::f64);
}

struct ActCase {
  const char* name;
  Tensor (*op)(const Tensor&);
  double (*ref)(double);
};

const ActCase kActs[] = {
    {"relu", relu, relu_ref}, {"gelu", gelu, gelu_ref}, {"quick_gelu", quick_gelu, quick_gelu_ref}};

// randn values pushed away from 0 by at least 1e-3 (relu's kink) and spread to [-6, 6].
Tensor away_from_zero(Generator& gen, const Shape& s, DType dt) {
  std::vector<double> v = gen.randn(s, DType::f64, 2.0).to_double_vector();
  for (double& e : v) {
    e = std::max(-6.0, std::min(6.0, e));
    if (std::abs(e) < 1e-3) e = e < 0 ? -1e-3 : 1e-3;
  }
  return Tensor::from_vector(v, s, dt);
}

}  // namespace

TEST(OpsActivation, ForwardMatchesFormula) {
  Generator gen(21);
  for (const ActCase& a : kActs) {
    for (DType dt : {DType::f32, DType::f64}) {
      double tol = dt == DType::f64 ? 1e-14 : 1e-6;
      Tensor x = gen.randn({3, 7, 5}, dt, 3.0);
      Tensor y = a.op(x);
      EXPECT_EQ(y.dtype(), dt);
      EXPECT_EQ(y.shape(), x.shape());
      expect_close(y, map_reference(x, a.ref), tol, tol, a.name);
      Tensor xt = x.transpose(0, 2);  // non-contiguous view
      expect_close(a.op(xt), map_reference(xt, a.ref), tol, tol, a.name);
    }
    // extremes: large |x| saturates without NaN
    Tensor big = Tensor::from_vector({-100, -30, 0, 30, 100}, {5}, DType::f32);
    expect_close(a.op(big), map_reference(big, a.ref), 1e-6, 1e-6, a.name);
  }
}

TEST(OpsActivation, GradientsMatchFiniteDifferences) {
  Generator gen(22);
  for (const ActCase& a : kActs) {
    SCOPED_TRACE(a.name);
    Tensor x = away_from_zero(gen, {4, 6}, DType::f64).set_requires_grad(true);
    auto op = a.op;
    expect_gradients_match([op](const std::vector<Tensor>& in) { return op(in[0]); }, {x});
    // through a strided view
    Tensor xb = away_from_zero(gen, {6, 4}, DType::f64).set_requires_grad(true);
    expect_gradients_match(
        [op](const std::vector<Tensor>& in) { return op(in[0].transpose(0, 1)); }, {xb});
  }
}

TEST(OpsActivation, HalfInputsReturnTheirDtype) {
  Generator gen(23);
  for (const ActCase& a : kActs) {
    for (DType dt : {DType::f16, DType::bf16}) {
      Tensor x = gen.randn({64}, DType::f32, 3.0).to(dt);
      Tensor y = a.op(x);
      EXPECT_EQ(y.dtype(), dt) << a.name;
      double rtol = dt == DType::f16 ? 1e-3 : 8e-3;
      expect_close(y, map_reference(x, a.ref), rtol, 1e-3, a.name);
    }
  }
}

TEST(OpsActivation, BitIdenticalForOneAndTwoThreads) {
  Generator gen(24);
  Tensor x = gen.randn({100003}, DType::f32, 3.0).set_requires_grad(true);
  Tensor t = gen.randn({100003}, DType::f32);
  Tensor gout = gen.randn({100003}, DType::f32);
  int saved = num_threads();
  for (const ActCase& a : kActs) {
    std::vector<std::vector<double>> y(2), dx(2);
    for (int k = 0; k < 2; ++k) {
      set_num_threads(k + 1);
      x.zero_grad();
      Tensor out = a.op(x);
      out.backward(gout);
      y[k] = out.to_double_vector();
      dx[k] = x.grad().to_double_vector();
    }
    EXPECT_EQ(y[0], y[1]) << a.name;
    EXPECT_EQ(dx[0], dx[1]) << a.name;
  }
  std::vector<double> loss(2);
  std::vector<std::vector<double>> gx(2);
  for (int k = 0; k < 2; ++k) {
    set_num_threads(k + 1);
    x.zero_grad();
    Tensor l = mse_loss(x, t);
    l.backward();
    loss[k] = l.item();
    gx[k] = x.grad().to_double_vector();
  }
  set_num_threads(saved);
  EXPECT_EQ(loss[0], loss[1]);
  EXPECT_EQ(gx[0], gx[1]);
}

TEST(OpsActivation, ArgumentErrors) {
  for (const ActCase& a : kActs) {
    EXPECT_THROW(a.op(Tensor::ones({3}, DType::i32)), Error) << a.name;
    EXPECT_THROW(a.op(Tensor()), Error) << a.name;
  }
}

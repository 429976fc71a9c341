/*
 * test_linear_probe.cpp — the linear probe (train/linear_probe.h): the L-BFGS fit against
 * PyTorch's L-BFGS optimum in f64 (tests/golden/gen_linear_probe.py; the minimiser is unique, so
 * weights, biases and the objective must agree to solver precision), the zero-sum bias, a
 * separable problem classified perfectly, determinism, and the errors.
 */
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <numeric>

#include "base/error.h"
#include "engine/safetensors.h"
#include "tests/test_util.h"
#include "train/linear_probe.h"

using namespace tgpt;
using namespace tgpt::test;

namespace {

std::vector<int64_t> to_labels(const Tensor& t) {
  std::vector<int64_t> out;
  for (double v : t.to_double_vector()) out.push_back(static_cast<int64_t>(v));
  return out;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

}  // namespace

TEST(LinearProbe, MatchesPyTorchLbfgsOptimum) {
  if (golden_dir().empty()) GTEST_SKIP() << "run via ctest, which writes the fixtures";
  const SafetensorsFile f = SafetensorsFile::open(golden_dir() + "/linear_probe.safetensors");
  for (const char* c : {"blobs", "small", "wide"}) {
    SCOPED_TRACE(c);
    const std::string p = std::string(c) + ".";
    const Tensor x = f.get(p + "x"), w_ref = f.get(p + "weight");
    const int64_t C = w_ref.size(0), E = w_ref.size(1);
    const LinearProbeModel m = fit_linear_probe(x.to_double_vector(), to_labels(f.get(p + "y")), E,
                                                C, f.get(p + "l2").item(), 2000, 1e-11);
    EXPECT_LE(m.grad_max, 1e-11);
    // Both solvers stop at a vanishing gradient of a strongly convex problem (in W; b on the
    // zero-sum plane): the parameters agree to well below 1e-7, the objective to 1e-12.
    const double obj = f.get(p + "objective").item();
    EXPECT_NEAR(m.objective, obj, 1e-12 * std::max(1.0, std::abs(obj)));
    EXPECT_LE(max_abs_diff(m.weight, w_ref.to_double_vector()), 1e-7);
    EXPECT_LE(max_abs_diff(m.bias, f.get(p + "bias").to_double_vector()), 1e-7);
  }
}

TEST(LinearProbe, SeparableDataZeroSumBiasAndDeterminism) {
  // Two well separated classes of 2-D points on the unit circle, plus a third one.
  std::vector<double> x;
  std::vector<int64_t> y;
  for (int i = 0; i < 30; ++i) {
    const int c = i % 3;
    const double a = 2.0 * M_PI * c / 3.0 + 0.2 * std::sin(1.7 * i);
    x.push_back(std::cos(a));
    x.push_back(std::sin(a));
    y.push_back(c);
  }
  const LinearProbeModel m = fit_linear_probe(x, y, 2, 3, 1e-3);
  EXPECT_LE(m.grad_max, 1e-7);
  EXPECT_NEAR(std::accumulate(m.bias.begin(), m.bias.end(), 0.0), 0.0, 1e-12);
  const std::vector<double> z = linear_probe_logits(m, x);
  for (size_t n = 0; n < y.size(); ++n) {
    const double* row = z.data() + n * 3;
    EXPECT_EQ(std::max_element(row, row + 3) - row, y[n]) << "row " << n;
  }
  const LinearProbeModel again = fit_linear_probe(x, y, 2, 3, 1e-3);
  EXPECT_EQ(again.weight, m.weight);
  EXPECT_EQ(again.bias, m.bias);
  // A larger penalty gives smaller weights.
  const LinearProbeModel strong = fit_linear_probe(x, y, 2, 3, 1.0);
  double n1 = 0, n2 = 0;
  for (double v : m.weight) n1 += v * v;
  for (double v : strong.weight) n2 += v * v;
  EXPECT_LT(n2, n1);
}

TEST(LinearProbe, BadInputIsAnError) {
  const std::vector<double> x = {1, 0, 0, 1};
  EXPECT_THROW(fit_linear_probe({}, {}, 2, 2, 1e-2), Error);                  // no rows
  EXPECT_THROW(fit_linear_probe(x, {0}, 2, 2, 1e-2), Error);                  // shape mismatch
  EXPECT_THROW(fit_linear_probe(x, {0, 1}, 2, 1, 1e-2), Error);               // one class
  EXPECT_THROW(fit_linear_probe(x, {0, 2}, 2, 2, 1e-2), Error);               // label out of range
  EXPECT_THROW(fit_linear_probe(x, {0, 1}, 2, 2, 0.0), Error);                // no penalty
  EXPECT_THROW(fit_linear_probe({1, NAN, 0, 1}, {0, 1}, 2, 2, 1e-2), Error);  // NaN feature
  const LinearProbeModel m = fit_linear_probe(x, {0, 1}, 2, 2, 1e-2);
  EXPECT_THROW(linear_probe_logits(m, {1, 2, 3}), Error);
}

/*
 * test_util.h — shared helpers for the unit tests: closeness checks, finite-difference gradient
 * checks in f64, and access to golden fixtures and shared data.
 */
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "base/error.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"

namespace tgpt::test {

// The message of the tgpt::Error that f throws (a test failure, and "", when it throws none).
inline std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a tgpt::Error";
  return "";
}

// stmt throws a tgpt::Error whose message contains text.
#define EXPECT_ERROR(stmt, text)                                       \
  do {                                                                 \
    const std::string m_ = ::tgpt::test::error_message([&] { stmt; }); \
    EXPECT_NE(m_.find(text), std::string::npos) << "message: " << m_;  \
  } while (0)

// Max |a-b| / (|b| + floor) over all elements; shapes must match.
inline double max_rel_error(const Tensor& a, const Tensor& b, double floor = 1e-12) {
  EXPECT_EQ(a.shape(), b.shape()) << a.str() << " vs " << b.str();
  std::vector<double> va = a.to_double_vector(), vb = b.to_double_vector();
  double m = 0;
  for (size_t i = 0; i < va.size() && i < vb.size(); ++i)
    m = std::max(m, std::abs(va[i] - vb[i]) / (std::abs(vb[i]) + floor));
  return m;
}

inline double max_abs_error(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape()) << a.str() << " vs " << b.str();
  std::vector<double> va = a.to_double_vector(), vb = b.to_double_vector();
  double m = 0;
  for (size_t i = 0; i < va.size() && i < vb.size(); ++i) m = std::max(m, std::abs(va[i] - vb[i]));
  return m;
}

// max|a - ref| / max|ref|: the error of a tensor as a whole, relative to its largest element
// (used by the golden tests).
inline double rel_error_to_max(const Tensor& a, const Tensor& ref) {
  EXPECT_EQ(a.shape(), ref.shape()) << a.str() << " vs " << ref.str();
  std::vector<double> va = a.to_double_vector(), vr = ref.to_double_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < va.size() && i < vr.size(); ++i) {
    num = std::max(num, std::abs(va[i] - vr[i]));
    den = std::max(den, std::abs(vr[i]));
  }
  return num / std::max(den, 1e-30);
}

// Expects |a - b| <= atol + rtol * |b| elementwise.
inline void expect_close(const Tensor& a, const Tensor& b, double rtol, double atol,
                         const std::string& what = "") {
  ASSERT_EQ(a.shape(), b.shape()) << what << ": " << a.str() << " vs " << b.str();
  std::vector<double> va = a.to_double_vector(), vb = b.to_double_vector();
  int bad = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    if (!(std::abs(va[i] - vb[i]) <= atol + rtol * std::abs(vb[i]))) {
      if (++bad <= 5)
        ADD_FAILURE() << what << ": element " << i << ": " << va[i] << " vs expected " << vb[i];
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << va.size() << " elements differ";
}

// Reduces an op's output to a scalar with fixed random weights, so every output element matters.
inline Tensor weighted_sum(const Tensor& out, uint64_t seed = 1234) {
  Generator g(seed);
  Tensor w = g.randn(out.shape(), out.dtype());
  return sum(mul(out, w));
}

// Compares the autograd gradients of every input with requires_grad against central finite
// differences of weighted_sum(f(inputs)). Inputs should be f64.
inline void expect_gradients_match(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                   std::vector<Tensor> inputs, double eps = 1e-6,
                                   double tol = 1e-6) {
  for (Tensor& t : inputs)
    if (t.requires_grad()) t.zero_grad();
  Tensor loss = weighted_sum(f(inputs));
  loss.backward();
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    Tensor g = x.grad();
    ASSERT_TRUE(g.defined()) << "input " << k << " got no gradient";
    ASSERT_EQ(g.shape(), x.shape());
    std::vector<double> ga = g.to_double_vector();
    ASSERT_EQ(x.dtype(), DType::f64) << "finite differences need f64 inputs";
    double* p = x.data<double>();
    NoGradGuard ng;
    for (int64_t i = 0; i < x.numel(); ++i) {
      double orig = p[i];
      p[i] = orig + eps;
      double lp = weighted_sum(f(inputs)).item();
      p[i] = orig - eps;
      double lm = weighted_sum(f(inputs)).item();
      p[i] = orig;
      double num = (lp - lm) / (2 * eps);
      double err = std::abs(num - ga[i]) / std::max(1.0, std::abs(num));
      EXPECT_LE(err, tol) << "input " << k << " element " << i << ": analytic " << ga[i]
                          << " numeric " << num;
      if (err > tol) return;
    }
  }
}

// Directory where ctest's golden_fixtures step wrote fixtures (env TGPT_GOLDEN_DIR).
inline std::string golden_dir() {
  const char* d = std::getenv("TGPT_GOLDEN_DIR");
  return d ? d : "";
}

// ../shared relative to the source tree (env TGPT_SHARED_DIR overrides).
inline std::string shared_dir() {
  if (const char* d = std::getenv("TGPT_SHARED_DIR")) return d;
#ifdef TGPT_TEST_SOURCE_DIR
  return std::string(TGPT_TEST_SOURCE_DIR) + "/../shared";
#else
  const char* s = std::getenv("TGPT_SOURCE_DIR");
  return std::string(s ? s : ".") + "/../shared";
#endif
}

}  // namespace tgpt::test

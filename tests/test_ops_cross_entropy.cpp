/*
 * test_ops_cross_entropy.cpp — cross_entropy: forward against a naive reference of PyTorch's formula
 * (label smoothing, ignore_index, reduction 'mean'), backward against f64 finite differences,
 * the all-ignored NaN case, argument errors, and bit-identical results for 1 and 2 threads.
 */
#include <gtest/gtest.h>

#include <cmath>

#include "base/parallel.h"
#include "tests/test_util.h"

using namespace tgpt;
using tgpt::test::expect_gradients_match;

namespace {

// mean over rows with target != ignore of (1-ls)(-log p[t]) + ls/V sum_c(-log p[c]), in double.
double cross_entropy_reference(const Tensor& logits, const std::vector<int64_t>& target, double ls,
                               int64_t ignore) {
  std::vector<double> x = logits.to_double_vector();
  int64_t N = logits.size(0), V = logits.size(1);
  double total = 0;
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) {
    if (target[n] == ignore) continue;
    double mx = -INFINITY, z = 0;
    for (int64_t c = 0; c < V; ++c) mx = std::max(mx, x[n * V + c]);
    for (int64_t c = 0; c < V; ++c) z += std::exp(x[n * V + c] - mx);
    auto neg_log_p = [&](int64_t c) { return -(x[n * V + c] - mx - std::log(z)); };
    double smooth = 0;
    for (int64_t c = 0; c < V; ++c) smooth += neg_log_p(c);
    total += (1 - ls) * neg_log_p(target[n]) + ls / V * smooth;
    ++count;
  }
  return total / count;  // NaN when every row is ignored
}

Tensor targets(const std::vector<int64_t>& t, DType dt = DType::i64) {
  return Tensor::from_vector(std::vector<double>(t.begin(), t.end()),
                             {static_cast<int64_t>(t.size())}, dt);
}

}  // namespace

TEST(CrossEntropy, ForwardMatchesReference) {
  Generator gen(51);
  std::vector<int64_t> t = {3, -100, 0, 6, 2, -100};
  for (DType dt : {DType::f64, DType::f32}) {
    Tensor logits = gen.randn({6, 7}, dt, 2.0);
    double tol = dt == DType::f64 ? 1e-13 : 1e-6;
    for (double ls : {0.0, 0.1, 1.0}) {
      double ref = cross_entropy_reference(logits, t, ls, -100);
      Tensor loss = cross_entropy(logits, targets(t), ls);
      EXPECT_EQ(loss.dim(), 0);
      EXPECT_EQ(loss.dtype(), dt);
      EXPECT_NEAR(loss.item(), ref, tol * std::abs(ref)) << "ls " << ls;
      EXPECT_EQ(cross_entropy(logits, targets(t, DType::i32), ls).item(), loss.item());
    }
  }
  // A non-default ignore_index that is also a valid class.
  Tensor logits = gen.randn({4, 5}, DType::f64);
  std::vector<int64_t> t2 = {1, 0, 4, 0};
  EXPECT_NEAR(cross_entropy(logits, targets(t2), 0.2, 0).item(),
              cross_entropy_reference(logits, t2, 0.2, 0), 1e-13);
  // Large logits stay finite (logsumexp is max-subtracted).
  Tensor big = add(logits, 5000.0);
  EXPECT_NEAR(cross_entropy(big, targets(t2), 0.1).item(),
              cross_entropy_reference(logits, t2, 0.1, -100), 1e-9);
}

TEST(CrossEntropy, Gradients) {
  Generator gen(52);
  for (double ls : {0.0, 0.1}) {
    Tensor logits = gen.randn({6, 5}, DType::f64).set_requires_grad(true);
    Tensor t = targets({4, -100, 0, 2, -100, 1});
    expect_gradients_match(
        [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t, ls); }, {logits});
    // The ignored rows get exactly zero gradient.
    std::vector<double> g = logits.grad().to_double_vector();
    for (int64_t c = 0; c < 5; ++c) {
      EXPECT_EQ(g[1 * 5 + c], 0.0);
      EXPECT_EQ(g[4 * 5 + c], 0.0);
    }
    Tensor all = targets({0, 1, 2, 3, 4, 0});
    expect_gradients_match(
        [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], all, ls); }, {logits});
  }
}

TEST(CrossEntropy, AllRowsIgnoredGivesNaN) {
  Tensor logits = Tensor::ones({3, 4}).set_requires_grad(true);
  Tensor loss = cross_entropy(logits, targets({-100, -100, -100}), 0.1);
  EXPECT_TRUE(std::isnan(loss.item()));
  loss.backward();
  for (double g : logits.grad().to_double_vector()) EXPECT_EQ(g, 0.0);
}

TEST(CrossEntropy, Errors) {
  Tensor logits = Tensor::zeros({3, 4});
  EXPECT_THROW(cross_entropy(logits, targets({0, 4, 1})), Error);   // 4 >= V
  EXPECT_THROW(cross_entropy(logits, targets({0, -1, 1})), Error);  // negative, not ignored
  EXPECT_THROW(cross_entropy(logits, targets({0, 1})), Error);      // wrong N
  EXPECT_THROW(cross_entropy(logits, Tensor::zeros({3})), Error);   // float target
  EXPECT_THROW(cross_entropy(logits, Tensor::zeros({3, 1}, DType::i64)), Error);
  EXPECT_THROW(cross_entropy(Tensor::zeros({12}), targets({0})), Error);  // logits not 2-D
  EXPECT_THROW(cross_entropy(logits, targets({0, 1, 2}), -0.1), Error);
  EXPECT_THROW(cross_entropy(logits, targets({0, 1, 2}), 1.5), Error);
  EXPECT_THROW(cross_entropy(Tensor::zeros({3, 4}, DType::i32), targets({0, 1, 2})), Error);
  EXPECT_THROW(cross_entropy(logits, Tensor()), Error);
  try {
    cross_entropy(logits, targets({0, 7, 1}));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("cross_entropy"), std::string::npos) << m;
    EXPECT_NE(m.find("out of range"), std::string::npos) << m;
  }
}

TEST(CrossEntropy, HalfLogitsComputedInF32) {
  Generator gen(53);
  Tensor logits = gen.randn({5, 9}).to(DType::bf16);
  Tensor t = targets({1, 2, 3, -100, 8});
  Tensor loss = cross_entropy(logits, t, 0.1);
  EXPECT_EQ(loss.dtype(), DType::bf16);
  EXPECT_EQ(loss.item(), cross_entropy(logits.to(DType::f32), t, 0.1).to(DType::bf16).item());
}

TEST(CrossEntropy, ThreadCountInvariant) {
  Generator gen(54);
  Tensor logits = gen.randn({64, 300}).set_requires_grad(true);
  Tensor t = gen.randint({64}, 0, 300);
  int saved = num_threads();
  double loss[2];
  std::vector<double> grad[2];
  for (int k = 0; k < 2; ++k) {
    set_num_threads(k + 1);
    logits.zero_grad();
    Tensor l = cross_entropy(logits, t, 0.1);
    loss[k] = l.item();
    l.backward();
    grad[k] = logits.grad().to_double_vector();
  }
  set_num_threads(saved);
  EXPECT_EQ(loss[0], loss[1]);
  EXPECT_TRUE(grad[0] == grad[1]);
}

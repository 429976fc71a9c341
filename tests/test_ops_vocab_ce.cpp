/*
 * test_ops_vocab_ce.cpp — vocab_cross_entropy on the CPU: loss and hidden gradient against
 * matmul + cross_entropy (f64 exact to rounding, f32 close) for chunk sizes that do and do not
 * divide V, with label smoothing and ignored rows; f64 finite differences; every row ignored (NaN
 * loss, zero gradient); bf16 input; identical results for 1 and 2 threads; argument errors
 * (embedding requiring grad). Golden: against PyTorch 1.13 (tests/golden/gen_fused_loss.py).
 */
#include <gtest/gtest.h>

#include <cmath>

#include "base/parallel.h"
#include "tests/fused_loss_test_util.h"

using namespace tgpt;
using namespace tgpt::test;

namespace {

// Reference: the same loss composed from existing ops.
Tensor vocab_ce_reference(const Tensor& h, const Tensor& E, const Tensor& t, double ls,
                          int64_t ignore) {
  return cross_entropy(matmul(h, E.transpose(0, 1)), t, ls, ignore);
}

}  // namespace

// ---- vocab_cross_entropy -------------------------------------------------------------------

TEST(VocabCrossEntropy, MatchesMatmulPlusCrossEntropy) {
  Generator gen(7);
  const int64_t N = 9, W = 13, V = 50;
  for (DType dt : {DType::f64, DType::f32}) {
    Tensor h = gen.randn({N, W}, dt, 0.7).set_requires_grad(true);
    Tensor E = gen.randn({V, W}, dt, 0.5);
    for (double ls : {0.0, 0.1}) {
      Tensor t = make_targets(gen, N, V, {1, 6});
      Tensor ref_h = h.detach().clone().set_requires_grad(true);
      Tensor ref = vocab_ce_reference(ref_h, E, t, ls, -100);
      ref.backward();
      for (int64_t chunk : {int64_t(0), int64_t(1), int64_t(7), int64_t(16), V, int64_t(1000)}) {
        h.zero_grad();
        Tensor loss = vocab_cross_entropy(h, E, t, ls, -100, chunk);
        EXPECT_EQ(loss.dim(), 0);
        EXPECT_EQ(loss.dtype(), dt);
        loss.backward();
        const double tol = dt == DType::f64 ? 1e-13 : 2e-6;
        std::string what = std::string(dtype_name(dt)) + " ls " + std::to_string(ls) + " chunk " +
                           std::to_string(chunk);
        expect_close(loss, ref, tol, tol, what + " loss");
        expect_close(h.grad(), ref_h.grad(), tol, tol, what + " dhidden");
      }
    }
  }
}

TEST(VocabCrossEntropy, CustomIgnoreIndexAndI32Targets) {
  Generator gen(8);
  Tensor h = gen.randn({6, 5}, DType::f64).set_requires_grad(true);
  Tensor E = gen.randn({11, 5}, DType::f64);
  Tensor t = Tensor::from_vector({3, 7, 0, 10, 7, 2}, {6}, DType::i32);
  Tensor ref_h = h.detach().clone().set_requires_grad(true);
  Tensor ref = vocab_ce_reference(ref_h, E, t, 0.2, 7);
  ref.backward(Tensor::full({}, 1.5, DType::f64));
  Tensor loss = vocab_cross_entropy(h, E, t, 0.2, 7, 4);
  loss.backward(Tensor::full({}, 1.5, DType::f64));
  expect_close(loss, ref, 1e-13, 1e-13, "loss");
  expect_close(h.grad(), ref_h.grad(), 1e-13, 1e-13, "dhidden");
}

TEST(VocabCrossEntropy, GradientsFiniteDifferences) {
  Generator gen(9);
  Tensor E = gen.randn({23, 6}, DType::f64);
  Tensor t = make_targets(gen, 5, 23, {2});
  Tensor h = gen.randn({5, 6}, DType::f64).set_requires_grad(true);
  for (double ls : {0.0, 0.1})
    for (int64_t chunk : {int64_t(5), int64_t(23)})
      expect_gradients_match(
          [&](const std::vector<Tensor>& in) {
            return vocab_cross_entropy(in[0], E, t, ls, -100, chunk);
          },
          {h});
}

TEST(VocabCrossEntropy, LargeLogitsStayFinite) {
  // Logits around ±300: the online log-sum-exp must not overflow, and the running max must
  // rescale the accumulated gradient when a later chunk holds the largest logit.
  Generator gen(10);
  Tensor h = gen.randn({4, 8}, DType::f64, 10.0).set_requires_grad(true);
  Tensor E = gen.randn({40, 8}, DType::f64, 10.0);
  Tensor t = gen.randint({4}, 0, 40);
  Tensor ref_h = h.detach().clone().set_requires_grad(true);
  Tensor ref = vocab_ce_reference(ref_h, E, t, 0.1, -100);
  ref.backward();
  Tensor loss = vocab_cross_entropy(h, E, t, 0.1, -100, 3);
  loss.backward();
  EXPECT_TRUE(std::isfinite(loss.item()));
  expect_close(loss, ref, 1e-12, 1e-12, "loss");
  expect_close(h.grad(), ref_h.grad(), 1e-12, 1e-12, "dhidden");
}

TEST(VocabCrossEntropy, AllRowsIgnored) {
  Generator gen(11);
  Tensor h = gen.randn({3, 4}, DType::f64).set_requires_grad(true);
  Tensor E = gen.randn({10, 4}, DType::f64);
  Tensor t = Tensor::from_vector({-100, -100, -100}, {3}, DType::i64);
  Tensor loss = vocab_cross_entropy(h, E, t, 0.1);
  EXPECT_TRUE(std::isnan(loss.item()));
  loss.backward();
  for (double g : h.grad().to_double_vector()) EXPECT_TRUE(g == 0.0 || std::isnan(g));
}

TEST(VocabCrossEntropy, HalfInputsComputeInF32) {
  Generator gen(12);
  Tensor h = gen.randn({5, 16}, DType::f32).to(DType::bf16);
  Tensor E = gen.randn({70, 16}, DType::f32, 0.3).to(DType::bf16);
  Tensor t = make_targets(gen, 5, 70, {0});
  Tensor loss = vocab_cross_entropy(h, E, t, 0.1, -100, 32);
  EXPECT_EQ(loss.dtype(), DType::bf16);
  Tensor ref = vocab_ce_reference(h.to(DType::f32), E.to(DType::f32), t, 0.1, -100);
  expect_close(loss.to(DType::f32), ref, 1e-2, 0, "bf16 loss");
}

TEST(VocabCrossEntropy, SameResultForOneAndTwoThreads) {
  Generator gen(13);
  Tensor h = gen.randn({64, 32}, DType::f32).set_requires_grad(true);
  Tensor E = gen.randn({300, 32}, DType::f32, 0.3);
  Tensor t = make_targets(gen, 64, 300, {5, 9});
  std::vector<std::vector<double>> results;
  const int saved = num_threads();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    h.zero_grad();
    Tensor loss = vocab_cross_entropy(h, E, t, 0.1, -100, 128);
    loss.backward();
    std::vector<double> r = h.grad().to_double_vector();
    r.push_back(loss.item());
    results.push_back(r);
  }
  set_num_threads(saved);
  EXPECT_EQ(results[0], results[1]);
}

TEST(VocabCrossEntropy, Errors) {
  Generator gen(14);
  Tensor h = gen.randn({4, 6});
  Tensor E = gen.randn({20, 6});
  Tensor t = gen.randint({4}, 0, 20);
  Tensor E_trainable = E.clone().set_requires_grad(true);
  EXPECT_THROW(vocab_cross_entropy(h, E_trainable, t), Error);
  {
    NoGradGuard ng;  // no gradient is requested: a trainable embedding is fine
    EXPECT_NO_THROW(vocab_cross_entropy(h, E_trainable, t));
  }
  EXPECT_THROW(vocab_cross_entropy(h, gen.randn({20, 5}), t), Error);       // width mismatch
  EXPECT_THROW(vocab_cross_entropy(h.reshape({24}), E, t), Error);          // not 2-D
  EXPECT_THROW(vocab_cross_entropy(h, E.to(DType::f64), t), Error);         // dtype mismatch
  EXPECT_THROW(vocab_cross_entropy(h, E, gen.randint({3}, 0, 20)), Error);  // target length
  EXPECT_THROW(vocab_cross_entropy(h, E, Tensor::from_vector({0, 1, 20, 2}, {4}, DType::i64)),
               Error);                                               // target >= V
  EXPECT_THROW(vocab_cross_entropy(h, E, gen.randn({4})), Error);    // float target
  EXPECT_THROW(vocab_cross_entropy(h, E, t, 1.5), Error);            // smoothing
  EXPECT_THROW(vocab_cross_entropy(h, E, t, 0.0, -100, -1), Error);  // chunk
  EXPECT_THROW(vocab_cross_entropy(h, E, gen.randint({4}, 0, 20, DType::i32).to(DType::u8)), Error);
  try {
    vocab_cross_entropy(h, E_trainable, t);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not supported"), std::string::npos) << e.what();
  }
}

TEST_F(GoldenFusedLoss, VocabCrossEntropy) {
  for (auto [c, ls, ignore] : {std::tuple<const char*, double, int64_t>{"smooth", 0.1, -100},
                               std::tuple<const char*, double, int64_t>{"plain", 0.0, 7}}) {
    const std::string p = std::string("vocab.") + c;
    Tensor t = get(p + ".target");
    std::vector<Tensor> r[2];
    for (int k = 0; k < 2; ++k) {
      DType dt = k == 0 ? DType::f32 : DType::f64;
      Tensor E = get("vocab.embedding").to(dt);
      r[k] = value_and_grads(
          [&](const std::vector<Tensor>& in) {
            return vocab_cross_entropy(in[0], E, t, ls, ignore, 256);
          },
          {get("vocab.hidden").to(dt).set_requires_grad(true)}, 0.75);
    }
    check(r[0][0], r[1][0], p + ".loss");
    check(r[0][1], r[1][1], p + ".dhidden");
  }
}

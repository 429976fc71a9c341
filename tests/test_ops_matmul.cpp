/*
 * test_ops_matmul.cpp — linear and matmul: forward against naive loops (batched, shared 2-D b,
 * no bias, 1-row/1-col/K=1 edges, transposed and permuted views), gradients against finite
 * differences in f64, frozen operands, f16/bf16, thread counts and argument errors.
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

// out[..., o] = sum_i x[..., i] * w[o, i] + b[o], computed in double from the tensors' values.
Tensor linear_reference(const Tensor& x, const Tensor& w, const Tensor& b) {
  int64_t in = w.size(1), outf = w.size(0), rows = x.numel() / in;
  std::vector<double> xv = x.to_double_vector(), wv = w.to_double_vector();
  std::vector<double> bv = b.defined() ? b.to_double_vector() : std::vector<double>(outf, 0.0);
  std::vector<double> out(static_cast<size_t>(rows * outf));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < outf; ++o) {
      double acc = bv[o];
      for (int64_t i = 0; i < in; ++i) acc += xv[r * in + i] * wv[o * in + i];
      out[r * outf + o] = acc;
    }
  Shape s = x.shape();
  s[s.size() - 1] = outf;
  return Tensor::from_vector(out, s, DType::f64);
}

// a [..., M, K] @ b [..., K, N] or b [K, N], in double.
Tensor matmul_reference(const Tensor& a, const Tensor& b) {
  int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  int64_t batch = a.numel() / (M * K);
  bool shared = b.dim() == 2;
  std::vector<double> av = a.to_double_vector(), bv = b.to_double_vector();
  std::vector<double> out(static_cast<size_t>(batch * M * N));
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k)
          acc += av[(i * M + m) * K + k] * bv[(shared ? 0 : i * K * N) + k * N + n];
        out[(i * M + m) * N + n] = acc;
      }
  Shape s = a.shape();
  s[s.size() - 1] = N;
  return Tensor::from_vector(out, s, DType::f64);
}

double tol_for(DType dt) {
  return dt == DType::f64 ? 1e-12 : 2e-5;
}

}  // namespace

// ---- linear -------------------------------------------------------------------------------------

TEST(OpsLinear, ForwardMatchesNaiveLoop) {
  Generator gen(1);
  for (DType dt : {DType::f32, DType::f64}) {
    double tol = tol_for(dt);
    Tensor x = gen.randn({2, 3, 5}, dt), w = gen.randn({4, 5}, dt), b = gen.randn({4}, dt);
    expect_close(linear(x, w, b), linear_reference(x, w, b), tol, tol, "3-D x with bias");
    expect_close(linear(x, w), linear_reference(x, w, Tensor()), tol, tol, "no bias");
    Tensor x1 = gen.randn({1, 5}, dt);  // one row
    expect_close(linear(x1, w, b), linear_reference(x1, w, b), tol, tol, "one row");
    Tensor w1 = gen.randn({1, 5}, dt), b1 = gen.randn({1}, dt);  // one output column
    expect_close(linear(x, w1, b1), linear_reference(x, w1, b1), tol, tol, "one column");
    Tensor xin1 = gen.randn({3, 1}, dt), win1 = gen.randn({4, 1}, dt);  // in = 1
    expect_close(linear(xin1, win1, b), linear_reference(xin1, win1, b), tol, tol, "in = 1");
    Tensor xv = gen.randn({5}, dt);  // 1-D x
    Tensor yv = linear(xv, w, b);
    EXPECT_EQ(yv.shape(), Shape({4}));
    expect_close(yv, linear_reference(xv, w, b), tol, tol, "1-D x");
  }
}

TEST(OpsLinear, NonContiguousInputs) {
  Generator gen(2);
  Tensor xt = gen.randn({5, 6}).transpose(0, 1);  // [6, 5], strided
  Tensor wt = gen.randn({5, 4}).transpose(0, 1);  // [4, 5], the transpose of a contiguous [5, 4]
  Tensor b = gen.randn({8}).narrow(0, 2, 4);      // offset view
  ASSERT_FALSE(xt.is_contiguous());
  ASSERT_FALSE(wt.is_contiguous());
  expect_close(linear(xt, wt, b), linear_reference(xt, wt, b), 2e-5, 2e-5, "transposed views");
  Tensor wp = gen.randn({3, 4, 5}).select(1, 2).narrow(0, 0, 3);  // rows with a gap
  Tensor xp = gen.randn({2, 3, 5}).permute({1, 0, 2});
  expect_close(linear(xp, wp), linear_reference(xp, wp, Tensor()), 2e-5, 2e-5, "strided views");
}

TEST(OpsLinear, GradientsMatchFiniteDifferences) {
  Generator gen(3);
  Tensor x = gen.randn({2, 3, 5}, DType::f64).set_requires_grad(true);
  Tensor w = gen.randn({4, 5}, DType::f64).set_requires_grad(true);
  Tensor b = gen.randn({4}, DType::f64).set_requires_grad(true);
  expect_gradients_match([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); },
                         {x, w, b});
  expect_gradients_match([](const std::vector<Tensor>& in) { return linear(in[0], in[1]); },
                         {x, w});
  // weight given as a transposed view: the gemm transpose-flag path
  Tensor wt = gen.randn({5, 4}, DType::f64).set_requires_grad(true);
  expect_gradients_match(
      [](const std::vector<Tensor>& in) { return linear(in[0], in[1].transpose(0, 1), in[2]); },
      {x, wt, b});
  // one row, one output
  Tensor x1 = gen.randn({1, 5}, DType::f64).set_requires_grad(true);
  Tensor w1 = gen.randn({1, 5}, DType::f64).set_requires_grad(true);
  Tensor b1 = gen.randn({1}, DType::f64).set_requires_grad(true);
  expect_gradients_match([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); },
                         {x1, w1, b1});
}

TEST(OpsLinear, FrozenWeightGetsNoGradient) {
  Generator gen(4);
  Tensor x = gen.randn({3, 5}, DType::f64).set_requires_grad(true);
  Tensor w = gen.randn({4, 5}, DType::f64);  // frozen
  Tensor b = gen.randn({4}, DType::f64).set_requires_grad(true);
  expect_gradients_match([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); },
                         {x, w, b});
  EXPECT_FALSE(w.grad().defined());
  // everything frozen: no node is recorded
  Tensor y = linear(x.detach(), w, b.detach());
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(tape_size(), 0u);
  // only the weight trains (x frozen): x gets no gradient, w does
  Tensor xf = gen.randn({3, 5}, DType::f64);
  Tensor wt = gen.randn({4, 5}, DType::f64).set_requires_grad(true);
  expect_gradients_match([](const std::vector<Tensor>& in) { return linear(in[0], in[1]); },
                         {xf, wt});
  EXPECT_FALSE(xf.grad().defined());
}

TEST(OpsLinear, HalfInputsReturnTheirDtype) {
  Generator gen(5);
  for (DType dt : {DType::f16, DType::bf16}) {
    Tensor x = gen.randn({3, 8}).to(dt), w = gen.randn({4, 8}).to(dt), b = gen.randn({4}).to(dt);
    Tensor y = linear(x, w, b);
    EXPECT_EQ(y.dtype(), dt);
    // the f32 result on the same (rounded) values, rounded once to dt
    double rtol = dt == DType::f16 ? 1e-3 : 8e-3;
    expect_close(y, linear_reference(x, w, b), rtol, 1e-2, "half linear");
    Tensor xr = x.to(DType::f32).set_requires_grad(true);
    Tensor g = linear(xr.to(dt), w, b);
    sum(g).backward();
    EXPECT_EQ(xr.grad().dtype(), DType::f32);
  }
}

TEST(OpsLinear, ThreadCountInvariance) {
  // The GEMMs belong to OpenBLAS, whose blocking (and so summation order) depends on the thread
  // count, so for them we require agreement within the rigorous f32 dot-product rounding bound
  // |fl(x.y) - x.y| <= K u sum|x_i y_i| (u = 2^-24) for each thread count against an f64
  // reference; the engine's own loops (bias fill, bias-gradient column sums) are split by columns
  // and must be bit-identical.
  Generator gen(6);
  Tensor x = gen.randn({256, 64}).set_requires_grad(true);
  Tensor w = gen.randn({512, 64}).set_requires_grad(true);
  Tensor b = gen.randn({512}).set_requires_grad(true);
  Tensor gout = gen.randn({256, 512});
  int saved = num_threads();
  std::vector<Tensor> y(2), dx(2), dw(2), db(2);
  for (int k = 0; k < 2; ++k) {
    set_num_threads(k + 1);
    x.zero_grad();
    w.zero_grad();
    b.zero_grad();
    y[k] = linear(x, w, b);
    y[k].backward(gout);
    dx[k] = x.grad();
    dw[k] = w.grad();
    db[k] = b.grad();
  }
  set_num_threads(saved);
  EXPECT_EQ(db[0].to_double_vector(), db[1].to_double_vector());
  NoGradGuard ng;
  Tensor x64 = x.detach().to(DType::f64), w64 = w.detach().to(DType::f64);
  Tensor g64 = gout.to(DType::f64);
  auto abs64 = [](const Tensor& t) { return sqrt(mul(t, t)); };
  const double u = std::ldexp(1.0, -24);
  struct Case {
    const char* what;
    Tensor ref, mag;  // f64 product and the same product of absolute values
    int64_t K;
    std::vector<Tensor>* got;
  } cases[] = {
      {"output", matmul(x64, w64.transpose(0, 1)), matmul(abs64(x64), abs64(w64).transpose(0, 1)),
       64, &y},
      {"dx", matmul(g64, w64), matmul(abs64(g64), abs64(w64)), 512, &dx},
      {"dw", matmul(g64.transpose(0, 1), x64), matmul(abs64(g64).transpose(0, 1), abs64(x64)), 256,
       &dw},
  };
  for (auto& c : cases) {
    std::vector<double> ref = c.ref.to_double_vector(), mag = c.mag.to_double_vector();
    if (std::string(c.what) == "output") {
      std::vector<double> bias = b.to_double_vector();
      for (size_t i = 0; i < ref.size(); ++i) ref[i] += bias[i % bias.size()];
    }
    for (int k = 0; k < 2; ++k) {
      std::vector<double> got = (*c.got)[k].to_double_vector();
      int bad = 0;
      for (size_t i = 0; i < ref.size(); ++i) {
        // +1 term for the bias add (one more rounding of the sum)
        double bound = static_cast<double>(c.K + 1) * u * (mag[i] + std::abs(ref[i]));
        if (std::abs(got[i] - ref[i]) > bound) ++bad;
      }
      EXPECT_EQ(bad, 0) << c.what << " with " << k + 1 << " thread(s)";
    }
  }
}

TEST(OpsLinear, ArgumentErrors) {
  Tensor x = Tensor::ones({3, 5}), w = Tensor::ones({4, 5}), b = Tensor::ones({4});
  EXPECT_THROW(linear(x, Tensor::ones({4, 6}), b), Error);              // in mismatch
  EXPECT_THROW(linear(x, Tensor::ones({5}), b), Error);                 // weight not 2-D
  EXPECT_THROW(linear(x, w, Tensor::ones({5})), Error);                 // bias extent
  EXPECT_THROW(linear(x, w, Tensor::ones({1, 4})), Error);              // bias rank
  EXPECT_THROW(linear(x, Tensor::ones({4, 5}, DType::f64), b), Error);  // dtype mismatch
  EXPECT_THROW(linear(Tensor::ones({3, 5}, DType::i32), w, b), Error);  // not floating
  EXPECT_THROW(linear(x, Tensor(), b), Error);                          // undefined weight
  try {
    linear(x, Tensor::ones({4, 6}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("linear"), std::string::npos) << e.what();
  }
}

// ---- matmul -------------------------------------------------------------------------------------

TEST(OpsMatmul, ForwardMatchesNaiveLoop) {
  Generator gen(11);
  for (DType dt : {DType::f32, DType::f64}) {
    double tol = tol_for(dt);
    auto check = [&](const Shape& sa, const Shape& sb, const char* what) {
      Tensor a = gen.randn(sa, dt), b = gen.randn(sb, dt);
      Tensor y = matmul(a, b);
      EXPECT_EQ(y.dtype(), dt);
      expect_close(y, matmul_reference(a, b), tol, tol, what);
    };
    check({4, 5}, {5, 6}, "2-D");
    check({3, 4, 5}, {3, 5, 6}, "batched");
    check({2, 3, 4, 5}, {2, 3, 5, 6}, "two batch dims");
    check({2, 3, 4, 5}, {5, 6}, "shared 2-D b");
    check({3, 1, 5}, {3, 5, 6}, "M = 1");
    check({3, 4, 5}, {3, 5, 1}, "N = 1");
    check({3, 4, 1}, {1, 6}, "K = 1, shared b");
    check({1, 1}, {1, 1}, "1x1");
  }
}

TEST(OpsMatmul, NonContiguousInputs) {
  Generator gen(12);
  Tensor at = gen.randn({3, 5, 4}).transpose(1, 2);     // [3, 4, 5], transpose of contiguous
  Tensor bt = gen.randn({3, 6, 5}).transpose(1, 2);     // [3, 5, 6]
  Tensor b2t = gen.randn({6, 5}).transpose(0, 1);       // [5, 6]
  Tensor ap = gen.randn({4, 3, 5}).permute({1, 0, 2});  // [3, 4, 5], needs a copy
  expect_close(matmul(at, bt), matmul_reference(at, bt), 2e-5, 2e-5, "both transposed");
  expect_close(matmul(at, b2t), matmul_reference(at, b2t), 2e-5, 2e-5, "a transposed, shared b");
  expect_close(matmul(ap, bt), matmul_reference(ap, bt), 2e-5, 2e-5, "permuted a");
  expect_close(matmul(ap, b2t), matmul_reference(ap, b2t), 2e-5, 2e-5, "permuted a, shared b");
}

TEST(OpsMatmul, GradientsMatchFiniteDifferences) {
  Generator gen(13);
  auto mm = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };
  auto rg = [&](const Shape& s) { return gen.randn(s, DType::f64).set_requires_grad(true); };
  expect_gradients_match(mm, {rg({4, 5}), rg({5, 3})});
  expect_gradients_match(mm, {rg({2, 3, 4}), rg({2, 4, 5})});
  expect_gradients_match(mm, {rg({2, 2, 3, 4}), rg({4, 5})});  // db summed over the batch
  expect_gradients_match(mm, {rg({3, 1, 4}), rg({3, 4, 1})});  // M = 1, N = 1
  // transposed views on either side (transpose-flag paths of the backward GEMMs)
  auto mm_t = [](const std::vector<Tensor>& in) {
    return matmul(in[0].transpose(-2, -1), in[1].transpose(-2, -1));
  };
  expect_gradients_match(mm_t, {rg({2, 4, 3}), rg({2, 5, 4})});
  expect_gradients_match(mm_t, {rg({2, 4, 3}), rg({5, 4})});  // a transposed, shared b
}

TEST(OpsMatmul, FrozenOperandGetsNoGradient) {
  Generator gen(14);
  Tensor a = gen.randn({2, 3, 4}, DType::f64).set_requires_grad(true);
  Tensor b = gen.randn({4, 5}, DType::f64);
  expect_gradients_match([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
                         {a, b});
  EXPECT_FALSE(b.grad().defined());
  Tensor a2 = gen.randn({2, 3, 4}, DType::f64);
  Tensor b2 = gen.randn({2, 4, 5}, DType::f64).set_requires_grad(true);
  expect_gradients_match([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
                         {a2, b2});
  EXPECT_FALSE(a2.grad().defined());
}

TEST(OpsMatmul, HalfInputsReturnTheirDtype) {
  Generator gen(15);
  for (DType dt : {DType::f16, DType::bf16}) {
    Tensor a = gen.randn({2, 3, 8}).to(dt), b = gen.randn({8, 4}).to(dt);
    Tensor y = matmul(a, b);
    EXPECT_EQ(y.dtype(), dt);
    double rtol = dt == DType::f16 ? 1e-3 : 8e-3;
    expect_close(y, matmul_reference(a, b), rtol, 1e-2, "half matmul");
  }
}

TEST(OpsMatmul, ArgumentErrors) {
  EXPECT_THROW(matmul(Tensor::ones({3, 4}), Tensor::ones({5, 6})), Error);        // inner dims
  EXPECT_THROW(matmul(Tensor::ones({2, 3, 4}), Tensor::ones({3, 4, 6})), Error);  // batch dims
  EXPECT_THROW(matmul(Tensor::ones({3, 4}), Tensor::ones({2, 4, 6})), Error);  // b batched, a not
  EXPECT_THROW(matmul(Tensor::ones({4}), Tensor::ones({4, 6})), Error);        // 1-D a
  EXPECT_THROW(matmul(Tensor::ones({3, 4}), Tensor::ones({4, 6}, DType::f64)), Error);
  EXPECT_THROW(matmul(Tensor::ones({3, 4}, DType::i64), Tensor::ones({4, 6}, DType::i64)), Error);
}

TEST(OpsMatmul, ZeroExtents) {
  // K = 0: the product is all zeros (linear: just the bias); M = 0 or N = 0: empty results.
  Tensor a = Tensor::empty({2, 3, 0}, DType::f64).set_requires_grad(true);
  Tensor b = Tensor::empty({0, 4}, DType::f64).set_requires_grad(true);
  Tensor y = matmul(a, b);
  EXPECT_EQ(y.shape(), Shape({2, 3, 4}));
  EXPECT_EQ(y.to_double_vector(), std::vector<double>(24, 0.0));
  sum(y).backward();
  EXPECT_EQ(a.grad().shape(), a.shape());
  EXPECT_EQ(b.grad().shape(), b.shape());
  Tensor bias = Tensor::from_vector({1, 2}, {2}, DType::f64);
  EXPECT_EQ(linear(Tensor::empty({3, 0}, DType::f64), Tensor::empty({2, 0}, DType::f64), bias)
                .to_double_vector(),
            std::vector<double>({1, 2, 1, 2, 1, 2}));
  Tensor a0 = Tensor::empty({0, 5}).set_requires_grad(true);
  Tensor b0 = Generator(16).randn({5, 3}).set_requires_grad(true);
  Tensor y0 = matmul(a0, b0);
  EXPECT_EQ(y0.shape(), Shape({0, 3}));
  sum(y0).backward();
  EXPECT_EQ(b0.grad().to_double_vector(), std::vector<double>(15, 0.0));  // no rows: zero grad
}

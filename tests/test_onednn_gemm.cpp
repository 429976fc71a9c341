/*
 * test_onednn_gemm.cpp — the oneDNN GEMMs (kernels/cpu/onednn_gemm.h) and the backend choice
 * (kernels/cpu/matmul.h): f32 against an f64 loop for every transpose, leading dimension and
 * alpha/beta, exactly on bf16-representable quarters; thread-count invariance (bit-identical);
 * bf16 linear/matmul/conv forward and backward against f64 references within the bf16 bound;
 * TGPT_GEMM's values; the tools' --version and the self-test fallback.
 *
 * bf16 tolerance (stated, rigorous): inputs are bf16 values, products exact in f32, sums in f32,
 * one final rounding to bf16, so |got - ref| <= 2^-8 |ref| + (K + 1) 2^-24 sum|a_k b_k| against
 * the f64 product of the same bf16 values.
 */
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/parallel.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/onednn_gemm.h"
#include "kernels/matmul.h"
#include "tests/test_util.h"

using namespace tgpt;
namespace fs = std::filesystem;

namespace {

// Restores the GEMM backend at scope exit.
struct BackendGuard {
  cpu::GemmBackend saved = cpu::gemm_backend();
  explicit BackendGuard(cpu::GemmBackend b) { cpu::set_gemm_backend(b); }
  ~BackendGuard() { cpu::set_gemm_backend(saved); }
};

// C = alpha op(A) op(B) + beta C in double, and the same with |.| (for the rounding bound).
void reference_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                    const std::vector<double>& A, int64_t lda, const std::vector<double>& B,
                    int64_t ldb, double beta, const std::vector<double>& C0, int64_t ldc,
                    std::vector<double>* ref, std::vector<double>* mag) {
  ref->assign(C0.begin(), C0.end());
  mag->assign(C0.size(), 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0, acc_abs = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double a = ta ? A[k * lda + m] : A[m * lda + k];
        const double b = tb ? B[n * ldb + k] : B[k * ldb + n];
        acc += a * b;
        acc_abs += std::abs(a * b);
      }
      (*ref)[m * ldc + n] = alpha * acc + beta * C0[m * ldc + n];
      (*mag)[m * ldc + n] = std::abs(alpha) * acc_abs + std::abs(beta * C0[m * ldc + n]);
    }
}

bool near_bf16(double got, double ref, double mag, int64_t K) {
  return std::abs(got - ref) <= std::ldexp(std::abs(ref), -8) + (K + 1) * std::ldexp(mag, -24);
}

}  // namespace

TEST(GemmBackend, ParsesTgptGemm) {
  EXPECT_EQ(cpu::parse_gemm_backend(""), cpu::GemmBackend::Auto);
  EXPECT_EQ(cpu::parse_gemm_backend("auto"), cpu::GemmBackend::Auto);
  EXPECT_EQ(cpu::parse_gemm_backend("openblas"), cpu::GemmBackend::OpenBlas);
  EXPECT_EQ(cpu::parse_gemm_backend("onednn"), cpu::GemmBackend::OneDnn);
  EXPECT_ERROR(cpu::parse_gemm_backend("mkl"), "TGPT_GEMM=mkl is not a GEMM backend");
  EXPECT_ERROR(cpu::parse_gemm_backend("OneDNN"), "use auto, openblas or onednn");
  for (auto b : {cpu::GemmBackend::Auto, cpu::GemmBackend::OpenBlas, cpu::GemmBackend::OneDnn})
    EXPECT_EQ(cpu::parse_gemm_backend(cpu::gemm_backend_name(b)), b);
}

TEST(GemmBackend, OnednnOutsideParallelRegionsForAAsGiven) {
  EXPECT_TRUE(cpu::gemm_uses_onednn(cpu::GemmBackend::OneDnn, false, false));
  EXPECT_FALSE(cpu::gemm_uses_onednn(cpu::GemmBackend::OneDnn, true, false));
  EXPECT_FALSE(cpu::gemm_uses_onednn(cpu::GemmBackend::OneDnn, false, true));
  EXPECT_FALSE(cpu::gemm_uses_onednn(cpu::GemmBackend::Auto, false, false));
  EXPECT_FALSE(cpu::gemm_uses_onednn(cpu::GemmBackend::OpenBlas, false, false));
}

// f32 through oneDNN: every transpose combination, leading dimensions past the minimum,
// alpha/beta, small and blocked shapes, against an f64 loop within the f32 dot-product bound
// K u sum|a b| (+ the alpha/beta roundings).
TEST(OnednnGemm, F32MatchesReferenceForEveryLayout) {
  Generator gen(131);
  struct Shape3 {
    int64_t M, N, K;
  } shapes[] = {{1, 1, 1}, {7, 5, 3}, {64, 48, 80}, {131, 113, 96}, {300, 20, 257}};
  const float ab[][2] = {{1.f, 0.f}, {0.5f, -1.f}, {-1.25f, 1.f}};
  for (const auto& s : shapes)
    for (int t = 0; t < 4; ++t)
      for (const auto& sc : ab) {
        const bool ta = t & 1, tb = t & 2;
        const int64_t lda = (ta ? s.M : s.K) + 3, ldb = (tb ? s.K : s.N) + 5, ldc = s.N + 2;
        const int64_t a_rows = ta ? s.K : s.M, b_rows = tb ? s.N : s.K;
        std::vector<double> A = gen.randn({a_rows * lda}).to_double_vector();
        std::vector<double> B = gen.randn({b_rows * ldb}).to_double_vector();
        std::vector<double> C = gen.randn({s.M * ldc}).to_double_vector();
        std::vector<float> Af(A.begin(), A.end()), Bf(B.begin(), B.end()), Cf(C.begin(), C.end());
        const std::vector<float> C_before = Cf;
        cpu::gemm_onednn(ta, tb, s.M, s.N, s.K, sc[0], Af.data(), lda, Bf.data(), ldb, sc[1],
                         Cf.data(), ldc);
        std::vector<double> ref, mag;
        reference_gemm(ta, tb, s.M, s.N, s.K, sc[0], A, lda, B, ldb, sc[1], C, ldc, &ref, &mag);
        int bad = 0;
        for (int64_t m = 0; m < s.M; ++m) {
          for (int64_t n = 0; n < s.N; ++n) {
            const int64_t i = m * ldc + n;
            const double bound = (s.K + 2) * std::ldexp(mag[i] + std::abs(ref[i]), -24);
            if (std::abs(Cf[i] - ref[i]) > bound) ++bad;
          }
          for (int64_t n = s.N; n < ldc; ++n)  // padding past N is not written
            if (Cf[m * ldc + n] != C_before[m * ldc + n]) ++bad;
        }
        EXPECT_EQ(bad, 0) << s.M << "x" << s.N << "x" << s.K << " ta " << ta << " tb " << tb
                          << " alpha " << sc[0] << " beta " << sc[1];
      }
}

TEST(OnednnGemm, EmptyExtents) {
  std::vector<float> C = {1.f, 2.f, 3.f, 4.f};
  cpu::gemm_onednn(false, false, 2, 2, 0, 1.f, nullptr, 1, nullptr, 2, 0.5f, C.data(), 2);
  EXPECT_EQ(C, (std::vector<float>{0.5f, 1.f, 1.5f, 2.f}));  // K = 0: C = beta C
  cpu::gemm_onednn(false, false, 0, 2, 3, 1.f, nullptr, 3, nullptr, 2, 0.f, C.data(), 2);
  EXPECT_EQ(C, (std::vector<float>{0.5f, 1.f, 1.5f, 2.f}));  // M = 0: nothing
  std::vector<bf16> Cb = {f32_to_bf16(3.f)};
  cpu::gemm_bf16(false, false, 1, 1, 0, 1.f, nullptr, 1, nullptr, 1, 0.f, Cb.data(), 1);
  EXPECT_EQ(bf16_to_f32(Cb[0]), 0.f);
}

// Small integers and halves are exact in bf16, and their products and sums exact in f32: the
// bf16 GEMM then equals the f64 result exactly (f32 result), or that result rounded once to
// bf16 (bf16 result).
TEST(OnednnGemm, Bf16ExactOnRepresentableValues) {
  if (!cpu::onednn_native_bf16()) GTEST_SKIP() << "no bf16 dot products: " << cpu::onednn_isa();
  for (int t = 0; t < 4; ++t) {
    const bool ta = t & 1, tb = t & 2;
    const int64_t M = 37, N = 29, K = 70;
    const int64_t lda = ta ? M : K, ldb = tb ? K : N;
    std::vector<double> A(M * K), B(K * N), C(M * N);
    for (size_t i = 0; i < A.size(); ++i) A[i] = static_cast<double>(int(i * 7 % 11) - 5) * 0.5;
    for (size_t i = 0; i < B.size(); ++i) B[i] = static_cast<double>(int(i * 5 % 13) - 6);
    for (size_t i = 0; i < C.size(); ++i) C[i] = static_cast<double>(int(i % 9) - 4);
    std::vector<bf16> Ab, Bb, Cb;
    for (double v : A) Ab.push_back(f32_to_bf16(static_cast<float>(v)));
    for (double v : B) Bb.push_back(f32_to_bf16(static_cast<float>(v)));
    for (double v : C) Cb.push_back(f32_to_bf16(static_cast<float>(v)));
    std::vector<float> Cf(C.begin(), C.end());
    std::vector<double> ref, mag;
    reference_gemm(ta, tb, M, N, K, 0.5, A, lda, B, ldb, 1.0, C, N, &ref, &mag);
    cpu::gemm_bf16(ta, tb, M, N, K, 0.5f, Ab.data(), lda, Bb.data(), ldb, 1.f, Cf.data(), N);
    cpu::gemm_bf16(ta, tb, M, N, K, 0.5f, Ab.data(), lda, Bb.data(), ldb, 1.f, Cb.data(), N);
    for (size_t i = 0; i < ref.size(); ++i) {
      ASSERT_EQ(Cf[i], ref[i]) << "f32 result, element " << i << " ta " << ta << " tb " << tb;
      ASSERT_EQ(bf16_to_f32(Cb[i]), bf16_to_f32(f32_to_bf16(static_cast<float>(ref[i]))))
          << "bf16 result, element " << i << " ta " << ta << " tb " << tb;
    }
  }
}

// oneDNN blocks its work by the thread count. With TGPT_GEMM=onednn (oneDNN for A as given,
// OpenBLAS for a transposed A, whose K sum oneDNN may split between threads) linear's output and
// dx must be bit-identical for 1, 2 and 3 threads, in f32 and in bf16 (shapes of the small CLIP's
// and ViT-B's GEMMs, and a 1-row one), and so must bf16's dw (A copied row-major); and attention,
// whose per-head products run inside a parallel region (on OpenBLAS, even with one thread).
// f32 dw (gᵀ x, on OpenBLAS as before) is not: OpenBLAS's blocking depends on the thread count,
// so it is held to the f32 rounding bound against the 1-thread result (tests/test_ops_matmul.cpp
// holds it to the bound against f64).
TEST(OnednnGemm, ThreadCountInvariance) {
  BackendGuard onednn(cpu::GemmBackend::OneDnn);
  Generator gen(7);
  struct Case {
    int64_t rows, in, outf;
  } cases[] = {{8320, 64, 192},  {1040, 256, 64}, {8, 512, 512},
               {197, 768, 2304}, {77, 512, 49},   {1, 300, 70}};
  const int saved = num_threads();
  for (DType dt : {DType::f32, DType::bf16}) {
    if (dt == DType::bf16 && !kernels::cpu_bf16_gemm()) continue;
    for (const auto& c : cases) {
      Tensor x = gen.randn({c.rows, c.in}).to(dt).set_requires_grad(true);
      Tensor w = gen.randn({c.outf, c.in}).to(dt).set_requires_grad(true);
      Tensor b = gen.randn({c.outf}).to(dt).set_requires_grad(true);
      Tensor gout = gen.randn({c.rows, c.outf}).to(dt);
      std::vector<std::vector<double>> y, dx, dw;
      for (int threads = 1; threads <= 3; ++threads) {
        set_num_threads(threads);
        x.zero_grad();
        w.zero_grad();
        b.zero_grad();
        Tensor out = linear(x, w, b);
        out.backward(gout);
        y.push_back(out.to_double_vector());
        dx.push_back(x.grad().to_double_vector());
        dw.push_back(w.grad().to_double_vector());
      }
      set_num_threads(saved);
      std::vector<double> dw_mag;  // sum over rows of |g x|, for f32 dw's rounding bound
      if (dt == DType::f32) {
        NoGradGuard no_grad;
        Tensor g64 = gout.to(DType::f64), x64 = x.detach().to(DType::f64);
        dw_mag =
            matmul(sqrt(mul(g64, g64)).transpose(0, 1), sqrt(mul(x64, x64))).to_double_vector();
      }
      for (int k = 1; k < 3; ++k) {
        const std::string what = std::string(dtype_name(dt)) + " " + std::to_string(c.rows) + "x" +
                                 std::to_string(c.in) + "x" + std::to_string(c.outf) + ", " +
                                 std::to_string(k + 1) + " threads";
        EXPECT_EQ(y[0], y[k]) << "output, " << what;
        EXPECT_EQ(dx[0], dx[k]) << "dx, " << what;
        if (dt == DType::bf16) {
          EXPECT_EQ(dw[0], dw[k]) << "dw, " << what;
        } else {  // each within K u sum|g x| of the exact result, so of each other within 2x
          int bad = 0;
          for (size_t i = 0; i < dw[0].size(); ++i)
            if (std::abs(dw[0][i] - dw[k][i]) > 2.0 * c.rows * std::ldexp(dw_mag[i], -24)) ++bad;
          EXPECT_EQ(bad, 0) << "dw, " << what;
        }
      }
    }
  }
}

TEST(OnednnGemm, AttentionThreadCountInvariance) {
  BackendGuard onednn(cpu::GemmBackend::OneDnn);
  Generator gen(8);
  Tensor qkv = gen.randn({4, 65, 3 * 64}).set_requires_grad(true);
  Tensor g = gen.randn({4, 65, 64});
  const int saved = num_threads();
  std::vector<std::vector<double>> out, grad;
  for (int threads = 1; threads <= 3; ++threads) {
    set_num_threads(threads);
    qkv.zero_grad();
    Tensor o = attention(qkv, 2, false);
    o.backward(g);
    out.push_back(o.to_double_vector());
    grad.push_back(qkv.grad().to_double_vector());
  }
  set_num_threads(saved);
  for (int k = 1; k < 3; ++k) {
    EXPECT_EQ(out[0], out[k]) << k + 1 << " threads";
    EXPECT_EQ(grad[0], grad[k]) << k + 1 << " threads";
  }
}

// bf16 linear and matmul, forward and backward, against f64 products of the same bf16 values.
TEST(OnednnGemm, Bf16LinearAndMatmulWithinTheBf16Bound) {
  if (!kernels::cpu_bf16_gemm()) GTEST_SKIP() << "bf16 computed in f32 here";
  Generator gen(21);
  const int64_t rows = 96, in = 80, outf = 72;
  Tensor x = gen.randn({rows, in}).to(DType::bf16).set_requires_grad(true);
  Tensor w = gen.randn({outf, in}).to(DType::bf16).set_requires_grad(true);
  Tensor b = gen.randn({outf}).to(DType::bf16).set_requires_grad(true);
  Tensor gout = gen.randn({rows, outf}).to(DType::bf16);
  Tensor y = linear(x, w, b);
  EXPECT_EQ(y.dtype(), DType::bf16);
  y.backward(gout);
  EXPECT_EQ(x.grad().dtype(), DType::bf16);
  const std::vector<double> xv = x.to_double_vector(), wv = w.to_double_vector(),
                            bv = b.to_double_vector(), gv = gout.to_double_vector();
  auto check = [&](const char* what, const Tensor& got_t, bool ta, bool tb, int64_t M, int64_t N,
                   int64_t K, const std::vector<double>& A, int64_t lda,
                   const std::vector<double>& B, int64_t ldb, const std::vector<double>& C0) {
    std::vector<double> ref, mag, got = got_t.to_double_vector();
    reference_gemm(ta, tb, M, N, K, 1.0, A, lda, B, ldb, C0.empty() ? 0.0 : 1.0,
                   C0.empty() ? std::vector<double>(M * N, 0.0) : C0, N, &ref, &mag);
    int bad = 0;
    for (size_t i = 0; i < ref.size(); ++i)
      if (!near_bf16(got[i], ref[i], mag[i], K)) ++bad;
    EXPECT_EQ(bad, 0) << what;
  };
  std::vector<double> bias_rows(rows * outf);
  for (int64_t i = 0; i < rows * outf; ++i) bias_rows[i] = bv[i % outf];
  check("linear output", y, false, true, rows, outf, in, xv, in, wv, in, bias_rows);
  check("linear dx", x.grad(), false, false, rows, in, outf, gv, outf, wv, in, {});
  check("linear dw", w.grad(), true, false, outf, in, rows, gv, outf, xv, in, {});
  std::vector<double> db = b.grad().to_double_vector();
  for (int64_t o = 0; o < outf; ++o) {
    double ref = 0;
    for (int64_t r = 0; r < rows; ++r) ref += gv[r * outf + o];
    EXPECT_LE(std::abs(db[o] - ref), std::ldexp(std::abs(ref), -8)) << "dbias " << o;
  }

  // Batched matmul with a transposed view as b.
  Tensor a = gen.randn({3, 40, 56}).to(DType::bf16).set_requires_grad(true);
  Tensor bt = gen.randn({3, 24, 56}).to(DType::bf16).set_requires_grad(true);
  Tensor g2 = gen.randn({3, 40, 24}).to(DType::bf16);
  Tensor z = matmul(a, bt.transpose(1, 2));
  EXPECT_EQ(z.dtype(), DType::bf16);
  z.backward(g2);
  for (int64_t i = 0; i < 3; ++i) {
    const std::vector<double> av = a.select(0, i).to_double_vector(),
                              bv2 = bt.select(0, i).to_double_vector(),
                              gv2 = g2.select(0, i).to_double_vector();
    check("matmul output", z.select(0, i), false, true, 40, 24, 56, av, 56, bv2, 56, {});
    check("matmul da", a.grad().select(0, i), false, false, 40, 56, 24, gv2, 24, bv2, 56, {});
    check("matmul db", bt.grad().select(0, i).transpose(0, 1), true, false, 56, 24, 40, av, 56, gv2,
          24, {});
  }
}

// Exactness where it is possible: small integers through bf16 linear equal the f32 result.
TEST(OnednnGemm, Bf16LinearExactOnSmallIntegers) {
  Tensor x = Tensor::from_vector({1, -2, 3, 4, 0, -1, 2, 2}, {2, 4}, DType::f32);
  Tensor w = Tensor::from_vector({1, 1, 1, 1, -3, 2, 0, 5, 7, -1, 2, -2}, {3, 4}, DType::f32);
  Tensor b = Tensor::from_vector({0.5, -1, 2}, {3}, DType::f32);
  Tensor want = linear(x, w, b);
  Tensor got = linear(x.to(DType::bf16), w.to(DType::bf16), b.to(DType::bf16));
  EXPECT_EQ(got.to_double_vector(), want.to_double_vector());
}

// The patch convolution on bf16 tensors: against the f32 convolution of the same bf16 values.
TEST(OnednnGemm, Bf16PatchConvolution) {
  if (!kernels::cpu_bf16_gemm()) GTEST_SKIP() << "bf16 computed in f32 here";
  Generator gen(3);
  Tensor x = gen.randn({2, 3, 16, 16}).to(DType::bf16).set_requires_grad(true);
  Tensor w = gen.randn({8, 3, 4, 4}).to(DType::bf16).set_requires_grad(true);
  Tensor y = conv2d_patch(x, w);
  EXPECT_EQ(y.dtype(), DType::bf16);
  Tensor g = gen.randn(y.shape()).to(DType::bf16);
  y.backward(g);
  Tensor x32 = x.detach().to(DType::f32).set_requires_grad(true);
  Tensor w32 = w.detach().to(DType::f32).set_requires_grad(true);
  Tensor y32 = conv2d_patch(x32, w32);
  y32.backward(g.to(DType::f32));
  // One bf16 rounding of an f32 sum (2^-8 relative), plus both sides' f32 summation errors
  // (K <= 32 terms of randn products: far below 1e-4).
  test::expect_close(y.to(DType::f32), y32, 1.0 / 256, 1e-4, "bf16 conv output");
  test::expect_close(x.grad().to(DType::f32), x32.grad(), 1.0 / 256, 1e-4, "bf16 conv dx");
  test::expect_close(w.grad().to(DType::f32), w32.grad(), 1.0 / 256, 1e-4, "bf16 conv dw");
}

// With TGPT_GEMM=openblas (here: the backend set to OpenBLAS) bf16 is computed in f32: the result
// is the f32 linear rounded to bf16.
TEST(OnednnGemm, Bf16FallsBackToF32WithOpenblas) {
  BackendGuard openblas(cpu::GemmBackend::OpenBlas);
  EXPECT_FALSE(kernels::cpu_bf16_gemm());
  Generator gen(5);
  Tensor x = gen.randn({33, 40}).to(DType::bf16), w = gen.randn({20, 40}).to(DType::bf16);
  Tensor got = linear(x, w);
  EXPECT_EQ(got.dtype(), DType::bf16);
  Tensor want = linear(x.to(DType::f32), w.to(DType::f32)).to(DType::bf16);
  EXPECT_EQ(got.to_double_vector(), want.to_double_vector());
}

TEST(OnednnGemm, PrimitivesAreCached) {
  std::vector<float> A(17 * 19, 1.f), B(19 * 23, 1.f), C(17 * 23);
  cpu::gemm_onednn(false, false, 17, 23, 19, 1.f, A.data(), 19, B.data(), 23, 0.f, C.data(), 23);
  const int64_t n = cpu::onednn_cached_primitives();
  for (int i = 0; i < 3; ++i)
    cpu::gemm_onednn(false, false, 17, 23, 19, 1.f, A.data(), 19, B.data(), 23, 0.f, C.data(), 23);
  EXPECT_EQ(cpu::onednn_cached_primitives(), n);
  EXPECT_EQ(C[0], 19.f);
}

// ---- the tools ----------------------------------------------------------------------------------

namespace {

int run_tool(const fs::path& bin, const std::string& vars, std::string* out) {
  const fs::path log = fs::temp_directory_path() / ("tgpt_onednn_" + std::to_string(getpid()));
  const std::string cmd = "env -u TGPT_GEMM -u TGPT_TEST_FAIL_ONEDNN_SELF_TEST " + vars + " '" +
                          bin.string() + "' --version > '" + log.string() + "' 2>&1";
  const int st = std::system(cmd.c_str());
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  fs::remove(log);
  return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

}  // namespace

TEST(OnednnGemm, ToolsReportAndFallBack) {
  const fs::path bin = fs::read_symlink("/proc/self/exe").parent_path() / "tgpt-tokenize";
  if (!fs::exists(bin)) GTEST_SKIP() << "tgpt-tokenize not built next to the tests";
  std::string out;
  ASSERT_EQ(run_tool(bin, "", &out), 0) << out;
  EXPECT_NE(out.find("GEMM backend:   auto (f32, f64: OpenBLAS); bf16: "), std::string::npos)
      << out;
  EXPECT_NE(out.find("oneDNN:         " + cpu::onednn_version() + ", ISA " + cpu::onednn_isa()),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("oneDNN self-test: passed"), std::string::npos) << out;

  ASSERT_EQ(run_tool(bin, "TGPT_GEMM=openblas", &out), 0) << out;
  EXPECT_NE(out.find("GEMM backend:   openblas (f32, f64: OpenBLAS); bf16: computed in f32"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("oneDNN self-test: not run"), std::string::npos) << out;

  EXPECT_EQ(run_tool(bin, "TGPT_GEMM=blis", &out), 2) << out;
  EXPECT_NE(out.find("error: TGPT_GEMM=blis is not a GEMM backend"), std::string::npos) << out;

  ASSERT_EQ(run_tool(bin, "TGPT_GEMM=onednn", &out), 0) << out;
  EXPECT_NE(out.find("GEMM backend:   onednn (f32: oneDNN; OpenBLAS for a transposed A"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("oneDNN self-test: passed"), std::string::npos) << out;

  // oneDNN's f32 GEMMs fail the self-test: a warning, and OpenBLAS runs them.
  ASSERT_EQ(run_tool(bin, "TGPT_GEMM=onednn TGPT_TEST_FAIL_ONEDNN_SELF_TEST=f32", &out), 0) << out;
  EXPECT_NE(out.find("warning: oneDNN failed tgpt's GEMM self-test"), std::string::npos) << out;
  EXPECT_NE(out.find("GEMM backend:   openblas"), std::string::npos) << out;
  EXPECT_NE(out.find("oneDNN self-test: FAILED"), std::string::npos) << out;
  if (cpu::onednn_native_bf16()) {
    // Only bf16 fails: f32 stays on oneDNN, bf16 is computed in f32.
    ASSERT_EQ(run_tool(bin, "TGPT_GEMM=onednn TGPT_TEST_FAIL_ONEDNN_SELF_TEST=bf16", &out), 0)
        << out;
    EXPECT_NE(out.find("GEMM backend:   onednn (f32: oneDNN"), std::string::npos) << out;
    EXPECT_NE(out.find("bf16: computed in f32"), std::string::npos) << out;
  }
}

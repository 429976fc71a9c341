/*
 * matmul.cpp — CPU matrix products (matmul.h): the gemm wrappers and the backend choice, and the
 * matmul and linear kernels. f32 goes to OpenBLAS's cblas_sgemm or oneDNN
 * (kernels/cpu/onednn_gemm.h) by gemm_backend(); f64 to cblas_dgemm; bf16 to oneDNN's bf16 matmul.
 *
 * GEMMs are only ever called from the calling thread (never inside an OpenMP region, except the
 * per-head attention products, which stay on OpenBLAS); the engine's own loops (bias fill,
 * column sums, patch permutation) split work by independent rows or columns, so their results do
 * not depend on the thread count.
 */
#include "kernels/cpu/matmul.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/parallel.h"
#include "kernels/cpu/onednn_gemm.h"

namespace tgpt::cpu {

namespace {

CBLAS_TRANSPOSE trans_flag(bool t) {
  return t ? CblasTrans : CblasNoTrans;
}

// C = beta * C for an M x N block with leading dimension ldc (the K == 0 product).
template <typename T>
void scale_block(T* C, int64_t M, int64_t N, int64_t ldc, T beta) {
  for (int64_t r = 0; r < M; ++r)
    for (int64_t c = 0; c < N; ++c) C[r * ldc + c] = beta == T(0) ? T(0) : beta * C[r * ldc + c];
}

// Writes bias[c] into every row of out [rows, cols] (the gemm then accumulates with beta = 1).
template <typename T>
void fill_rows_with_bias(T* out, const T* bias, int64_t rows, int64_t cols) {
  if (cols == 0) return;
  parallel_for(
      rows, [&](int64_t r) { std::memcpy(out + r * cols, bias, sizeof(T) * cols); },
      rows * cols >= 16384 ? 2 : rows + 1);
}

// gemm_backend(): -1 until TGPT_GEMM is read, then a GemmBackend.
std::atomic<int> g_backend{-1};
std::atomic<bool> g_bf16_disabled{false};

}  // namespace

GemmBackend parse_gemm_backend(std::string_view value) {
  if (value.empty() || value == "auto") return GemmBackend::Auto;
  if (value == "openblas") return GemmBackend::OpenBlas;
  if (value == "onednn") return GemmBackend::OneDnn;
  TGPT_FAIL("TGPT_GEMM=", value, " is not a GEMM backend: use auto, openblas or onednn");
}

const char* gemm_backend_name(GemmBackend b) {
  switch (b) {
    case GemmBackend::OpenBlas: return "openblas";
    case GemmBackend::OneDnn: return "onednn";
    case GemmBackend::Auto: break;
  }
  return "auto";
}

GemmBackend gemm_backend() {
  int b = g_backend.load(std::memory_order_relaxed);
  if (b < 0) {
    const char* env = std::getenv("TGPT_GEMM");
    b = static_cast<int>(parse_gemm_backend(env ? env : ""));
    int expected = -1;
    if (!g_backend.compare_exchange_strong(expected, b)) b = expected;
  }
  return static_cast<GemmBackend>(b);
}

void set_gemm_backend(GemmBackend b) {
  g_backend.store(static_cast<int>(b));
}

bool gemm_uses_onednn(GemmBackend b, bool in_parallel_region, bool trans_a) {
  return b == GemmBackend::OneDnn && !in_parallel_region && !trans_a;
}

bool bf16_gemm_native() {
  static const bool native = onednn_native_bf16();
  return native && !g_bf16_disabled.load() && gemm_backend() != GemmBackend::OpenBlas;
}

void disable_bf16_gemm() {
  g_bf16_disabled.store(true);
}

int64_t gemm_max_extent() {
  return std::numeric_limits<blasint>::max();
}

void gemm_openblas(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                   int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_block(C, M, N, ldc, beta);
  cblas_sgemm(CblasRowMajor, trans_flag(trans_a), trans_flag(trans_b), static_cast<blasint>(M),
              static_cast<blasint>(N), static_cast<blasint>(K), alpha, A, static_cast<blasint>(lda),
              B, static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // omp_get_level, not omp_in_parallel: a region of one thread is inactive but still a region,
  // and the choice must not depend on the thread count.
  if (gemm_uses_onednn(gemm_backend(), omp_get_level() > 0, trans_a))
    gemm_onednn(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    gemm_openblas(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
          int64_t lda, const bf16* B, int64_t ldb, float beta, bf16* C, int64_t ldc) {
  if (!trans_a || M == 0 || N == 0 || K == 0)
    return gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  // oneDNN may split the K sum of a transposed A between threads (results would depend on the
  // thread count): give it A row-major instead. a [M, K] = the transpose of A [K, M].
  std::vector<bf16> a(static_cast<size_t>(M * K));
  parallel_for(
      M,
      [&](int64_t m) {
        for (int64_t k = 0; k < K; ++k) a[m * K + k] = A[k * lda + m];
      },
      M * K >= 32768 ? 2 : M + 1);
  gemm_bf16(false, trans_b, M, N, K, alpha, a.data(), K, B, ldb, beta, C, ldc);
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
          const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
          int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_block(C, M, N, ldc, beta);
  cblas_dgemm(CblasRowMajor, trans_flag(trans_a), trans_flag(trans_b), static_cast<blasint>(M),
              static_cast<blasint>(N), static_cast<blasint>(K), alpha, A, static_cast<blasint>(lda),
              B, static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
}

// ---- matmul -------------------------------------------------------------------------------------

template <typename T>
void matmul_forward_cpu(T* out, const T* a, const T* b, int64_t batch, int64_t M, int64_t K,
                        int64_t N, bool a_t, bool b_t, bool b_batched) {
  using S = GemmScalar<T>;
  int64_t lda = a_t ? M : K, ldb = b_t ? K : N;
  if (!b_batched && !a_t) {  // one GEMM: a viewed as [batch*M, K]
    gemm(false, b_t, batch * M, N, K, S(1), a, lda, b, ldb, S(0), out, N);
    return;
  }
  for (int64_t i = 0; i < batch; ++i)
    gemm(a_t, b_t, M, N, K, S(1), a + i * M * K, lda, b + (b_batched ? i * K * N : 0), ldb, S(0),
         out + i * M * N, N);
}

template <typename T>
void matmul_backward_cpu(T* da, T* db, const T* g, const T* a, const T* b, int64_t batch, int64_t M,
                         int64_t K, int64_t N, bool a_t, bool b_t, bool b_batched) {
  using S = GemmScalar<T>;
  int64_t lda = a_t ? M : K, ldb = b_t ? K : N;
  if (da) {  // da[M, K] = g[M, N] @ bᵀ; bᵀ is b's buffer itself when b_t
    if (!b_batched)
      gemm(false, !b_t, batch * M, K, N, S(1), g, N, b, ldb, S(0), da, K);
    else
      for (int64_t i = 0; i < batch; ++i)
        gemm(false, !b_t, M, K, N, S(1), g + i * M * N, N, b + i * K * N, ldb, S(0), da + i * M * K,
             K);
  }
  if (db) {  // db[K, N] = aᵀ[K, M] @ g[M, N]; aᵀ is a's buffer itself when a_t
    if (!b_batched && !a_t) {  // aᵀ [K, batch*M] @ g [batch*M, N] sums over the batch
      gemm(true, false, K, N, batch * M, S(1), a, lda, g, N, S(0), db, N);
    } else if (!b_batched && std::is_same_v<T, bf16>) {
      // Summed over the batch in f32 (one rounding to bf16 at the end).
      std::vector<float> db32(static_cast<size_t>(K * N), 0.f);
      for (int64_t i = 0; i < batch; ++i)
        gemm_bf16(false, false, K, N, M, 1.f, reinterpret_cast<const bf16*>(a) + i * M * K, lda,
                  reinterpret_cast<const bf16*>(g) + i * M * N, N, 1.f, db32.data(), N);
      for (int64_t i = 0; i < K * N; ++i) db[i] = from_double<T>(db32[i]);
    } else if (!b_batched) {
      for (int64_t i = 0; i < batch; ++i)
        gemm(!a_t, false, K, N, M, S(1), a + i * M * K, lda, g + i * M * N, N, i == 0 ? S(0) : S(1),
             db, N);
      if (batch == 0) std::fill(db, db + K * N, T{});  // the empty sum
    } else {
      for (int64_t i = 0; i < batch; ++i)
        gemm(!a_t, false, K, N, M, S(1), a + i * M * K, lda, g + i * M * N, N, S(0), db + i * K * N,
             N);
    }
  }
}

// ---- linear -------------------------------------------------------------------------------------

template <typename T>
void linear_forward_cpu(T* out, const T* x, const T* w, const T* bias, int64_t N, int64_t in,
                        int64_t outf, bool w_t) {
  using S = GemmScalar<T>;
  if (bias) fill_rows_with_bias(out, bias, N, outf);
  // x [N, in] @ wᵀ [in, out]: wᵀ is w's buffer itself when w_t.
  gemm(false, !w_t, N, outf, in, S(1), x, in, w, w_t ? outf : in, bias ? S(1) : S(0), out, outf);
}

template <typename T>
void linear_backward_cpu(T* dx, T* dw, T* dbias, const T* g, const T* x, const T* w, int64_t N,
                         int64_t in, int64_t outf, bool w_t) {
  using S = GemmScalar<T>;
  if (dx) gemm(false, w_t, N, in, outf, S(1), g, outf, w, w_t ? outf : in, S(0), dx, in);
  if (dw) gemm(true, false, outf, in, N, S(1), g, outf, x, in, S(0), dw, in);
  if (dbias) column_sum_cpu(dbias, g, N, outf);
}

template <typename T>
void column_sum_cpu(T* out, const T* g, int64_t rows, int64_t cols) {
  constexpr int64_t kCols = 256;
  int64_t chunks = (cols + kCols - 1) / kCols;
  parallel_for(
      chunks,
      [&](int64_t ch) {
        int64_t c0 = ch * kCols, c1 = std::min(cols, c0 + kCols);
        double acc[kCols] = {};
        for (int64_t r = 0; r < rows; ++r) {
          const T* row = g + r * cols;
          for (int64_t c = c0; c < c1; ++c) acc[c - c0] += as_double(row[c]);
        }
        for (int64_t c = c0; c < c1; ++c) out[c] = from_double<T>(acc[c - c0]);
      },
      rows * cols >= 32768 ? 2 : chunks + 1);
}

// ---- instantiations -----------------------------------------------------------------------------

#define TGPT_MATMUL_INSTANTIATE(T)                                                                 \
  template void matmul_forward_cpu<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t,  \
                                      bool, bool, bool);                                           \
  template void matmul_backward_cpu<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t,     \
                                       int64_t, int64_t, bool, bool, bool);                        \
  template void linear_forward_cpu<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, \
                                      bool);                                                       \
  template void linear_backward_cpu<T>(T*, T*, T*, const T*, const T*, const T*, int64_t, int64_t, \
                                       int64_t, bool);                                             \
  template void column_sum_cpu<T>(T*, const T*, int64_t, int64_t);

TGPT_MATMUL_INSTANTIATE(float)
TGPT_MATMUL_INSTANTIATE(double)
TGPT_MATMUL_INSTANTIATE(bf16)

#undef TGPT_MATMUL_INSTANTIATE

}  // namespace tgpt::cpu

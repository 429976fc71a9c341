/*
 * matmul.cpp — CPU matrix products through OpenBLAS (cblas_sgemm / cblas_dgemm): the gemm wrapper
 * and the matmul, linear and patch-convolution kernels declared in matmul.h.
 *
 * BLAS is only ever called from the calling thread (never inside an OpenMP region); the engine's
 * own loops (bias fill, column sums, patch permutation) split work by independent rows or
 * columns, so their results do not depend on the thread count.
 */
#include "kernels/cpu/matmul.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "base/parallel.h"

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

}  // namespace

int64_t gemm_max_extent() {
  return std::numeric_limits<blasint>::max();
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_block(C, M, N, ldc, beta);
  cblas_sgemm(CblasRowMajor, trans_flag(trans_a), trans_flag(trans_b), static_cast<blasint>(M),
              static_cast<blasint>(N), static_cast<blasint>(K), alpha, A, static_cast<blasint>(lda),
              B, static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
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
  int64_t lda = a_t ? M : K, ldb = b_t ? K : N;
  if (!b_batched && !a_t) {  // one GEMM: a viewed as [batch*M, K]
    gemm(false, b_t, batch * M, N, K, T(1), a, lda, b, ldb, T(0), out, N);
    return;
  }
  for (int64_t i = 0; i < batch; ++i)
    gemm(a_t, b_t, M, N, K, T(1), a + i * M * K, lda, b + (b_batched ? i * K * N : 0), ldb, T(0),
         out + i * M * N, N);
}

template <typename T>
void matmul_backward_cpu(T* da, T* db, const T* g, const T* a, const T* b, int64_t batch, int64_t M,
                         int64_t K, int64_t N, bool a_t, bool b_t, bool b_batched) {
  int64_t lda = a_t ? M : K, ldb = b_t ? K : N;
  if (da) {  // da[M, K] = g[M, N] @ bᵀ; bᵀ is b's buffer itself when b_t
    if (!b_batched)
      gemm(false, !b_t, batch * M, K, N, T(1), g, N, b, ldb, T(0), da, K);
    else
      for (int64_t i = 0; i < batch; ++i)
        gemm(false, !b_t, M, K, N, T(1), g + i * M * N, N, b + i * K * N, ldb, T(0), da + i * M * K,
             K);
  }
  if (db) {  // db[K, N] = aᵀ[K, M] @ g[M, N]; aᵀ is a's buffer itself when a_t
    if (!b_batched && !a_t) {  // aᵀ [K, batch*M] @ g [batch*M, N] sums over the batch
      gemm(true, false, K, N, batch * M, T(1), a, lda, g, N, T(0), db, N);
    } else if (!b_batched) {
      for (int64_t i = 0; i < batch; ++i)
        gemm(!a_t, false, K, N, M, T(1), a + i * M * K, lda, g + i * M * N, N, i == 0 ? T(0) : T(1),
             db, N);
      if (batch == 0) scale_block(db, K, N, N, T(0));
    } else {
      for (int64_t i = 0; i < batch; ++i)
        gemm(!a_t, false, K, N, M, T(1), a + i * M * K, lda, g + i * M * N, N, T(0), db + i * K * N,
             N);
    }
  }
}

// ---- linear -------------------------------------------------------------------------------------

template <typename T>
void linear_forward_cpu(T* out, const T* x, const T* w, const T* bias, int64_t N, int64_t in,
                        int64_t outf, bool w_t) {
  if (bias) fill_rows_with_bias(out, bias, N, outf);
  // x [N, in] @ wᵀ [in, out]: wᵀ is w's buffer itself when w_t.
  gemm(false, !w_t, N, outf, in, T(1), x, in, w, w_t ? outf : in, bias ? T(1) : T(0), out, outf);
}

template <typename T>
void linear_backward_cpu(T* dx, T* dw, T* dbias, const T* g, const T* x, const T* w, int64_t N,
                         int64_t in, int64_t outf, bool w_t) {
  if (dx) gemm(false, w_t, N, in, outf, T(1), g, outf, w, w_t ? outf : in, T(0), dx, in);
  if (dw) gemm(true, false, outf, in, N, T(1), g, outf, x, in, T(0), dw, in);
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
          for (int64_t c = c0; c < c1; ++c) acc[c - c0] += static_cast<double>(row[c]);
        }
        for (int64_t c = c0; c < c1; ++c) out[c] = static_cast<T>(acc[c - c0]);
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

#undef TGPT_MATMUL_INSTANTIATE

}  // namespace tgpt::cpu

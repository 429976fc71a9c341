/*
 * matmul.h — CPU matrix products on raw row-major buffers (OpenBLAS sgemm/dgemm underneath):
 * a general gemm wrapper, and forward/backward kernels for matmul and linear (the patch
 * convolution's kernels are in kernels/cpu/conv.h).
 *
 * T is float or double. Every function here must be called outside OpenMP parallel regions:
 * OpenBLAS threads itself. Transposes are expressed with the gemm transpose flags, never
 * materialised. A buffer flagged `*_t` holds the transpose of the logical matrix (e.g. a
 * transposed view whose transpose is contiguous), with its own leading dimension.
 * Extents passed in must fit the BLAS integer type (the ops check this).
 */
#pragma once

#include <cstdint>

namespace tgpt::cpu {

// C[M,N] = alpha * op(A) op(B) + beta * C, row-major. op(A) is A[M,K] (lda >= K) or, with
// trans_a, the transpose of A[K,M] (lda >= M); likewise for B. Handles M, N or K of 0.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
          const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
          int64_t ldc);

// Largest extent gemm accepts (the BLAS integer type's maximum).
int64_t gemm_max_extent();

// ---- matmul: out[batch, M, N] = a[batch, M, K] @ b[(batch), K, N] ----------------------------
// a_t / b_t: the buffer of each batch entry holds the transpose ([K, M] / [N, K]).
// b_batched false: one b [K, N] shared by every batch entry.
template <typename T>
void matmul_forward_cpu(T* out, const T* a, const T* b, int64_t batch, int64_t M, int64_t K,
                        int64_t N, bool a_t, bool b_t, bool b_batched);

// da[batch, M, K] = g @ bᵀ; db[(batch), K, N] = aᵀ @ g (summed over the batch when b is shared).
// da or db may be null (that gradient is skipped). da/db are written in logical (untransposed)
// row-major layout whatever a_t/b_t say.
template <typename T>
void matmul_backward_cpu(T* da, T* db, const T* g, const T* a, const T* b, int64_t batch, int64_t M,
                         int64_t K, int64_t N, bool a_t, bool b_t, bool b_batched);

// ---- linear: out[N, out] = x[N, in] @ w[out, in]ᵀ + bias[out] ---------------------------------
// w_t: w's buffer holds wᵀ as [in, out]. bias may be null.
template <typename T>
void linear_forward_cpu(T* out, const T* x, const T* w, const T* bias, int64_t N, int64_t in,
                        int64_t outf, bool w_t);

// dx[N, in] = g @ w; dw[out, in] = gᵀ @ x; dbias[out] = column sums of g. Any of dx/dw/dbias may
// be null (skipped: a frozen weight costs no weight-gradient GEMM).
template <typename T>
void linear_backward_cpu(T* dx, T* dw, T* dbias, const T* g, const T* x, const T* w, int64_t N,
                         int64_t in, int64_t outf, bool w_t);

// out[c] = sum over rows r of g[r * cols + c], rows summed in order in double (deterministic for
// any thread count: columns are split between threads, never rows).
template <typename T>
void column_sum_cpu(T* out, const T* g, int64_t rows, int64_t cols);

}  // namespace tgpt::cpu

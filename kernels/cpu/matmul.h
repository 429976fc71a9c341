/*
 * matmul.h — CPU matrix products on raw row-major buffers: a general gemm, and forward/backward
 * kernels for matmul and linear (the patch convolution's kernels are in kernels/cpu/conv.h).
 *
 * f32 GEMMs run on OpenBLAS (sgemm) or oneDNN (kernels/cpu/onednn_gemm.h), chosen per call by
 * gemm_backend() (TGPT_GEMM=auto|onednn|openblas); f64 on OpenBLAS (dgemm); bf16 on oneDNN
 * (bf16 operands, f32 accumulation, bf16 result), only where the CPU has bf16 dot products
 * (bf16_gemm_native(); elsewhere the ops compute bf16 tensors in f32).
 *
 * T is float, double or bf16. Every function here should be called outside OpenMP parallel
 * regions (the GEMM libraries thread themselves; inside a region they run on the calling
 * thread). Transposes are expressed with the gemm transpose flags, never materialised. A buffer
 * flagged `*_t` holds the transpose of the logical matrix (e.g. a transposed view whose
 * transpose is contiguous), with its own leading dimension.
 * Extents passed in must fit the BLAS integer type (the ops check this).
 */
#pragma once

#include <cstdint>
#include <string_view>
#include <type_traits>

#include "base/dtype.h"

namespace tgpt::cpu {

// An element of a float, double or bf16 buffer as double, and a double rounded to one.
template <typename T>
inline double as_double(T v) {
  if constexpr (std::is_same_v<T, bf16>)
    return bf16_to_f32(v);
  else
    return static_cast<double>(v);
}
template <typename T>
inline T from_double(double v) {
  if constexpr (std::is_same_v<T, bf16>)
    return f32_to_bf16(static_cast<float>(v));
  else
    return static_cast<T>(v);
}

// ---- which library runs the f32 GEMMs -----------------------------------------------------------

// Auto (the default): f32 on OpenBLAS, bf16 on oneDNN. OneDnn: f32 on oneDNN too, except
// inside an OpenMP parallel region (the per-head attention products, each on its calling thread,
// where OpenBLAS's small-matrix kernels are faster at the small CLIP's sizes) and for a
// transposed A (the weight gradients: oneDNN 2.6 splits their K sum between threads for some
// shapes, so the result would depend on the thread count; with A as given it does not — checked
// for M, N up to 2304, K up to 64·max(M, N), 1-64 threads); those stay on OpenBLAS. OpenBlas:
// everything on OpenBLAS, bf16 computed in f32. oneDNN f32 is not the default because the f32
// TGP-T replay golden test (tests/test_tgpt.cpp, parameters after 3 AdamW steps within 1e-5 of
// the largest) lands at 1.05e-5 with it (8.3e-6 on OpenBLAS): bench/RESULTS.md ("GEMM backends").
enum class GemmBackend : uint8_t { Auto, OpenBlas, OneDnn };

// TGPT_GEMM's values: "auto" (or empty), "openblas", "onednn"; anything else throws a
// tgpt::Error naming the accepted values.
GemmBackend parse_gemm_backend(std::string_view value);
const char* gemm_backend_name(GemmBackend b);  // "auto", "openblas", "onednn"

// The setting in force: TGPT_GEMM, read at first use, unless set_gemm_backend replaced it (the
// start-up self-test falls back to OpenBlas when oneDNN fails it; tests and benchmarks switch).
GemmBackend gemm_backend();
void set_gemm_backend(GemmBackend b);

// Whether an f32 gemm with this trans_a called now (inside an OpenMP parallel region, active or
// not, or outside) runs on oneDNN.
bool gemm_uses_onednn(GemmBackend b, bool in_parallel_region, bool trans_a);

// bf16 GEMMs run natively: oneDNN's instruction set has bf16 dot products (AVX512-BF16, AMX),
// the backend is not forced to OpenBLAS, and the bf16 self-test did not fail.
bool bf16_gemm_native();
// The bf16 self-test failed: bf16 tensors are computed in f32 from now on.
void disable_bf16_gemm();

// The f32 gemm on one library, whatever gemm_backend() says (self-test, benchmarks).
void gemm_openblas(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                   int64_t ldc);

// C[M,N] = alpha * op(A) op(B) + beta * C, row-major. op(A) is A[M,K] (lda >= K) or, with
// trans_a, the transpose of A[K,M] (lda >= M); likewise for B. Handles M, N or K of 0.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
          const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
          int64_t ldc);
// bf16 A, B and C, f32 accumulation (kernels/cpu/onednn_gemm.h's gemm_bf16); a transposed A is
// first copied row-major (so the result does not depend on the thread count).
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
          int64_t lda, const bf16* B, int64_t ldb, float beta, bf16* C, int64_t ldc);

// Largest extent gemm accepts (the BLAS integer type's maximum).
int64_t gemm_max_extent();

// The scalar type of T's gemm (alpha, beta): double for double, else float.
template <typename T>
using GemmScalar = std::conditional_t<std::is_same_v<T, double>, double, float>;

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

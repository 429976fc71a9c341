/*
 * matmul.h — CUDA GEMMs (cuBLAS / cuBLASLt) and the small kernels around them: bias epilogues,
 * deterministic column sums (bias gradients). The patch permutation of conv2d_patch is in
 * kernels/cuda/conv.h.
 *
 * Plain C++ header: pointers are device pointers, matrices are row-major, dtypes f32, f16 or
 * bf16. Every product accumulates in f32 (CUBLAS_COMPUTE_32F); f32 products use TF32 tensor
 * cores only after set_allow_tf32(true). One cuBLAS handle and one cuBLASLt handle are bound to
 * the tgpt stream; their workspace comes from the caching allocator.
 */
#pragma once

#include <cstdint>

#include "base/dtype.h"

namespace tgpt::cuda {

// TF32 for f32 GEMMs (off by default: f32 GEMMs are exact-f32 products with f32 accumulation).
void set_allow_tf32(bool allow);
bool allow_tf32();

// For b in [0, batch): C_b[M, N] = alpha * op(A_b) @ op(B_b) + beta * C_b, row-major.
// op(A_b) is A_b [M, K] (lda >= K) or, with trans_a, the transpose of A_b [K, M] (lda >= M);
// likewise B. X_b = X + b * stride_x elements (stride 0 shares one matrix across the batch).
// A and B have dtype ab_t; C has dtype c_t (ab_t, or f32 for an f32 result of 16-bit inputs).
// K == 0 writes beta * C (only beta 0 or 1 are used by tgpt).
void gemm(DType ab_t, DType c_t, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
          float alpha, const void* A, int64_t lda, int64_t stride_a, const void* B, int64_t ldb,
          int64_t stride_b, float beta, void* C, int64_t ldc, int64_t stride_c, int64_t batch);

// out[rows, outf] = x[rows, in] @ wᵀ + bias, w [outf, in] (w_t: the buffer holds wᵀ [in, outf]),
// bias [outf] or null. Uses cuBLASLt's bias epilogue when it has an algorithm for the problem,
// otherwise an f32 GEMM into scratch plus a bias kernel (one rounding to the output dtype either
// way).
void linear_forward(DType dt, void* out, const void* x, const void* w, bool w_t, const void* bias,
                    int64_t rows, int64_t in, int64_t outf);

// out[c] = sum_r g[r, c] for g [rows, cols]: f32 accumulation in a fixed order (deterministic).
void column_sum(DType dt, void* out, const void* g, int64_t rows, int64_t cols);

// out[o, c, l] = in[o, c, l] + bias[c] for [outer, C, L], in f32, out in dt (bias in dt, or
// null). Used to finish a GEMM computed in f32.
void bias_add_from_f32(DType dt, void* out, const float* in, const void* bias, int64_t outer,
                       int64_t C, int64_t L);

}  // namespace tgpt::cuda

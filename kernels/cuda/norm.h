/*
 * norm.h — CUDA kernels for the row-wise normalisations over the last dim: LayerNorm (optionally
 * fused with the residual add), L2 normalisation, softmax and log_softmax, forward and backward.
 *
 * Plain C++ header: device pointers, contiguous [N, C] rows, dtypes f32, f16 or bf16 with f32
 * statistics. One warp per row (llm.c style); the row statistics saved for backward (mean, rstd,
 * norm) are f32. LayerNorm's dweight/dbias are reduced deterministically: per-chunk column
 * partials, then a fixed-order sum over chunks (no atomics).
 */
#pragma once

#include <cstdint>

#include "base/dtype.h"

namespace tgpt::cuda {

// out [N, C] = (x - mean) * rstd * weight + bias; mean/rstd f32 [N]. weight/bias may be null.
// With residual non-null, the normalised input is s = x + residual (rounded to dt, as a separate
// add would), written to sum_out [N, C].
void layernorm_forward(DType dt, void* out, float* mean, float* rstd, const void* x,
                       const void* residual, void* sum_out, const void* weight, const void* bias,
                       int64_t N, int64_t C, double eps);
// dx [N, C] (may be null), dweight/dbias [C] (may be null) from dout; x is the normalised input.
void layernorm_backward(DType dt, void* dx, void* dweight, void* dbias, const void* dout,
                        const void* x, const void* weight, const float* mean, const float* rstd,
                        int64_t N, int64_t C);

// out = x / max(||x||, eps) per row; norm f32 [N] = ||x||.
void l2_normalize_forward(DType dt, void* out, float* norm, const void* x, int64_t N, int64_t C,
                          double eps);
void l2_normalize_backward(DType dt, void* dx, const void* dout, const void* x, const float* norm,
                           int64_t N, int64_t C, double eps);

// Softmax (log = false) or log_softmax (log = true) over rows of length C; lse f32 [N] = the
// row's logsumexp, saved for backward.
void softmax_forward(DType dt, bool log, void* out, float* lse, const void* x, int64_t N,
                     int64_t C);
// dx from dout, the forward input x and lse: the probabilities are recomputed in f32 as
// exp(x - lse), so a 16-bit output's rounding does not enter the gradient.
void softmax_backward(DType dt, bool log, void* dx, const void* dout, const void* x,
                      const float* lse, int64_t N, int64_t C);

}  // namespace tgpt::cuda

/*
 * norm.h — launchers for the row-wise normalisations over the last dim (engine/ops_norm.cpp):
 * layer_norm (optionally fused with the residual add), l2_normalize, softmax and log_softmax.
 *
 * Rows are contiguous [N, C]. CPU kernels: kernels/cpu/norm.h (f32, f64); CUDA kernels:
 * kernels/cuda/norm.h (f32, f16, bf16 with f32 statistics).
 *
 * What backward needs (the node saves it):
 *   layer_norm    x (the normalised input), weight, mean and rstd [N] in norm_stats_dtype
 *   l2_normalize  x and norm [N] = ||x|| in norm_stats_dtype
 *   softmax       CPU: the output [N, C]; CUDA: the input x and lse [N] f32, the row logsumexp
 *                 (softmax_saves_output says which)
 */
#pragma once

#include <cstdint>

#include "kernels/launch.h"

namespace tgpt::kernels {

// Dtype of the saved row statistics: the input dtype on the CPU, f32 on CUDA.
DType norm_stats_dtype(Device dev, DType dt);

// out [N, C] = (s - mean) * rstd * weight + bias with s = x, or s = x + residual (rounded to dt,
// as a separate add would be) written to sum_out [N, C] when residual is non-null. weight/bias
// [C] may be null. C > 0.
void layernorm_forward(Device dev, DType dt, void* out, void* mean, void* rstd, const void* x,
                       const void* residual, void* sum_out, const void* weight, const void* bias,
                       int64_t N, int64_t C, double eps);
// dx [N, C], dweight/dbias [C] (each may be null) from dout [N, C]; x is the normalised input.
void layernorm_backward(Device dev, DType dt, void* dx, void* dweight, void* dbias,
                        const void* dout, const void* x, const void* weight, const void* mean,
                        const void* rstd, int64_t N, int64_t C);

// out = x / max(||x||, eps) per row, norm [N] = ||x||.
void l2_normalize_forward(Device dev, DType dt, void* out, void* norm, const void* x, int64_t N,
                          int64_t C, double eps);
// dx = (g - y (g · y)) / n with y = x / n, n = max(||x||, eps).
void l2_normalize_backward(Device dev, DType dt, void* dx, const void* dout, const void* x,
                           const void* norm, int64_t N, int64_t C, double eps);

// True when softmax backward reads the forward output (CPU); false when it reads the input and
// the row logsumexp (CUDA).
bool softmax_saves_output(Device dev);
// out [N, C] = softmax(x) or log_softmax(x) (log = true) per row; lse f32 [N] written on CUDA
// (ignored, may be null, on the CPU).
void softmax_forward(Device dev, DType dt, bool log, void* out, float* lse, const void* x,
                     int64_t N, int64_t C);
// dx [N, C] from dout and what the forward saved: out on the CPU; x and lse on CUDA.
void softmax_backward(Device dev, DType dt, bool log, void* dx, const void* dout, const void* out,
                      const void* x, const float* lse, int64_t N, int64_t C);

}  // namespace tgpt::kernels

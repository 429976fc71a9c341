/*
 * cosine_loss.h — launchers for TGP-T's classification loss cosine_logit_loss = mean
 * cross-entropy of scale · normalize(x) · Wᵀ (engine/ops_cosine_loss.cpp; formulas in
 * kernels/cpu/cosine_loss.h).
 *
 * x [N, F], w [K, F] in dt; target an int64 array on the device, each in [0, K). Saved for
 * backward: prob [N, K] (softmax of the logits) and norm [N] = ||x||, in cosine_loss_stats_dtype
 * (dt on the CPU, f32 on CUDA), and on the CPU only the normalised features xn [N, F] (dt;
 * cosine_loss_saves_normalized). CPU kernels: kernels/cpu/cosine_loss.h (f32, f64); CUDA:
 * kernels/cuda/cosine_loss.h (f32, f16, bf16).
 */
#pragma once

#include <cstdint>

#include "kernels/launch.h"

namespace tgpt::kernels {

DType cosine_loss_stats_dtype(Device dev, DType dt);
bool cosine_loss_saves_normalized(Device dev);

// loss (one element, dt), norm [N], prob [N, K], xn [N, F] (CPU; null on CUDA).
void cosine_logit_loss_forward(Device dev, DType dt, void* loss, void* norm, void* prob, void* xn,
                               const void* x, const void* w, const int64_t* target, int64_t N,
                               int64_t F, int64_t K, double scale, double eps);
// dx [N, F] and/or dw [K, F] (dt; either may be null) from dloss (one element of dloss_dt on
// dev) and what the forward saved.
void cosine_logit_loss_backward(Device dev, DType dt, void* dx, void* dw, const void* prob,
                                const void* xn, const void* norm, const void* x, const void* w,
                                const int64_t* target, int64_t N, int64_t F, int64_t K,
                                double scale, double eps, const void* dloss, DType dloss_dt);

}  // namespace tgpt::kernels

/*
 * cosine_loss.h — CUDA launchers for TGP-T's classification loss (engine op cosine_logit_loss;
 * formulas as kernels/cpu/cosine_loss.h): logits = scale · normalize(x) · Wᵀ, mean CE.
 *
 * Forward: one warp per (row, class) computes the row norm and the dot product (x and W are
 * small and stay in L2), one block per row does the softmax in place (saving p [N, K] f32) and
 * its loss, one block sums the row losses in order. Backward: dW (one thread per (k, f), rows
 * summed in order) and dx (one block per row: dxn = scale · dz W, then the l2_normalize
 * backward). Deterministic; f32, f16 or bf16 inputs with f32 arithmetic. Plain C++17 header.
 */
#pragma once

#include <cstdint>

#include "base/dtype.h"

namespace tgpt::cuda {

// loss [] (dtype); workspace/saved: norm [N] f32 (||x||), prob [N, K] f32, row_loss [N] f32.
void cosine_logit_loss_forward(void* loss, float* norm, float* prob, float* row_loss, const void* x,
                               const void* w, DType dtype, const int64_t* target, int64_t N,
                               int64_t F, int64_t K, float scale, float eps);

// dx [N, F] and/or dw [K, F] (dtype; either may be null); dxn_scratch [N, F] f32 when dx is
// given; dloss a one-element device tensor of dloss_dtype.
void cosine_logit_loss_backward(void* dx, void* dw, float* dxn_scratch, const float* prob,
                                const float* norm, const void* x, const void* w, DType dtype,
                                const int64_t* target, int64_t N, int64_t F, int64_t K, float scale,
                                float eps, const void* dloss, DType dloss_dtype);

}  // namespace tgpt::cuda

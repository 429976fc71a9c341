/*
 * clip_contrastive_loss.h — CUDA launchers for CLIP's symmetric InfoNCE loss (engine op
 * clip_contrastive_loss; formulas as kernels/cpu/clip_contrastive_loss.h):
 *   Z = exp(min(p, ln 100)) · normalize(I) normalize(T)ᵀ,  loss = (CE(Z, arange) + CE(Zᵀ,
 * arange))/2.
 *
 * Forward: one block per row normalises I and T (saving an, bn [N, E] f32 and the norms), one
 * warp per (i, j) computes Z, one block per row / column its log-sum-exp, one block sums the loss
 * in order. Backward: dZ (one thread per element), dp (one block, elements summed in order),
 * dn = s dZ bn / s dZᵀ an (one thread per (row, e), summed in order) and the l2_normalize backward
 * (one block per row). The parameter p is read on the device (f32, f16 or bf16), so nothing
 * synchronises with the host. Deterministic; f32, f16 or bf16 features with f32 arithmetic and
 * f32 accumulation (the loss sum in f64). Plain C++17 header.
 */
#pragma once

#include <cstdint>

#include "base/dtype.h"

namespace tgpt::cuda {

// loss [] (dtype); saved: an, bn [N, E], inorm, tnorm [N], logits [N, N], lse_row, lse_col [N]
// (all f32). param: one element of param_dtype.
void clip_contrastive_loss_forward(void* loss, DType dtype, float* an, float* bn, float* inorm,
                                   float* tnorm, float* logits, float* lse_row, float* lse_col,
                                   const void* img, const void* txt, const void* param,
                                   DType param_dtype, int64_t N, int64_t E, float eps);

// dimg, dtxt [N, E] (dtype) and dparam (one element of param_dtype), each may be null;
// dz_scratch [N, N] f32, dn_scratch [N, E] f32 (when dimg or dtxt is given); dloss a one-element
// device tensor of dloss_dtype.
void clip_contrastive_loss_backward(void* dimg, void* dtxt, void* dparam, DType dtype,
                                    float* dz_scratch, float* dn_scratch, const float* an,
                                    const float* bn, const float* inorm, const float* tnorm,
                                    const float* logits, const float* lse_row, const float* lse_col,
                                    const void* param, DType param_dtype, int64_t N, int64_t E,
                                    float eps, const void* dloss, DType dloss_dtype);

}  // namespace tgpt::cuda

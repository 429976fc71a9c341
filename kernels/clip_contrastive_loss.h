/*
 * clip_contrastive_loss.h — launchers for CLIP's symmetric InfoNCE loss clip_contrastive_loss
 * (engine/ops_clip_contrastive_loss.cpp; formulas in kernels/cpu/clip_contrastive_loss.h):
 *   loss = (CE(Z, arange) + CE(Zᵀ, arange)) / 2,  Z = exp(min(p, ln 100)) · normalize(I)
 * normalize(T)ᵀ.
 *
 * img, txt [N, E] in dt; the logit-scale parameter p is one element of param_dt on the device
 * (read there: no host sync on CUDA). Saved for backward, in clip_contrastive_stats_dtype (dt on
 * the CPU, f32 on CUDA): an, bn [N, E] (the normalised features), inorm, tnorm [N] (their norms),
 * logits [N, N]; on CUDA only (clip_contrastive_saves_lse) also lse_row, lse_col [N], the f32
 * log-sum-exp of each row / column of the logits (the CPU recomputes them in double in the
 * backward; null there).
 * CPU kernels: kernels/cpu/clip_contrastive_loss.h (f32, f64); CUDA:
 * kernels/cuda/clip_contrastive_loss.h (f32, f16, bf16 with f32 arithmetic).
 */
#pragma once

#include <cstdint>

#include "kernels/launch.h"

namespace tgpt::kernels {

DType clip_contrastive_stats_dtype(Device dev, DType dt);
bool clip_contrastive_saves_lse(Device dev);

// loss (one element, dt) and the saved tensors above.
void clip_contrastive_loss_forward(Device dev, DType dt, void* loss, void* an, void* bn,
                                   void* inorm, void* tnorm, void* logits, void* lse_row,
                                   void* lse_col, const void* img, const void* txt,
                                   const void* param, DType param_dt, int64_t N, int64_t E,
                                   double eps);
// dimg, dtxt [N, E] (dt) and dparam (one element of param_dt; 0 when p > ln 100), each may be
// null, from dloss (one element of dloss_dt on dev) and what the forward saved.
void clip_contrastive_loss_backward(Device dev, DType dt, void* dimg, void* dtxt, void* dparam,
                                    const void* an, const void* bn, const void* inorm,
                                    const void* tnorm, const void* logits, const void* lse_row,
                                    const void* lse_col, const void* img, const void* txt,
                                    const void* param, DType param_dt, int64_t N, int64_t E,
                                    double eps, const void* dloss, DType dloss_dt);

}  // namespace tgpt::kernels

/*
 * vocab_ce.h — launchers for the fused vocabulary cross-entropy cross_entropy(hidden @ Eᵀ,
 * target) without the [N, V] logits (engine/ops_vocab_ce.cpp; algorithm in
 * kernels/cpu/vocab_ce.h).
 *
 * hidden [N, W], embedding E [V, W] in dt; target an int64 array on the device, validated (in
 * [0, V) or ignore_index); count the non-ignored rows. The forward also accumulates the gradient
 * direction grad_dir [N, W] = d loss_n / d hidden_n (dtype vocab_ce_grad_dtype: dt on the CPU, f32
 * on CUDA), which is all backward reads. CPU kernels: kernels/cpu/vocab_ce.h (f32, f64); CUDA:
 * kernels/cuda/vocab_ce.h (f32, f16, bf16; workspaces allocated here).
 */
#pragma once

#include <cstdint>

#include "kernels/launch.h"

namespace tgpt::kernels {

DType vocab_ce_grad_dtype(Device dev, DType dt);

// loss (one element, dt); grad_dir [N, W] or null (no gradient wanted). The vocabulary is
// processed `chunk` rows of E at a time.
void vocab_ce_forward(Device dev, DType dt, void* loss, void* grad_dir, const void* hidden,
                      const void* embedding, const int64_t* target, int64_t N, int64_t W, int64_t V,
                      int64_t chunk, double label_smoothing, int64_t ignore_index, int64_t count);
// dhidden [N, W] (dt) = grad_dir * dloss / count; dloss one element of dloss_dt on dev.
void vocab_ce_backward(Device dev, DType dt, void* dhidden, const void* grad_dir, const void* dloss,
                       DType dloss_dt, int64_t N, int64_t W, int64_t count);

}  // namespace tgpt::kernels

/*
 * cross_entropy.h — launchers for softmax cross-entropy on materialised logits [N, V]
 * (engine/ops_cross_entropy.cpp; PyTorch semantics: reduction 'mean', label smoothing,
 * ignore_index).
 *
 * target is an int64 array on the logits' device, validated (each entry in [0, V) or
 * ignore_index); count is the number of non-ignored rows (the loss is NaN when 0). Backward reads
 * the logits and the row logsumexp lse [N], saved in cross_entropy_lse_dtype (f64 on the CPU, f32
 * on CUDA). CPU kernels: kernels/cpu/cross_entropy.h (f32, f64); CUDA kernels:
 * kernels/cuda/cross_entropy.h (f32, f16, bf16).
 */
#pragma once

#include <cstdint>

#include "kernels/launch.h"

namespace tgpt::kernels {

DType cross_entropy_lse_dtype(Device dev);

// loss (one element, dtype dt) and lse [N].
void cross_entropy_forward(Device dev, DType dt, void* loss, void* lse, const void* logits,
                           const int64_t* target, int64_t N, int64_t V, double label_smoothing,
                           int64_t ignore_index, int64_t count);
// dlogits [N, V] (fully written: 0 on ignored rows) from dloss (one element, dtype dt, on dev).
void cross_entropy_backward(Device dev, DType dt, void* dlogits, const void* logits,
                            const void* lse, const int64_t* target, const void* dloss, int64_t N,
                            int64_t V, double label_smoothing, int64_t ignore_index, int64_t count);

}  // namespace tgpt::kernels

/*
 * attention.h — launchers for multi-head attention on CLIP's packed qkv [B, T, 3C]
 * (engine/ops_attention.cpp; layout in kernels/cpu/attention.h and engine/ops.h).
 *
 * CPU kernels: kernels/cpu/attention.h (f32, f64). CUDA kernels: kernels/cuda/attention.h (f32,
 * f16, bf16; head dims 64, 80 and 128; pointers 16-byte aligned).
 *
 * What backward needs differs by device (attention_saves_probabilities says which):
 *   CPU   qkv and the softmax probabilities probs [B, NH, T, T] (dtype)
 *   CUDA  qkv, the output out [B, T, C] and the row logsumexp lse [B, NH, T] (f32)
 */
#pragma once

#include <cstdint>

#include "kernels/launch.h"

namespace tgpt::kernels {

// Byte alignment every pointer must have (16 on CUDA for vector loads).
int64_t attention_alignment(Device dev);

// True on the CPU (backward reads probs), false on CUDA (it reads out and lse).
bool attention_saves_probabilities(Device dev);

// Throws a tgpt::Error when the device has no kernel for this shape (CUDA: head dim C / NH must
// be 64, 80 or 128) or dtype.
void check_attention(Device dev, DType dt, int64_t C, int64_t NH);

// out [B, T, C] from qkv; probs (CPU, may be null when no backward follows) or lse (CUDA).
void attention_forward(Device dev, DType dt, void* out, void* probs, float* lse, const void* qkv,
                       int64_t B, int64_t T, int64_t C, int64_t NH, bool causal);
// dqkv [B, T, 3C] (fully written) from dout [B, T, C] and what the forward saved.
void attention_backward(Device dev, DType dt, void* dqkv, const void* dout, const void* qkv,
                        const void* probs, const void* out, const float* lse, int64_t B, int64_t T,
                        int64_t C, int64_t NH, bool causal);

}  // namespace tgpt::kernels

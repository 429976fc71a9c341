/*
 * attention.h — CUDA launchers for fused multi-head attention on CLIP's packed qkv [B, T, 3C]
 * (layout as kernels/cpu/attention.h; engine op `attention`). Head dims 64, 80 and 128; f32, f16
 * and bf16 storage with f32 softmax and accumulation. Algorithm (attention.cu): FlashAttention-2
 * style tiles of 64 queries x 64 keys in shared memory, online softmax, the T x T scores never in
 * global memory; forward saves the row logsumexp [B, NH, T] (natural log, f32) for backward.
 * All pointers are device pointers, 16-byte aligned; everything runs on tgpt's stream. Plain
 * C++17 header.
 */
#pragma once

#include <cstdint>

#include "base/dtype.h"

namespace tgpt::cuda {

bool attention_head_dim_supported(int64_t D);

// out [B, T, C] (dtype), lse [B, NH, T] f32 <- qkv [B, T, 3C] (dtype).
void attention_forward(void* out, float* lse, const void* qkv, DType dtype, int64_t B, int64_t T,
                       int64_t C, int64_t NH, bool causal);

// dqkv [B, T, 3C] (dtype, fully written) <- dout [B, T, C], qkv, out and lse from the forward.
// dsum [B, NH, T] f32 is workspace (rowsum(dout ∘ out)).
void attention_backward(void* dqkv, float* dsum, const void* dout, const void* qkv, const void* out,
                        const float* lse, DType dtype, int64_t B, int64_t T, int64_t C, int64_t NH,
                        bool causal);

}  // namespace tgpt::cuda

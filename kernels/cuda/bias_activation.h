/*
 * bias_activation.h — CUDA kernels for the fused bias + activation out = act(x + bias) over
 * rows x [N, C], bias [C], forward and backward (dx and dbias).
 *
 * Plain C++ header: device pointers, contiguous rows, dtypes f32, f16 or bf16 with f32 math
 * (x + bias is not rounded to the storage dtype in between). dbias is reduced deterministically:
 * per-chunk column partials in f32, then a fixed-order sum over the chunks (no atomics); the
 * chunking depends only on N.
 *
 * Why handwritten rather than a cuBLASLt epilogue: cuBLASLt's GELU epilogue is the tanh
 * approximation, not the exact erf GELU that CLIP's text/vision MLPs (and our CPU op) use, and
 * it has no QuickGELU (x * sigmoid(1.702 x)) at all, so a fused elementwise kernel is the tool.
 */
#pragma once

#include <cstdint>

#include "base/dtype.h"
#include "base/activation.h"

namespace tgpt::cuda {

// out [N, C] = act(x + bias)
void bias_activation_forward(DType dt, Activation act, void* out, const void* x, const void* bias,
                             int64_t N, int64_t C);
// dx [N, C] = dout * act'(x + bias) (dx may be null); dbias [C] = column sums of that (may be
// null).
void bias_activation_backward(DType dt, Activation act, void* dx, void* dbias, const void* dout,
                              const void* x, const void* bias, int64_t N, int64_t C);

}  // namespace tgpt::cuda

/*
 * activation.h — CUDA kernels for relu, exact gelu and quick_gelu, forward and backward.
 *
 * Plain C++ header: device pointers, contiguous buffers, dtypes f32, f16 or bf16 (f32 arithmetic).
 */
#pragma once

#include <cstdint>

#include "base/activation.h"
#include "base/dtype.h"

namespace tgpt::cuda {

// out[i] = act(x[i] + bias[i % C]) (bias [C] or null; C ignored without bias).
void activation_forward(DType dt, Activation op, void* out, const void* x, const void* bias,
                        int64_t n, int64_t C);
// dx[i] = g[i] * act'(x[i]) where x is the activation's input (bias already added).
void activation_backward(DType dt, Activation op, void* dx, const void* g, const void* x,
                         int64_t n);

}  // namespace tgpt::cuda

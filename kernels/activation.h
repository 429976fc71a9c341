/*
 * activation.h — launchers for relu, exact gelu and quick_gelu (engine/ops_activation.cpp).
 *
 * n contiguous elements. CPU kernels: kernels/cpu/activation.h (f32, f64); CUDA kernels:
 * kernels/cuda/activation.h (f32, f16, bf16, f32 arithmetic).
 * Backward reads the forward input x.
 */
#pragma once

#include <cstdint>

#include "base/activation.h"
#include "kernels/launch.h"

namespace tgpt::kernels {

// out[i] = act(x[i])
void activation_forward(Device dev, DType dt, Activation act, void* out, const void* x, int64_t n);
// dx[i] = g[i] * act'(x[i])
void activation_backward(Device dev, DType dt, Activation act, void* dx, const void* g,
                         const void* x, int64_t n);

}  // namespace tgpt::kernels

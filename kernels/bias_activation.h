/*
 * bias_activation.h — launchers for the fused bias + activation out = act(x + bias) over rows
 * x [N, C], bias [C] (engine/ops_bias_activation.cpp). Backward reads x and bias.
 *
 * CPU kernels: kernels/cpu/bias_activation.h (f32, f64); CUDA kernels:
 * kernels/cuda/bias_activation.h (f32, f16, bf16; x + bias not rounded in between).
 */
#pragma once

#include <cstdint>

#include "base/activation.h"
#include "kernels/launch.h"

namespace tgpt::kernels {

const char* bias_activation_name(Activation act);  // "bias_activation(gelu)", ...

// out [N, C] = act(x + bias)
void bias_activation_forward(Device dev, DType dt, Activation act, void* out, const void* x,
                             const void* bias, int64_t N, int64_t C);
// dx [N, C] = g * act'(x + bias), dbias [C] = column sums of dx (either may be null).
void bias_activation_backward(Device dev, DType dt, Activation act, void* dx, void* dbias,
                              const void* g, const void* x, const void* bias, int64_t N, int64_t C);

}  // namespace tgpt::kernels

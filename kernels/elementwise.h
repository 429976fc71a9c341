/*
 * elementwise.h — the elementwise op codes and their launchers (engine/ops_elementwise.cpp):
 * broadcast binary ops and unary / scalar maps.
 *
 * BinaryOp and UnaryOp are the one definition of these codes for the engine and both devices'
 * kernels. CPU kernels: kernels/cpu/elementwise.h (f32, f64); CUDA kernels:
 * kernels/cuda/elementwise.h (f32, f16, bf16 with f32 arithmetic).
 */
#pragma once

#include <cstdint>

#include "base/shape.h"
#include "kernels/launch.h"

namespace tgpt {

enum class BinaryOp : int { add, sub, mul, div };
// add_scalar / mul_scalar / pow take the scalar s.
enum class UnaryOp : int { neg, exp, log, sqrt, pow, add_scalar, mul_scalar };

namespace kernels {

// out [shape] (contiguous) = a op b; sa/sb are a's/b's element strides expanded to `shape` (0 on
// broadcast dims).
void binary_forward(Device dev, DType dt, BinaryOp op, void* out, const void* a, const void* b,
                    const Shape& shape, const Shape& sa, const Shape& sb, const char* name);

// out[i] = f(x[i]) for n contiguous elements; s is the scalar of pow / add_scalar / mul_scalar.
void unary_forward(Device dev, DType dt, UnaryOp op, void* out, const void* x, int64_t n, double s,
                   const char* name);

}  // namespace kernels

}  // namespace tgpt

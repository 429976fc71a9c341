/*
 * elementwise.h — CUDA kernels for broadcast binary ops and unary/scalar maps (activations:
 * kernels/cuda/activation.h, row sums: reduce.h, MSE: mse_loss.h).
 *
 * Plain C++ header: device pointers, contiguous buffers unless strides are given, dtypes f32,
 * f16 or bf16 (all arithmetic in f32).
 */
#pragma once

#include <cstdint>

#include "base/dtype.h"
#include "kernels/elementwise.h"

namespace tgpt::cuda {

// The op codes are tgpt::BinaryOp / tgpt::UnaryOp (kernels/elementwise.h).
using ::tgpt::BinaryOp;
using ::tgpt::UnaryOp;

// out [shape] (contiguous) = a op b; sa/sb are a's/b's element strides expanded to `shape`
// (0 on broadcast dims). nd <= 5.
void binary_broadcast(DType dt, BinaryOp op, void* out, const void* a, const void* b,
                      const int64_t* shape, const int64_t* sa, const int64_t* sb, int nd);

// out[i] = f(x[i]) for n elements; s is the scalar of pow / add_scalar / mul_scalar.
void unary(DType dt, UnaryOp op, void* out, const void* x, int64_t n, double s);

}  // namespace tgpt::cuda

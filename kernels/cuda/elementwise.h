/*
 * elementwise.h — CUDA kernels for broadcast binary ops, unary/scalar maps, activations (relu,
 * exact gelu, quick_gelu; forward and backward, optionally fused with a bias add), row sums
 * (sum/mean reductions) and the MSE loss.
 *
 * Plain C++ header: device pointers, contiguous buffers unless strides are given, dtypes f32,
 * f16 or bf16 (all arithmetic in f32). Reductions are deterministic: fixed partitions reduced in
 * a fixed order, no float atomics.
 */
#pragma once

#include <cstdint>

#include "base/activation.h"
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

// out[i] = act(x[i] + bias[i % C]) (bias [C] or null; C ignored without bias).
void activation_forward(DType dt, Activation op, void* out, const void* x, const void* bias, int64_t n,
                        int64_t C);
// dx[i] = g[i] * act'(x[i]) where x is the activation's input (bias already added).
void activation_backward(DType dt, Activation op, void* dx, const void* g, const void* x, int64_t n);

// out[r] = (sum_j x[r * n + j]) / divisor for r in [0, rows).
void row_sum(DType dt, void* out, const void* x, int64_t rows, int64_t n, double divisor);

// out (one element) = mean((a - b)^2) over n elements (NaN for n = 0).
void mse_forward(DType dt, void* out, const void* a, const void* b, int64_t n);
// da = g * 2 (a - b) / n, db = -da (either may be null); g points to the one-element gradient.
void mse_backward(DType dt, void* da, void* db, const void* a, const void* b, const void* g,
                  int64_t n);

}  // namespace tgpt::cuda

/*
 * mse_loss.h — CUDA kernels for the mean squared error mean((a - b)^2), forward and backward.
 *
 * Plain C++ header: device pointers, contiguous buffers, dtypes f32, f16 or bf16 (f32 arithmetic;
 * the forward sum is deterministic).
 */
#pragma once

#include <cstdint>

#include "base/dtype.h"

namespace tgpt::cuda {

// out (one element) = mean((a - b)^2) over n elements (NaN for n = 0).
void mse_forward(DType dt, void* out, const void* a, const void* b, int64_t n);
// da = g * 2 (a - b) / n, db = -da (either may be null); g points to the one-element gradient.
void mse_backward(DType dt, void* da, void* db, const void* a, const void* b, const void* g,
                  int64_t n);

}  // namespace tgpt::cuda

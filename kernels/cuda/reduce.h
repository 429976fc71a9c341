/*
 * reduce.h — CUDA row sums behind the sum / mean reductions.
 *
 * Plain C++ header: device pointers, contiguous rows, dtypes f32, f16 or bf16 (f32 accumulation).
 * Deterministic: fixed partitions reduced in a fixed order, no float atomics.
 */
#pragma once

#include <cstdint>

#include "base/dtype.h"

namespace tgpt::cuda {

// out[r] = (sum_j x[r * n + j]) / divisor for r in [0, rows).
void row_sum(DType dt, void* out, const void* x, int64_t rows, int64_t n, double divisor);

}  // namespace tgpt::cuda

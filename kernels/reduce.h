/*
 * reduce.h — launcher for the sum / mean reductions (engine/ops_reduce.cpp): the engine moves the
 * reduced dims last, so a reduction is a sum over contiguous rows.
 *
 * CPU kernel: kernels/cpu/reduce.h (f32, f64; the mean divides the sum in the dtype); CUDA
 * kernel: kernels/cuda/reduce.h (f32 accumulation, deterministic).
 */
#pragma once

#include <cstdint>

#include "kernels/launch.h"

namespace tgpt::kernels {

// out[r] = sum_j x[r * n + j] for r in [0, rows), divided by n when mean is true.
void sum_rows(Device dev, DType dt, void* out, const void* x, int64_t rows, int64_t n, bool mean,
              const char* name);

}  // namespace tgpt::kernels

/*
 * mse_loss.h — launchers for mse_loss = mean((a - b)^2) over n contiguous elements
 * (engine/ops_mse_loss.cpp). Backward reads a and b.
 *
 * CPU kernels: kernels/cpu/mse_loss.h (f32, f64; double accumulation in fixed chunks); CUDA
 * kernels: kernels/cuda/mse_loss.h (f32, f16, bf16).
 */
#pragma once

#include <cstdint>

#include "kernels/launch.h"

namespace tgpt::kernels {

// loss (one element, dtype dt) = mean((a - b)^2) (NaN for n = 0).
void mse_loss_forward(Device dev, DType dt, void* loss, const void* a, const void* b, int64_t n);
// da = dloss * 2 (a - b) / n, db = -da (either may be null); dloss is the one-element gradient
// of the loss (dtype dt, on dev).
void mse_loss_backward(Device dev, DType dt, void* da, void* db, const void* a, const void* b,
                       const void* dloss, int64_t n);

}  // namespace tgpt::kernels

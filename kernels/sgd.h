/*
 * sgd.h — launcher for the SGD update (engine/optim.cpp; torch.optim.SGD semantics, see
 * kernels/cpu/sgd.h). CPU only (f32, f64): CUDA parameters are optimized by AdamW.
 */
#pragma once

#include <cstdint>

#include "kernels/launch.h"

namespace tgpt::kernels {

// One SGD step of one tensor (see kernels/cpu/sgd.h); buf may be null when momentum == 0.
void sgd_update(Device dev, DType dt, void* param, const void* grad, void* buf, bool first,
                int64_t n, double lr, double weight_decay, double momentum, double dampening,
                bool nesterov);

}  // namespace tgpt::kernels

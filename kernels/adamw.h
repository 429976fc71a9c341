/*
 * adamw.h — launchers for the AdamW update (engine/optim.cpp): on the CPU one tensor at a time in
 * its dtype; on CUDA every tensor in one multi-tensor launch on f32 master copies.
 *
 * CPU kernel: kernels/cpu/adamw.h (f32, f64). CUDA: kernels/cuda/adamw.h (f32, f16, bf16
 * parameters; f32 moments). AdamWTensor (kernels/cuda/adamw.h, plain C++) describes one CUDA
 * tensor's buffers.
 */
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cuda/adamw.h"
#include "kernels/launch.h"

namespace tgpt::kernels {

using cuda::AdamWTensor;

// One AdamW step of one tensor on the CPU: param, exp_avg, exp_avg_sq [n] updated in place from
// grad [n]; step is the tensor's 1-based step count after incrementing.
void adamw_update(Device dev, DType dt, void* param, const void* grad, void* exp_avg,
                  void* exp_avg_sq, int64_t n, double lr, double beta1, double beta2, double eps,
                  double weight_decay, int64_t step);
// One AdamW step of every tensor in `tensors` (one launch on CUDA).
void adamw_multi_tensor(Device dev, const std::vector<AdamWTensor>& tensors, double lr,
                        double beta1, double beta2, double eps, double weight_decay);

}  // namespace tgpt::kernels

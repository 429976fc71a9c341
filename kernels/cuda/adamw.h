/*
 * adamw.h — AdamW over many parameter tensors in one CUDA launch (multi-tensor apply).
 *
 * Plain C++ header. Each tensor is described by an AdamWTensor (device pointers); the launcher
 * copies the descriptor array to the device and runs one kernel over all elements of all tensors.
 * The update is kernels/cpu/adamw.h's, in f32 with the same fused multiply-adds, on an f32 master
 * copy; 16-bit parameters get the updated master value rounded to nearest even.
 */
#pragma once

#include <cstdint>
#include <vector>

#include "base/dtype.h"

namespace tgpt::cuda {

struct AdamWTensor {
  float* master = nullptr;      // f32 parameter values (the parameter itself when it is f32)
  void* param_lowp = nullptr;   // the f16/bf16 parameter to refresh from master, or null
  const void* grad = nullptr;   // gradient, dtype grad_dtype, contiguous, n elements
  float* exp_avg = nullptr;     // m, f32
  float* exp_avg_sq = nullptr;  // v, f32
  int64_t n = 0;
  DType grad_dtype = DType::f32;  // f32, f16 or bf16 (also the dtype of param_lowp)
  int64_t step = 1;               // this tensor's 1-based step count after incrementing
};

// One AdamW step for every tensor in `tensors` (one kernel launch). The scalars are computed in
// double and rounded to f32 exactly as kernels/cpu/adamw.h does.
void adamw_multi_tensor(const std::vector<AdamWTensor>& tensors, double lr, double beta1,
                        double beta2, double eps, double weight_decay);

}  // namespace tgpt::cuda

/*
 * op_support.h — helpers for the CUDA branches of the op implementations (engine/ops_*.cpp):
 * dtype checks and uploading validated index vectors. Plain C++ (no CUDA types); compiles in
 * CPU-only builds too, where no tensor can live on the device.
 */
#pragma once

#include <cstdint>
#include <vector>

#include "engine/ops_common.h"

namespace tgpt {

inline bool on_cuda(const Tensor& t) {
  return t.defined() && t.device() == Device::CUDA;
}

// CUDA kernels take f32, f16 or bf16 (f64 exists on the CPU only, for gradient checks).
inline void check_cuda_float(const Tensor& x, const char* op) {
  TGPT_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::f16 || x.dtype() == DType::bf16, op,
             ": CUDA kernels take f32, f16 or bf16 tensors, got ", x.str());
}

// A device i64 tensor holding v (index values already validated on the host).
inline Tensor upload_indices(const std::vector<int64_t>& v) {
  Tensor t = Tensor::empty({static_cast<int64_t>(v.size())}, DType::i64, Device::CUDA);
  copy_bytes(t.data_ptr(), Device::CUDA, v.data(), Device::CPU, v.size() * sizeof(int64_t));
  return t;
}

// A raw pointer or null for an undefined tensor.
inline void* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data_ptr() : nullptr;
}

}  // namespace tgpt

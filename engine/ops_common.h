/*
 * ops_common.h — helpers shared by the op implementations (not part of the public API): argument
 * checks, the 16-bit-float-through-f32 rule, gradients in the saved tensors' dtype and device,
 * index and class-target helpers (ops_common.cpp).
 *
 * Ops never test for a device build: each calls its launcher (kernels/<op>.h), which picks the
 * CPU or the CUDA kernel; check_kernel_dtype and dispatch_float come from kernels/launch.h.
 */
#pragma once

#include <vector>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "kernels/launch.h"
#include "kernels/matmul.h"

namespace tgpt {

inline bool is_half(DType t) {
  return t == DType::f16 || t == DType::bf16;
}

// Checks that x is defined and of a floating dtype.
// The GEMM-based ops (linear, matmul, conv2d_patch) compute a CPU tensor x in f32 (converting
// in and out): f16 always, bf16 unless the CPU runs bf16 GEMMs (kernels::cpu_bf16_gemm).
inline bool cpu_computes_in_f32(const Tensor& x) {
  if (x.device() != Device::CPU || !is_half(x.dtype())) return false;
  return x.dtype() == DType::f16 || !kernels::cpu_bf16_gemm();
}

inline void check_float(const Tensor& x, const char* op, const char* arg) {
  TGPT_CHECK(x.defined(), op, ": ", arg, " is undefined");
  TGPT_CHECK(dtype_is_float(x.dtype()), op, ": ", arg, " must be a floating tensor, got ",
             dtype_name(x.dtype()));
}

inline void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  TGPT_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch ", dtype_name(a.dtype()), " vs ",
             dtype_name(b.dtype()));
}

inline void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  TGPT_CHECK(a.device() == b.device(), op, ": device mismatch ", device_name(a.device()), " vs ",
             device_name(b.device()));
}

// The gradient g of an output as a contiguous tensor with ref's dtype and device and no autograd
// history (what a launcher's backward reads next to ref).
inline Tensor grad_as(const Tensor& g, const Tensor& ref) {
  Tensor d = g.detach();
  if (d.dtype() != ref.dtype()) d = d.to(ref.dtype());
  if (d.device() != ref.device()) d = d.to(ref.device());
  return d.contiguous();
}

// A raw pointer or null for an undefined tensor.
inline void* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data_ptr() : nullptr;
}

// Reads an index tensor (i32 or i64, any device, any layout) into int64 values on the host.
std::vector<int64_t> index_values(const Tensor& idx, const char* op);

// An i64 tensor on `dev` holding v (index values already validated on the host).
Tensor index_tensor(const std::vector<int64_t>& v, Device dev);

// Validated class indices of target [N] (i32/i64, any device) into tgt: each in [0, K) or
// ignore_index (pass allow_ignore = false to refuse ignore_index). Returns the non-ignored count.
int64_t checked_targets(std::vector<int64_t>& tgt, const Tensor& target, int64_t N, int64_t K,
                        bool allow_ignore, int64_t ignore_index, const char* op);

}  // namespace tgpt

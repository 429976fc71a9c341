/*
 * ops_common.h — helpers shared by the op implementations (not part of the public API):
 * argument checks, dtype dispatch, and the 16-bit-float-through-f32 rule.
 */
#pragma once

#include "engine/autograd.h"
#include "engine/ops.h"

namespace tgpt {

inline bool is_half(DType t) { return t == DType::f16 || t == DType::bf16; }

// Checks that x is defined, on the CPU or CUDA, and of a floating dtype.
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

// CPU kernels exist for f32 and f64; everything else is rejected here.
inline void check_cpu_kernel(const Tensor& x, const char* op) {
  TGPT_CHECK(x.device() == Device::CPU, op, ": no CUDA kernel in this build for ", x.str());
  TGPT_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::f64, op, ": unsupported dtype ",
             dtype_name(x.dtype()));
}

// Calls f(T{}) with T = float or double according to dt.
template <typename F>
decltype(auto) dispatch_float(DType dt, const char* op, F&& f) {
  if (dt == DType::f32) return f(float{});
  if (dt == DType::f64) return f(double{});
  TGPT_FAIL(op, ": unsupported dtype ", dtype_name(dt));
}

// Reads an index tensor (i32 or i64, CPU, any layout) into int64 values.
std::vector<int64_t> index_values(const Tensor& idx, const char* op);

}  // namespace tgpt

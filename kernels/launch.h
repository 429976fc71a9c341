/*
 * launch.h — what every launcher (kernels/<op>.h) shares.
 *
 * A launcher is the one place where an op picks its device: it takes raw pointers, sizes, a DType
 * and a Device, and calls the CPU kernel template (kernels/cpu/<op>.h, on float or double) or the
 * CUDA kernel (kernels/cuda/<op>.h). Only launchers (kernels/<op>.cpp), the device backend
 * (base/cuda/, base/device.cpp) and engine/tensor.cpp's device copies test TGPT_WITH_CUDA; in a
 * build without CUDA no CUDA tensor can be created, and a CUDA call that arrives anyway gets a
 * tgpt::Error from fail_without_cuda.
 *
 * Dtypes: CPU kernels take f32 and f64 (f64 for gradient checks; the engine computes f16/bf16 CPU
 * inputs in f32); CUDA kernels take f32, f16 and bf16 (f32 arithmetic).
 */
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/device.h"
#include "base/dtype.h"
#include "base/error.h"

namespace tgpt {

// True when the kernels of `dev` take dtype `dt` (see above).
bool kernel_takes_dtype(Device dev, DType dt);
// Throws "<op>: CUDA kernels take f32, f16 or bf16 tensors, got f64" (or the CPU's list).
void check_kernel_dtype(Device dev, DType dt, const char* op);

// Calls f(T{}) with T = float or double according to dt (CPU kernels).
template <typename F>
decltype(auto) dispatch_float(DType dt, const char* op, F&& f) {
  if (dt == DType::f32) return f(float{});
  if (dt == DType::f64) return f(double{});
  TGPT_FAIL(op, ": unsupported dtype ", dtype_name(dt), " (CPU kernels take f32 or f64)");
}

// Throws: `op` was asked to run on CUDA in a build without CUDA.
[[noreturn]] void fail_without_cuda(const char* op);

namespace kernels {

// Scratch memory from a device's caching allocator, returned at scope exit. On CUDA the return is
// stream-ordered (every tgpt kernel runs on the one tgpt stream), so kernels launched before the
// scope ends may still use it.
class Scratch {
 public:
  Scratch(Device dev, size_t nbytes);
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  Device dev_;
  size_t nbytes_;
  void* ptr_ = nullptr;
};

// Host int64 values (indices validated on the host) where a kernel of `dev` can read them: the
// host array itself on the CPU, a copy in device scratch memory on CUDA.
class IndicesOn {
 public:
  IndicesOn(Device dev, const int64_t* host, int64_t n);
  const int64_t* get() const { return ptr_; }

 private:
  Scratch copy_;
  const int64_t* ptr_ = nullptr;
};

}  // namespace kernels

}  // namespace tgpt

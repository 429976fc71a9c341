/*
 * launch.cpp — the launchers' shared checks, scratch memory and index uploads (launch.h).
 */
#include "kernels/launch.h"

namespace tgpt {

bool kernel_takes_dtype(Device dev, DType dt) {
  if (dev == Device::CPU) return dt == DType::f32 || dt == DType::f64;
  return dt == DType::f32 || dt == DType::f16 || dt == DType::bf16;
}

void check_kernel_dtype(Device dev, DType dt, const char* op) {
  TGPT_CHECK(
      kernel_takes_dtype(dev, dt), op, ": ",
      dev == Device::CPU ? "CPU kernels take f32 or f64" : "CUDA kernels take f32, f16 or bf16",
      " tensors, got ", dtype_name(dt));
}

void fail_without_cuda(const char* op) {
  TGPT_FAIL(op,
            ": the tensors are on the CUDA device but this tgpt was built without CUDA "
            "(configure with -DTGPT_CUDA=ON on a machine with nvcc)");
}

namespace kernels {

Scratch::Scratch(Device dev, size_t nbytes) : dev_(dev), nbytes_(nbytes) {
  if (nbytes_ > 0) ptr_ = allocator_for(dev_).allocate(nbytes_);
}

Scratch::~Scratch() {
  if (ptr_) allocator_for(dev_).deallocate(ptr_, nbytes_);
}

IndicesOn::IndicesOn(Device dev, const int64_t* host, int64_t n)
    : copy_(dev, dev == Device::CPU ? 0 : static_cast<size_t>(n) * sizeof(int64_t)) {
  if (dev == Device::CPU) {
    ptr_ = host;
    return;
  }
  copy_bytes(copy_.get(), dev, host, Device::CPU, static_cast<size_t>(n) * sizeof(int64_t));
  ptr_ = copy_.as<int64_t>();
}

}  // namespace kernels

}  // namespace tgpt

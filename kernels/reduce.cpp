/*
 * reduce.cpp — device dispatch of the row sums behind sum and mean (kernels/reduce.h).
 */
#include "kernels/reduce.h"

#include "kernels/cpu/reduce.h"
#ifdef TGPT_WITH_CUDA
#include "kernels/cuda/reduce.h"
#endif

namespace tgpt::kernels {

void sum_rows(Device dev, DType dt, void* out, const void* x, int64_t rows, int64_t n, bool mean,
              const char* name) {
  check_kernel_dtype(dev, dt, name);
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::row_sum(dt, out, x, rows, n, mean ? static_cast<double>(n) : 1.0);
    return;
#else
    fail_without_cuda(name);
#endif
  }
  dispatch_float(dt, name, [&](auto t) {
    using T = decltype(t);
    T* o = static_cast<T*>(out);
    cpu::row_sum_forward(o, static_cast<const T*>(x), rows, n);
    if (mean)
      for (int64_t r = 0; r < rows; ++r) o[r] = static_cast<T>(o[r] / static_cast<T>(n));
    return 0;
  });
}

}  // namespace tgpt::kernels

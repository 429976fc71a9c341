/*
 * mse_loss.cpp — device dispatch of the mean squared error (kernels/mse_loss.h).
 */
#include "kernels/mse_loss.h"

#include "kernels/cpu/mse_loss.h"
#ifdef TGPT_WITH_CUDA
#include "kernels/cuda/mse_loss.h"
#endif

namespace tgpt::kernels {

void mse_loss_forward(Device dev, DType dt, void* loss, const void* a, const void* b, int64_t n) {
  check_kernel_dtype(dev, dt, "mse_loss");
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::mse_forward(dt, loss, a, b, n);
    return;
#else
    fail_without_cuda("mse_loss");
#endif
  }
  dispatch_float(dt, "mse_loss", [&](auto tag) {
    using T = decltype(tag);
    static_cast<T*>(loss)[0] =
        static_cast<T>(cpu::mse_forward<T>(static_cast<const T*>(a), static_cast<const T*>(b), n));
    return 0;
  });
}

void mse_loss_backward(Device dev, DType dt, void* da, void* db, const void* a, const void* b,
                       const void* dloss, int64_t n) {
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::mse_backward(dt, da, db, a, b, dloss, n);
    return;
#else
    fail_without_cuda("mse_loss backward");
#endif
  }
  dispatch_float(dt, "mse_loss backward", [&](auto tag) {
    using T = decltype(tag);
    cpu::mse_backward<T>(static_cast<T*>(da), static_cast<T*>(db), static_cast<const T*>(a),
                         static_cast<const T*>(b), n, load_as_double(dloss, dt, 0));
    return 0;
  });
}

}  // namespace tgpt::kernels

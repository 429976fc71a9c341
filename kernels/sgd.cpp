/*
 * sgd.cpp — device dispatch of the SGD update (kernels/sgd.h).
 */
#include "kernels/sgd.h"

#include "kernels/cpu/sgd.h"

namespace tgpt::kernels {

void sgd_update(Device dev, DType dt, void* param, const void* grad, void* buf, bool first,
                int64_t n, double lr, double weight_decay, double momentum, double dampening,
                bool nesterov) {
  TGPT_CHECK(dev == Device::CPU, "SGD: no CUDA kernel (CUDA parameters are supported by AdamW)");
  dispatch_float(dt, "SGD", [&](auto zero) {
    using T = decltype(zero);
    cpu::sgd_update_cpu<T>(static_cast<T*>(param), static_cast<const T*>(grad),
                           static_cast<T*>(buf), first, n, lr, weight_decay, momentum, dampening,
                           nesterov);
  });
}

}  // namespace tgpt::kernels

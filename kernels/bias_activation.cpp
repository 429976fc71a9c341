/*
 * bias_activation.cpp — device dispatch of the fused bias + activation
 * (kernels/bias_activation.h).
 */
#include "kernels/bias_activation.h"

#include "kernels/cpu/bias_activation.h"
#ifdef TGPT_WITH_CUDA
#include "kernels/cuda/bias_activation.h"
#endif

namespace tgpt::kernels {

const char* bias_activation_name(Activation act) {
  switch (act) {
    case Activation::relu: return "bias_activation(relu)";
    case Activation::gelu: return "bias_activation(gelu)";
    case Activation::quick_gelu: return "bias_activation(quick_gelu)";
  }
  return "bias_activation";
}

void bias_activation_forward(Device dev, DType dt, Activation act, void* out, const void* x,
                             const void* bias, int64_t N, int64_t C) {
  const char* name = bias_activation_name(act);
  check_kernel_dtype(dev, dt, name);
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::bias_activation_forward(dt, act, out, x, bias, N, C);
    return;
#else
    fail_without_cuda(name);
#endif
  }
  dispatch_float(dt, name, [&](auto tag) {
    using T = decltype(tag);
    cpu::bias_activation_forward<T>(static_cast<T*>(out), static_cast<const T*>(x),
                                    static_cast<const T*>(bias), N, C, act);
    return 0;
  });
}

void bias_activation_backward(Device dev, DType dt, Activation act, void* dx, void* dbias,
                              const void* g, const void* x, const void* bias, int64_t N,
                              int64_t C) {
  const char* name = bias_activation_name(act);
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::bias_activation_backward(dt, act, dx, dbias, g, x, bias, N, C);
    return;
#else
    fail_without_cuda(name);
#endif
  }
  dispatch_float(dt, name, [&](auto tag) {
    using T = decltype(tag);
    cpu::bias_activation_backward<T>(static_cast<T*>(dx), static_cast<T*>(dbias),
                                     static_cast<const T*>(g), static_cast<const T*>(x),
                                     static_cast<const T*>(bias), N, C, act);
    return 0;
  });
}

}  // namespace tgpt::kernels

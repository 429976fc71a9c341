/*
 * activation.cpp — device dispatch of the activations (kernels/activation.h).
 */
#include "kernels/activation.h"

#include "kernels/cpu/activation.h"
#ifdef TGPT_WITH_CUDA
#include "kernels/cuda/activation.h"
#endif

namespace tgpt::kernels {

void activation_forward(Device dev, DType dt, Activation act, void* out, const void* x, int64_t n) {
  const char* name = activation_name(act);
  check_kernel_dtype(dev, dt, name);
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::activation_forward(dt, act, out, x, nullptr, n, 0);
    return;
#else
    fail_without_cuda(name);
#endif
  }
  dispatch_float(dt, name, [&](auto tag) {
    using T = decltype(tag);
    T* o = static_cast<T*>(out);
    const T* p = static_cast<const T*>(x);
    switch (act) {
      case Activation::relu: cpu::relu_forward(o, p, n); break;
      case Activation::gelu: cpu::gelu_forward(o, p, n); break;
      case Activation::quick_gelu: cpu::quick_gelu_forward(o, p, n); break;
    }
    return 0;
  });
}

void activation_backward(Device dev, DType dt, Activation act, void* dx, const void* g,
                         const void* x, int64_t n) {
  const char* name = activation_name(act);
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::activation_backward(dt, act, dx, g, x, n);
    return;
#else
    fail_without_cuda(name);
#endif
  }
  dispatch_float(dt, name, [&](auto tag) {
    using T = decltype(tag);
    T* d = static_cast<T*>(dx);
    const T* pg = static_cast<const T*>(g);
    const T* px = static_cast<const T*>(x);
    switch (act) {
      case Activation::relu: cpu::relu_backward(d, pg, px, n); break;
      case Activation::gelu: cpu::gelu_backward(d, pg, px, n); break;
      case Activation::quick_gelu: cpu::quick_gelu_backward(d, pg, px, n); break;
    }
    return 0;
  });
}

}  // namespace tgpt::kernels

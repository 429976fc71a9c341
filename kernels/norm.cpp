/*
 * norm.cpp — device dispatch of the normalisations (kernels/norm.h).
 */
#include "kernels/norm.h"

#include "kernels/cpu/norm.h"
#ifdef TGPT_WITH_CUDA
#include "kernels/cuda/norm.h"
#endif

namespace tgpt::kernels {

DType norm_stats_dtype(Device dev, DType dt) {
  return dev == Device::CPU ? dt : DType::f32;
}

void layernorm_forward(Device dev, DType dt, void* out, void* mean, void* rstd, const void* x,
                       const void* residual, void* sum_out, const void* weight, const void* bias,
                       int64_t N, int64_t C, double eps) {
  const char* op = residual ? "add_layer_norm" : "layer_norm";
  check_kernel_dtype(dev, dt, op);
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::layernorm_forward(dt, out, static_cast<float*>(mean), static_cast<float*>(rstd), x,
                            residual, sum_out, weight, bias, N, C, eps);
    return;
#else
    fail_without_cuda(op);
#endif
  }
  dispatch_float(dt, op, [&](auto t) {
    using T = decltype(t);
    const T* in = static_cast<const T*>(x);
    if (residual) {  // s = x + residual, as the elementwise add computes it
      T* s = static_cast<T*>(sum_out);
      const T* r = static_cast<const T*>(residual);
      for (int64_t i = 0; i < N * C; ++i) s[i] = in[i] + r[i];
      in = s;
    }
    cpu::layernorm_forward_cpu<T>(static_cast<T*>(out), static_cast<T*>(mean),
                                  static_cast<T*>(rstd), in, static_cast<const T*>(weight),
                                  static_cast<const T*>(bias), N, C, eps);
    return 0;
  });
}

void layernorm_backward(Device dev, DType dt, void* dx, void* dweight, void* dbias,
                        const void* dout, const void* x, const void* weight, const void* mean,
                        const void* rstd, int64_t N, int64_t C) {
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::layernorm_backward(dt, dx, dweight, dbias, dout, x, weight,
                             static_cast<const float*>(mean), static_cast<const float*>(rstd), N,
                             C);
    return;
#else
    fail_without_cuda("layer_norm backward");
#endif
  }
  dispatch_float(dt, "layer_norm backward", [&](auto t) {
    using T = decltype(t);
    cpu::layernorm_backward_cpu<T>(static_cast<T*>(dx), static_cast<T*>(dweight),
                                   static_cast<T*>(dbias), static_cast<const T*>(dout),
                                   static_cast<const T*>(x), static_cast<const T*>(weight),
                                   static_cast<const T*>(mean), static_cast<const T*>(rstd), N, C);
    return 0;
  });
}

void l2_normalize_forward(Device dev, DType dt, void* out, void* norm, const void* x, int64_t N,
                          int64_t C, double eps) {
  check_kernel_dtype(dev, dt, "l2_normalize");
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::l2_normalize_forward(dt, out, static_cast<float*>(norm), x, N, C, eps);
    return;
#else
    fail_without_cuda("l2_normalize");
#endif
  }
  if (C == 0) return;
  dispatch_float(dt, "l2_normalize", [&](auto t) {
    using T = decltype(t);
    cpu::l2_normalize_forward_cpu<T>(static_cast<T*>(out), static_cast<T*>(norm),
                                     static_cast<const T*>(x), N, C, eps);
    return 0;
  });
}

void l2_normalize_backward(Device dev, DType dt, void* dx, const void* dout, const void* x,
                           const void* norm, int64_t N, int64_t C, double eps) {
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::l2_normalize_backward(dt, dx, dout, x, static_cast<const float*>(norm), N, C, eps);
    return;
#else
    fail_without_cuda("l2_normalize backward");
#endif
  }
  dispatch_float(dt, "l2_normalize backward", [&](auto t) {
    using T = decltype(t);
    cpu::l2_normalize_backward_cpu<T>(static_cast<T*>(dx), static_cast<const T*>(dout),
                                      static_cast<const T*>(x), static_cast<const T*>(norm), N, C,
                                      eps);
    return 0;
  });
}

bool softmax_saves_output(Device dev) {
  return dev == Device::CPU;
}

void softmax_forward(Device dev, DType dt, bool log, void* out, float* lse, const void* x,
                     int64_t N, int64_t C) {
  const char* op = log ? "log_softmax" : "softmax";
  check_kernel_dtype(dev, dt, op);
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::softmax_forward(dt, log, out, lse, x, N, C);
    return;
#else
    fail_without_cuda(op);
#endif
  }
  if (C == 0) return;
  dispatch_float(dt, op, [&](auto t) {
    using T = decltype(t);
    if (log)
      cpu::log_softmax_forward_cpu<T>(static_cast<T*>(out), static_cast<const T*>(x), N, C);
    else
      cpu::softmax_forward_cpu<T>(static_cast<T*>(out), static_cast<const T*>(x), N, C);
    return 0;
  });
}

void softmax_backward(Device dev, DType dt, bool log, void* dx, const void* dout, const void* out,
                      const void* x, const float* lse, int64_t N, int64_t C) {
  const char* op = log ? "log_softmax backward" : "softmax backward";
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::softmax_backward(dt, log, dx, dout, x, lse, N, C);
    return;
#else
    fail_without_cuda(op);
#endif
  }
  dispatch_float(dt, op, [&](auto t) {
    using T = decltype(t);
    if (log)
      cpu::log_softmax_backward_cpu<T>(static_cast<T*>(dx), static_cast<const T*>(dout),
                                       static_cast<const T*>(out), N, C);
    else
      cpu::softmax_backward_cpu<T>(static_cast<T*>(dx), static_cast<const T*>(dout),
                                   static_cast<const T*>(out), N, C);
    return 0;
  });
}

}  // namespace tgpt::kernels

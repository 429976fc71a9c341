/*
 * cosine_loss.cpp — device dispatch of the cosine-logit loss (kernels/cosine_loss.h).
 */
#include "kernels/cosine_loss.h"

#include <vector>

#include "kernels/cpu/cosine_loss.h"
#ifdef TGPT_WITH_CUDA
#include "kernels/cuda/cosine_loss.h"
#endif

namespace tgpt::kernels {

DType cosine_loss_stats_dtype(Device dev, DType dt) {
  return dev == Device::CPU ? dt : DType::f32;
}

bool cosine_loss_saves_normalized(Device dev) {
  return dev == Device::CPU;
}

void cosine_logit_loss_forward(Device dev, DType dt, void* loss, void* norm, void* prob, void* xn,
                               const void* x, const void* w, const int64_t* target, int64_t N,
                               int64_t F, int64_t K, double scale, double eps) {
  const char* op = "cosine_logit_loss";
  check_kernel_dtype(dev, dt, op);
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    Scratch row_loss(dev, static_cast<size_t>(N) * sizeof(float));
    cuda::cosine_logit_loss_forward(loss, static_cast<float*>(norm), static_cast<float*>(prob),
                                    row_loss.as<float>(), x, w, dt, target, N, F, K,
                                    static_cast<float>(scale), static_cast<float>(eps));
    return;
#else
    fail_without_cuda(op);
#endif
  }
  std::vector<double> row_loss(static_cast<size_t>(N));
  dispatch_float(dt, op, [&](auto t) {
    using T = decltype(t);
    cpu::cosine_logit_loss_forward_cpu<T>(
        row_loss.data(), static_cast<T*>(xn), static_cast<T*>(norm), static_cast<T*>(prob),
        static_cast<const T*>(x), static_cast<const T*>(w), target, N, F, K, scale, eps);
    return 0;
  });
  double total = 0.0;
  for (double l : row_loss) total += l;
  store_from_double(loss, dt, 0, total / static_cast<double>(N));
}

void cosine_logit_loss_backward(Device dev, DType dt, void* dx, void* dw, const void* prob,
                                const void* xn, const void* norm, const void* x, const void* w,
                                const int64_t* target, int64_t N, int64_t F, int64_t K,
                                double scale, double eps, const void* dloss, DType dloss_dt) {
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    Scratch dxn(dev, dx ? static_cast<size_t>(N * F) * sizeof(float) : 0);
    cuda::cosine_logit_loss_backward(dx, dw, dxn.as<float>(), static_cast<const float*>(prob),
                                     static_cast<const float*>(norm), x, w, dt, target, N, F, K,
                                     static_cast<float>(scale), static_cast<float>(eps), dloss,
                                     dloss_dt);
    return;
#else
    fail_without_cuda("cosine_logit_loss backward");
#endif
  }
  const double g = load_as_double(dloss, dloss_dt, 0);
  dispatch_float(dt, "cosine_logit_loss backward", [&](auto t) {
    using T = decltype(t);
    cpu::cosine_logit_loss_backward_cpu<T>(
        static_cast<T*>(dx), static_cast<T*>(dw), static_cast<const T*>(prob),
        static_cast<const T*>(xn), static_cast<const T*>(norm), static_cast<const T*>(x),
        static_cast<const T*>(w), target, N, F, K, scale, eps, g);
    return 0;
  });
}

}  // namespace tgpt::kernels

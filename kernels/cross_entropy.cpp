/*
 * cross_entropy.cpp — device dispatch of the cross-entropy on logits (kernels/cross_entropy.h).
 */
#include "kernels/cross_entropy.h"

#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/cross_entropy.h"
#ifdef TGPT_WITH_CUDA
#include "kernels/cuda/cross_entropy.h"
#endif

namespace tgpt::kernels {

DType cross_entropy_lse_dtype(Device dev) {
  return dev == Device::CPU ? DType::f64 : DType::f32;
}

void cross_entropy_forward(Device dev, DType dt, void* loss, void* lse, const void* logits,
                           const int64_t* target, int64_t N, int64_t V, double label_smoothing,
                           int64_t ignore_index, int64_t count) {
  check_kernel_dtype(dev, dt, "cross_entropy");
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::cross_entropy_forward(dt, loss, static_cast<float*>(lse), logits, target, N, V,
                                label_smoothing, ignore_index, count);
    return;
#else
    fail_without_cuda("cross_entropy");
#endif
  }
  std::vector<double> row_loss(static_cast<size_t>(N));
  dispatch_float(dt, "cross_entropy", [&](auto t) {
    using T = decltype(t);
    cpu::cross_entropy_forward_cpu<T>(row_loss.data(), static_cast<double*>(lse),
                                      static_cast<const T*>(logits), target, N, V, label_smoothing,
                                      ignore_index);
    return 0;
  });
  double total = 0.0;  // summed in row order: independent of the thread count
  for (double l : row_loss) total += l;
  store_from_double(
      loss, dt, 0,
      count > 0 ? total / static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN());
}

void cross_entropy_backward(Device dev, DType dt, void* dlogits, const void* logits,
                            const void* lse, const int64_t* target, const void* dloss, int64_t N,
                            int64_t V, double label_smoothing, int64_t ignore_index,
                            int64_t count) {
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::cross_entropy_backward(dt, dlogits, logits, static_cast<const float*>(lse), target, dloss,
                                 N, V, label_smoothing, ignore_index, count);
    return;
#else
    fail_without_cuda("cross_entropy backward");
#endif
  }
  if (N * V > 0) std::memset(dlogits, 0, static_cast<size_t>(N * V) * dtype_size(dt));
  if (count == 0) return;
  const double g = load_as_double(dloss, dt, 0);
  dispatch_float(dt, "cross_entropy backward", [&](auto t) {
    using T = decltype(t);
    cpu::cross_entropy_backward_cpu<T>(static_cast<T*>(dlogits), static_cast<const T*>(logits),
                                       static_cast<const double*>(lse), target, N, V,
                                       label_smoothing, ignore_index, g, count);
    return 0;
  });
}

}  // namespace tgpt::kernels

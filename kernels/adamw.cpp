/*
 * adamw.cpp — device dispatch of the AdamW update (kernels/adamw.h).
 */
#include "kernels/adamw.h"

#include "kernels/cpu/adamw.h"

namespace tgpt::kernels {

void adamw_update(Device dev, DType dt, void* param, const void* grad, void* exp_avg,
                  void* exp_avg_sq, int64_t n, double lr, double beta1, double beta2, double eps,
                  double weight_decay, int64_t step) {
  TGPT_CHECK(dev == Device::CPU, "AdamW: CUDA tensors are updated by adamw_multi_tensor");
  dispatch_float(dt, "AdamW", [&](auto zero) {
    using T = decltype(zero);
    cpu::adamw_update_cpu<T>(static_cast<T*>(param), static_cast<const T*>(grad),
                             static_cast<T*>(exp_avg), static_cast<T*>(exp_avg_sq), n, lr, beta1,
                             beta2, eps, weight_decay, step);
  });
}

void adamw_multi_tensor(Device dev, const std::vector<AdamWTensor>& tensors, double lr,
                        double beta1, double beta2, double eps, double weight_decay) {
  TGPT_CHECK(dev == Device::CUDA, "AdamW: the multi-tensor update runs on CUDA tensors");
  if (tensors.empty()) return;
#ifdef TGPT_WITH_CUDA
  cuda::adamw_multi_tensor(tensors, lr, beta1, beta2, eps, weight_decay);
#else
  (void)lr, (void)beta1, (void)beta2, (void)eps, (void)weight_decay;
  fail_without_cuda("AdamW");
#endif
}

}  // namespace tgpt::kernels

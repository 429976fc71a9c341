/*
 * clip_contrastive_loss.cpp — device dispatch of CLIP's contrastive loss
 * (kernels/clip_contrastive_loss.h).
 */
#include "kernels/clip_contrastive_loss.h"

#include <vector>

#include "kernels/cpu/clip_contrastive_loss.h"
#ifdef TGPT_WITH_CUDA
#include "kernels/cuda/clip_contrastive_loss.h"
#endif

namespace tgpt::kernels {

DType clip_contrastive_stats_dtype(Device dev, DType dt) {
  return dev == Device::CPU ? dt : DType::f32;
}

bool clip_contrastive_saves_lse(Device dev) {
  return dev != Device::CPU;
}

void clip_contrastive_loss_forward(Device dev, DType dt, void* loss, void* an, void* bn,
                                   void* inorm, void* tnorm, void* logits, void* lse_row,
                                   void* lse_col, const void* img, const void* txt,
                                   const void* param, DType param_dt, int64_t N, int64_t E,
                                   double eps) {
  const char* op = "clip_contrastive_loss";
  check_kernel_dtype(dev, dt, op);
  check_kernel_dtype(dev, param_dt, op);
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::clip_contrastive_loss_forward(
        loss, dt, static_cast<float*>(an), static_cast<float*>(bn), static_cast<float*>(inorm),
        static_cast<float*>(tnorm), static_cast<float*>(logits), static_cast<float*>(lse_row),
        static_cast<float*>(lse_col), img, txt, param, param_dt, N, E, static_cast<float>(eps));
    return;
#else
    fail_without_cuda(op);
#endif
  }
  const double scale = cpu::clip_logit_scale(load_as_double(param, param_dt, 0));
  std::vector<double> row_loss(static_cast<size_t>(N));
  dispatch_float(dt, op, [&](auto t) {
    using T = decltype(t);
    cpu::clip_contrastive_loss_forward_cpu<T>(
        row_loss.data(), static_cast<T*>(an), static_cast<T*>(bn), static_cast<T*>(inorm),
        static_cast<T*>(tnorm), static_cast<T*>(logits), static_cast<const T*>(img),
        static_cast<const T*>(txt), N, E, scale, eps);
    return 0;
  });
  double total = 0.0;
  for (double l : row_loss) total += l;
  store_from_double(loss, dt, 0, total / (2.0 * static_cast<double>(N)));
}

void clip_contrastive_loss_backward(Device dev, DType dt, void* dimg, void* dtxt, void* dparam,
                                    const void* an, const void* bn, const void* inorm,
                                    const void* tnorm, const void* logits, const void* lse_row,
                                    const void* lse_col, const void* img, const void* txt,
                                    const void* param, DType param_dt, int64_t N, int64_t E,
                                    double eps, const void* dloss, DType dloss_dt) {
  const char* op = "clip_contrastive_loss backward";
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    Scratch dz(dev, static_cast<size_t>(N * N) * sizeof(float));
    Scratch dn(dev, (dimg || dtxt) ? static_cast<size_t>(N * E) * sizeof(float) : 0);
    cuda::clip_contrastive_loss_backward(
        dimg, dtxt, dparam, dt, dz.as<float>(), dn.as<float>(), static_cast<const float*>(an),
        static_cast<const float*>(bn), static_cast<const float*>(inorm),
        static_cast<const float*>(tnorm), static_cast<const float*>(logits),
        static_cast<const float*>(lse_row), static_cast<const float*>(lse_col), param, param_dt, N,
        E, static_cast<float>(eps), dloss, dloss_dt);
    return;
#else
    fail_without_cuda(op);
#endif
  }
  const double p = load_as_double(param, param_dt, 0);
  const double scale = cpu::clip_logit_scale(p);
  const bool clamped = p > cpu::kClipLogitScaleMax;
  const double g = load_as_double(dloss, dloss_dt, 0);
  double dp = 0.0;
  dispatch_float(dt, op, [&](auto t) {
    using T = decltype(t);
    cpu::clip_contrastive_loss_backward_cpu<T>(
        static_cast<T*>(dimg), static_cast<T*>(dtxt), dparam ? &dp : nullptr,
        static_cast<const T*>(an), static_cast<const T*>(bn), static_cast<const T*>(inorm),
        static_cast<const T*>(tnorm), static_cast<const T*>(logits), static_cast<const T*>(img),
        static_cast<const T*>(txt), N, E, scale, clamped, eps, g);
    return 0;
  });
  if (dparam) store_from_double(dparam, param_dt, 0, dp);
}

}  // namespace tgpt::kernels

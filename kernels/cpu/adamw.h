/*
 * adamw.h — CPU kernel for one AdamW update of one parameter tensor (torch.optim.AdamW semantics,
 * single-tensor path, no amsgrad).
 *
 * Scalars are computed in double exactly as torch's Python code computes them (lr * weight_decay,
 * 1 - beta^step, lr / bias_correction1, sqrt(bias_correction2)) and then rounded to T once, as
 * torch does when it passes a Python float to a float tensor op. Per element, in torch's order:
 *
 *   p  = p * (1 - lr*wd)
 *   m  = m*beta1 + (1-beta1)*g              (torch: exp_avg.mul_(b1).add_(g, alpha=1-b1))
 *   v  = v*beta2 + ((1-beta2)*g)*g          (torch: exp_avg_sq.mul_(b2).addcmul_(g, g, 1-b2))
 *   d  = sqrt(v) / sqrt(bias_correction2) + eps
 *   p  = p + (-step_size * m) / d           (torch: p.addcdiv_(m, d, value=-step_size))
 *
 * The additions in the m and v updates are fused multiply-adds, because PyTorch's vectorised CPU
 * kernels (AVX2/AVX512 add with alpha, addcmul) compute them that way; with this ordering the
 * results are bit-identical to torch 1.13 on an AVX2 CPU. Elements are independent, so chunks
 * run in parallel and the result does not depend on the thread count.
 */
#pragma once

#include <cmath>
#include <cstdint>

#include "base/parallel.h"

namespace tgpt::cpu {

// param, exp_avg, exp_avg_sq: [n] updated in place; grad: [n]. step is the 1-based step count of
// this parameter after incrementing (torch's state['step']).
template <typename T>
void adamw_update_cpu(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, int64_t n, double lr,
                      double beta1, double beta2, double eps, double weight_decay, int64_t step) {
  const double bias_correction1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bias_correction2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  const double step_size = lr / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);

  const T decay = static_cast<T>(1.0 - lr * weight_decay);
  const T b1 = static_cast<T>(beta1);
  const T one_minus_b1 = static_cast<T>(1.0 - beta1);
  const T b2 = static_cast<T>(beta2);
  const T one_minus_b2 = static_cast<T>(1.0 - beta2);
  const T bc2_sqrt = static_cast<T>(bias_correction2_sqrt);
  const T eps_t = static_cast<T>(eps);
  const T neg_step_size = static_cast<T>(-step_size);

  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_for(chunks, [&](int64_t c) {
    const int64_t begin = c * kChunk;
    const int64_t end = n - begin < kChunk ? n : begin + kChunk;
    for (int64_t i = begin; i < end; ++i) {
      const T g = grad[i];
      T p = param[i] * decay;
      const T m = std::fma(one_minus_b1, g, exp_avg[i] * b1);
      const T v = std::fma(one_minus_b2 * g, g, exp_avg_sq[i] * b2);
      const T denom = std::sqrt(v) / bc2_sqrt + eps_t;
      p = p + (neg_step_size * m) / denom;
      exp_avg[i] = m;
      exp_avg_sq[i] = v;
      param[i] = p;
    }
  });
}

}  // namespace tgpt::cpu

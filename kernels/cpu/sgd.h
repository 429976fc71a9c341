/*
 * sgd.h — CPU kernel for one SGD update of one parameter tensor (torch.optim.SGD semantics,
 * single-tensor path: weight decay, momentum with dampening, Nesterov).
 *
 * Like kernels/cpu/adamw.h, each "a.add(b, alpha=s)" of torch's code is one fused multiply-add
 * b*s + a, because that is how PyTorch's vectorised CPU add kernel evaluates it:
 *
 *   d   = g + p*wd                              (d_p.add(param, alpha=wd))
 *   buf = d on the first step, else d*(1-dampening) + buf*momentum
 *   d   = nesterov ? d + buf*momentum : buf
 *   p   = p + d*(-lr)                           (param.add_(d_p, alpha=-lr))
 *
 * T is float or double. Elements are independent, so chunks run in parallel and the result does
 * not depend on the thread count.
 */
#pragma once

#include <cmath>
#include <cstdint>

#include "base/parallel.h"

namespace tgpt::cpu {

// param: [n] updated in place; grad: [n]; buf: the momentum buffer [n] (unused, may be null, when
// momentum == 0); first == true initialises it to the gradient.
template <typename T>
void sgd_update_cpu(T* param, const T* grad, T* buf, bool first, int64_t n, double lr,
                    double weight_decay, double momentum_d, double dampening, bool nesterov) {
  const T wd = static_cast<T>(weight_decay);
  const T momentum = static_cast<T>(momentum_d);
  const T one_minus_dampening = static_cast<T>(1.0 - dampening);
  const T neg_lr = static_cast<T>(-lr);
  const bool use_wd = weight_decay != 0;
  const bool use_momentum = momentum_d != 0;
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_for(chunks, [&](int64_t c) {
    const int64_t begin = c * kChunk;
    const int64_t end = n - begin < kChunk ? n : begin + kChunk;
    for (int64_t i = begin; i < end; ++i) {
      const T p = param[i];
      T d = grad[i];
      if (use_wd) d = std::fma(p, wd, d);  // d_p = d_p.add(param, alpha=wd)
      if (use_momentum) {
        // buf = clone(d_p) on the first step, else buf.mul_(momentum).add_(d_p, alpha=1-damp)
        const T b = first ? d : std::fma(d, one_minus_dampening, buf[i] * momentum);
        buf[i] = b;
        d = nesterov ? std::fma(b, momentum, d) : b;  // d_p.add(buf, alpha=momentum) or buf
      }
      param[i] = std::fma(d, neg_lr, p);  // param.add_(d_p, alpha=-lr)
    }
  });
}

}  // namespace tgpt::cpu

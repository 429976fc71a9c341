/*
 * softmax.h — CPU kernels for softmax and log-softmax over the last dim of [N, C].
 *
 * T is float or double. Each row subtracts its max before exponentiating; sums are accumulated in
 * double. One thread per row, so results do not depend on the thread count.
 */
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "base/parallel.h"

namespace tgpt::cpu {

// Returns log(sum_c exp(x[c])) of one row of C values, computed as max + log(sum exp(x - max)).
template <typename T>
double row_logsumexp(const T* x, int64_t C) {
  double mx = -INFINITY;
  for (int64_t c = 0; c < C; ++c) mx = std::max(mx, static_cast<double>(x[c]));
  if (std::isinf(mx)) return mx;  // all -inf (or a +inf present)
  double s = 0.0;
  for (int64_t c = 0; c < C; ++c) s += std::exp(static_cast<double>(x[c]) - mx);
  return mx + std::log(s);
}

// inp [N, C] -> out [N, C] = softmax over the last dim.
template <typename T>
void softmax_forward_cpu(T* out, const T* inp, int64_t N, int64_t C) {
  parallel_for(
      N,
      [&](int64_t n) {
        const T* x = inp + n * C;
        T* y = out + n * C;
        double mx = -INFINITY;
        for (int64_t c = 0; c < C; ++c) mx = std::max(mx, static_cast<double>(x[c]));
        double s = 0.0;
        for (int64_t c = 0; c < C; ++c) s += std::exp(static_cast<double>(x[c]) - mx);
        double inv = 1.0 / s;
        for (int64_t c = 0; c < C; ++c)
          y[c] = static_cast<T>(std::exp(static_cast<double>(x[c]) - mx) * inv);
      },
      N * C >= 4096 ? 2 : N + 1);
}

// dout, out [N, C] -> dinp [N, C] = out * (dout - sum_c(dout * out)).
template <typename T>
void softmax_backward_cpu(T* dinp, const T* dout, const T* out, int64_t N, int64_t C) {
  parallel_for(
      N,
      [&](int64_t n) {
        const T* dy = dout + n * C;
        const T* y = out + n * C;
        T* dx = dinp + n * C;
        double dot = 0.0;
        for (int64_t c = 0; c < C; ++c)
          dot += static_cast<double>(dy[c]) * static_cast<double>(y[c]);
        for (int64_t c = 0; c < C; ++c)
          dx[c] = static_cast<T>(static_cast<double>(y[c]) * (static_cast<double>(dy[c]) - dot));
      },
      N * C >= 4096 ? 2 : N + 1);
}

// inp [N, C] -> out [N, C] = x - logsumexp(x) over the last dim.
template <typename T>
void log_softmax_forward_cpu(T* out, const T* inp, int64_t N, int64_t C) {
  parallel_for(
      N,
      [&](int64_t n) {
        const T* x = inp + n * C;
        T* y = out + n * C;
        double lse = row_logsumexp(x, C);
        for (int64_t c = 0; c < C; ++c) y[c] = static_cast<T>(static_cast<double>(x[c]) - lse);
      },
      N * C >= 4096 ? 2 : N + 1);
}

// dout, out [N, C] -> dinp [N, C] = dout - exp(out) * sum_c(dout).
template <typename T>
void log_softmax_backward_cpu(T* dinp, const T* dout, const T* out, int64_t N, int64_t C) {
  parallel_for(
      N,
      [&](int64_t n) {
        const T* dy = dout + n * C;
        const T* y = out + n * C;
        T* dx = dinp + n * C;
        double s = 0.0;
        for (int64_t c = 0; c < C; ++c) s += static_cast<double>(dy[c]);
        for (int64_t c = 0; c < C; ++c)
          dx[c] =
              static_cast<T>(static_cast<double>(dy[c]) - std::exp(static_cast<double>(y[c])) * s);
      },
      N * C >= 4096 ? 2 : N + 1);
}

}  // namespace tgpt::cpu

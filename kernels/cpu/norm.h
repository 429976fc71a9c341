/*
 * norm.h — CPU kernels for the normalisations over the last dim of [N, C]: LayerNorm, L2
 * normalisation, softmax and log-softmax.
 *
 * T is float or double. Row statistics are accumulated in double (cheap, and it keeps f32 results
 * within an ulp or two of the exact value). Rows are independent and each is processed by one
 * thread; LayerNorm's parameter gradients are reduced over rows by one thread per column block,
 * in row order, so every result is bit-identical whatever the thread count. Softmax rows subtract
 * their max before exponentiating.
 */
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "base/parallel.h"

namespace tgpt::cpu {

// inp [N, C], weight/bias [C] or null -> out [N, C]; mean/rstd [N] saved for backward.
// out = (inp - mean) * rstd * weight + bias, rstd = 1 / sqrt(biased var + eps).
template <typename T>
void layernorm_forward_cpu(T* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias,
                           int64_t N, int64_t C, double eps) {
  parallel_for(
      N,
      [&](int64_t n) {
        const T* x = inp + n * C;
        double s = 0.0;
        for (int64_t c = 0; c < C; ++c) s += static_cast<double>(x[c]);
        double m = s / static_cast<double>(C);
        double v = 0.0;
        for (int64_t c = 0; c < C; ++c) {
          double d = static_cast<double>(x[c]) - m;
          v += d * d;
        }
        v /= static_cast<double>(C);
        double r = 1.0 / std::sqrt(v + eps);
        T* o = out + n * C;
        for (int64_t c = 0; c < C; ++c) {
          double y = (static_cast<double>(x[c]) - m) * r;
          if (weight) y *= static_cast<double>(weight[c]);
          if (bias) y += static_cast<double>(bias[c]);
          o[c] = static_cast<T>(y);
        }
        mean[n] = static_cast<T>(m);
        rstd[n] = static_cast<T>(r);
      },
      N * C >= 4096 ? 2 : N + 1);
}

// dout [N, C] -> dinp [N, C] (written, may be null), dweight/dbias [C] (written, may be null).
// With xhat = (inp - mean) * rstd and g = dout * weight:
//   dinp = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)), dweight = sum_n dout * xhat,
//   dbias = sum_n dout.
template <typename T>
void layernorm_backward_cpu(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,
                            const T* weight, const T* mean, const T* rstd, int64_t N, int64_t C) {
  int64_t min_par = N * C >= 4096 ? 2 : N + 1;
  if (dinp) {
    parallel_for(
        N,
        [&](int64_t n) {
          const T* x = inp + n * C;
          const T* dy = dout + n * C;
          double m = static_cast<double>(mean[n]), r = static_cast<double>(rstd[n]);
          double g_mean = 0.0, gx_mean = 0.0;
          for (int64_t c = 0; c < C; ++c) {
            double g = static_cast<double>(dy[c]) * (weight ? static_cast<double>(weight[c]) : 1.0);
            double xhat = (static_cast<double>(x[c]) - m) * r;
            g_mean += g;
            gx_mean += g * xhat;
          }
          g_mean /= static_cast<double>(C);
          gx_mean /= static_cast<double>(C);
          T* dx = dinp + n * C;
          for (int64_t c = 0; c < C; ++c) {
            double g = static_cast<double>(dy[c]) * (weight ? static_cast<double>(weight[c]) : 1.0);
            double xhat = (static_cast<double>(x[c]) - m) * r;
            dx[c] = static_cast<T>(r * (g - g_mean - xhat * gx_mean));
          }
        },
        min_par);
  }
  if (dweight || dbias) {
    constexpr int64_t kBlock = 64;
    int64_t blocks = (C + kBlock - 1) / kBlock;
    parallel_for(
        blocks,
        [&](int64_t blk) {
          int64_t c0 = blk * kBlock, c1 = std::min(C, c0 + kBlock);
          double dw[kBlock] = {}, db[kBlock] = {};
          for (int64_t n = 0; n < N; ++n) {
            const T* x = inp + n * C;
            const T* dy = dout + n * C;
            double m = static_cast<double>(mean[n]), r = static_cast<double>(rstd[n]);
            for (int64_t c = c0; c < c1; ++c) {
              double g = static_cast<double>(dy[c]);
              dw[c - c0] += g * (static_cast<double>(x[c]) - m) * r;
              db[c - c0] += g;
            }
          }
          for (int64_t c = c0; c < c1; ++c) {
            if (dweight) dweight[c] = static_cast<T>(dw[c - c0]);
            if (dbias) dbias[c] = static_cast<T>(db[c - c0]);
          }
        },
        N * C >= 4096 ? 2 : blocks + 1);
  }
}

// inp [N, C] -> out [N, C] = inp / max(||inp||_2, eps) per row; norm [N] saved for backward.
template <typename T>
void l2_normalize_forward_cpu(T* out, T* norm, const T* inp, int64_t N, int64_t C, double eps) {
  parallel_for(
      N,
      [&](int64_t n) {
        const T* x = inp + n * C;
        double s = 0.0;
        for (int64_t c = 0; c < C; ++c) s += static_cast<double>(x[c]) * static_cast<double>(x[c]);
        double nrm = std::sqrt(s);
        double denom = std::max(nrm, eps);
        T* o = out + n * C;
        for (int64_t c = 0; c < C; ++c) o[c] = static_cast<T>(static_cast<double>(x[c]) / denom);
        norm[n] = static_cast<T>(nrm);
      },
      N * C >= 4096 ? 2 : N + 1);
}

// dout [N, C] -> dinp [N, C] with n = max(||x||, eps) and y = x / n (the forward output):
//   dinp = (dout - y (dout . y)) / n   where ||x|| >= eps (PyTorch's clamp_min passes the
//                                      gradient through the norm at equality),
//   dinp = dout / n                    where ||x|| < eps (n = eps is a constant there).
// Written with y rather than as dout/n - x (dout . x)/n³ so that the radial part cancels exactly:
// a one-element row (y = ±1) gets a gradient of exactly 0.
template <typename T>
void l2_normalize_backward_cpu(T* dinp, const T* dout, const T* inp, const T* norm, int64_t N,
                               int64_t C, double eps) {
  parallel_for(
      N,
      [&](int64_t n) {
        const T* x = inp + n * C;
        const T* dy = dout + n * C;
        T* dx = dinp + n * C;
        const double nrm = static_cast<double>(norm[n]);
        const double den = std::max(nrm, eps);
        if (nrm >= eps && nrm > 0.0) {
          double dot = 0.0;  // dout . y
          for (int64_t c = 0; c < C; ++c)
            dot += static_cast<double>(dy[c]) * (static_cast<double>(x[c]) / den);
          for (int64_t c = 0; c < C; ++c) {
            const double y = static_cast<double>(x[c]) / den;
            dx[c] = static_cast<T>((static_cast<double>(dy[c]) - y * dot) / den);
          }
        } else {
          for (int64_t c = 0; c < C; ++c) dx[c] = static_cast<T>(static_cast<double>(dy[c]) / den);
        }
      },
      N * C >= 4096 ? 2 : N + 1);
}

// ---- softmax / log_softmax ------------------------------------------------------------------

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

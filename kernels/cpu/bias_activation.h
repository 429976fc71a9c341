/*
 * bias_activation.h — CPU kernels for the fused bias + activation out = act(x + bias) over rows
 * x [N, C], bias [C], forward and backward (dx and the deterministic column sum dbias).
 *
 * T is float or double. The activation math is kernels/cpu/activation.h's (relu, exact erf
 * gelu, quick_gelu), written per element here. Forward and dx are parallel over rows; dbias is
 * parallel over 64-column blocks, each summing its columns over all rows in row order, so the
 * results are bit-identical for any thread count.
 */
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "base/activation.h"
#include "base/parallel.h"
#include "kernels/cpu/fast_exp.h"

namespace tgpt::cpu {

// act(v) and d act(v) / dv for a compile-time activation A, so that each row loop is one inlined
// expression the compiler vectorises (a switch per element would keep it scalar).
template <Activation A, typename T>
inline T bias_act_value(T v) {
  if constexpr (A == Activation::relu) return v > T(0) ? v : T(0);
  if constexpr (A == Activation::gelu)
    return v * T(0.5) * (T(1) + std::erf(v * T(0.70710678118654752440)));
  if constexpr (A == Activation::quick_gelu) return v * (T(1) / (T(1) + exp_fast(T(-1.702) * v)));
}

template <Activation A, typename T>
inline T bias_act_derivative(T v) {
  if constexpr (A == Activation::relu) return v > T(0) ? T(1) : T(0);
  if constexpr (A == Activation::gelu) {
    const T cdf = T(0.5) * (T(1) + std::erf(v * T(0.70710678118654752440)));
    const T pdf = T(0.39894228040143267794) * std::exp(T(-0.5) * v * v);
    return cdf + v * pdf;
  }
  if constexpr (A == Activation::quick_gelu) {
    const T s = T(1) / (T(1) + exp_fast(T(-1.702) * v));
    return s + T(1.702) * v * s * (T(1) - s);
  }
}

// Calls f(std::integral_constant<Activation, a>{}): the runtime activation as a compile-time one.
template <typename F>
void with_activation(Activation a, F&& f) {
  switch (a) {
    case Activation::relu: f(std::integral_constant<Activation, Activation::relu>{}); return;
    case Activation::gelu: f(std::integral_constant<Activation, Activation::gelu>{}); return;
    case Activation::quick_gelu:
      f(std::integral_constant<Activation, Activation::quick_gelu>{});
      return;
  }
}

// out [N, C] = act(x + bias)
template <typename T>
void bias_activation_forward(T* out, const T* x, const T* bias, int64_t N, int64_t C, Activation a) {
  with_activation(a, [&](auto act) {
    constexpr Activation A = decltype(act)::value;
    parallel_for(N, [&](int64_t r) {
      const T* xr = x + r * C;
      T* o = out + r * C;
      for (int64_t c = 0; c < C; ++c) o[c] = bias_act_value<A>(xr[c] + bias[c]);
    });
  });
}

// dx [N, C] = g * act'(x + bias) (dx may be null); dbias [C] = sum over rows of that product
// (may be null).
template <typename T>
void bias_activation_backward(T* dx, T* dbias, const T* g, const T* x, const T* bias, int64_t N,
                              int64_t C, Activation a) {
  with_activation(a, [&](auto act) {
    constexpr Activation A = decltype(act)::value;
    if (dx) {
      parallel_for(N, [&](int64_t r) {
        const T *xr = x + r * C, *gr = g + r * C;
        T* d = dx + r * C;
        for (int64_t c = 0; c < C; ++c) d[c] = gr[c] * bias_act_derivative<A>(xr[c] + bias[c]);
      });
    }
    if (dbias) {
      constexpr int64_t kCols = 64;
      parallel_for((C + kCols - 1) / kCols, [&](int64_t blk) {
        const int64_t c0 = blk * kCols, c1 = c0 + kCols < C ? c0 + kCols : C;
        T acc[kCols] = {};
        for (int64_t r = 0; r < N; ++r) {
          const T *xr = x + r * C, *gr = g + r * C;
          for (int64_t c = c0; c < c1; ++c)
            acc[c - c0] += gr[c] * bias_act_derivative<A>(xr[c] + bias[c]);
        }
        for (int64_t c = c0; c < c1; ++c) dbias[c] = acc[c - c0];
      });
    }
  });
}

}  // namespace tgpt::cpu

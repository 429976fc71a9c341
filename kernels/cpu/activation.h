/*
 * activation.h — CPU kernels for relu, gelu (exact, erf) and quick_gelu (x * sigmoid(1.702 x)),
 * forward and backward, on n contiguous elements.
 *
 * T is float or double. Work is split into fixed 4096-element chunks with parallel_for; every
 * element is computed by one thread with the same arithmetic, so results are bit-identical for
 * any thread count.
 */
#pragma once

#include <cmath>
#include <cstdint>

#include "base/parallel.h"
#include "kernels/cpu/fast_exp.h"

namespace tgpt::cpu {

// Calls f(i) for i in [0, n) in 4096-element chunks spread over the threads.
template <typename F>
void for_each_chunked(int64_t n, F f) {
  constexpr int64_t kChunk = 4096;
  int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_for(chunks, [&](int64_t c) {
    int64_t e = c * kChunk + kChunk < n ? c * kChunk + kChunk : n;
    for (int64_t i = c * kChunk; i < e; ++i) f(i);
  });
}

// ---- relu: max(x, 0); gradient 1 where x > 0, else 0 (as PyTorch) ----------------------------
template <typename T>
void relu_forward(T* out, const T* x, int64_t n) {
  for_each_chunked(n, [&](int64_t i) { out[i] = x[i] > T(0) ? x[i] : T(0); });
}
template <typename T>
void relu_backward(T* dx, const T* g, const T* x, int64_t n) {
  for_each_chunked(n, [&](int64_t i) { dx[i] = x[i] > T(0) ? g[i] : T(0); });
}

// ---- gelu (exact): x * Phi(x), Phi(x) = 0.5 * (1 + erf(x / sqrt(2))) -------------------------
// d/dx = Phi(x) + x * phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
template <typename T>
void gelu_forward(T* out, const T* x, int64_t n) {
  const T inv_sqrt2 = T(0.70710678118654752440);
  for_each_chunked(n, [&](int64_t i) {
    T v = x[i];
    out[i] = v * T(0.5) * (T(1) + std::erf(v * inv_sqrt2));
  });
}
template <typename T>
void gelu_backward(T* dx, const T* g, const T* x, int64_t n) {
  const T inv_sqrt2 = T(0.70710678118654752440);
  const T inv_sqrt_2pi = T(0.39894228040143267794);
  for_each_chunked(n, [&](int64_t i) {
    T v = x[i];
    T cdf = T(0.5) * (T(1) + std::erf(v * inv_sqrt2));
    T pdf = inv_sqrt_2pi * std::exp(T(-0.5) * v * v);
    dx[i] = g[i] * (cdf + v * pdf);
  });
}

// ---- quick_gelu (OpenAI CLIP): x * s, s = sigmoid(1.702 x); d/dx = s + 1.702 x s (1 - s) -----
template <typename T>
inline T quick_gelu_sigmoid(T v) {
  return T(1) / (T(1) + exp_fast(T(-1.702) * v));
}
template <typename T>
void quick_gelu_forward(T* out, const T* x, int64_t n) {
  for_each_chunked(n, [&](int64_t i) { out[i] = x[i] * quick_gelu_sigmoid(x[i]); });
}
template <typename T>
void quick_gelu_backward(T* dx, const T* g, const T* x, int64_t n) {
  for_each_chunked(n, [&](int64_t i) {
    T v = x[i], s = quick_gelu_sigmoid(v);
    dx[i] = g[i] * (s + T(1.702) * v * s * (T(1) - s));
  });
}

}  // namespace tgpt::cpu

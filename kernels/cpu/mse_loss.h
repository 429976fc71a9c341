/*
 * mse_loss.h — CPU kernels for the mean squared error mean((a - b)^2), forward and backward.
 *
 * T is float or double. The forward sums fixed 4096-element chunks in double (one chunk per
 * thread task) and then adds the chunk sums in order, so the result is bit-identical for any
 * thread count.
 */
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "base/parallel.h"

namespace tgpt::cpu {

// Returns mean((a - b)^2) over n contiguous elements (NaN for n == 0, as PyTorch).
template <typename T>
double mse_forward(const T* a, const T* b, int64_t n) {
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  constexpr int64_t kChunk = 4096;
  int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
  parallel_for(chunks, [&](int64_t c) {
    int64_t e = c * kChunk + kChunk < n ? c * kChunk + kChunk : n;
    double acc = 0.0;
    for (int64_t i = c * kChunk; i < e; ++i) {
      double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
      acc += d * d;
    }
    partial[static_cast<size_t>(c)] = acc;
  });
  double total = 0.0;
  for (double p : partial) total += p;
  return total / static_cast<double>(n);
}

// da = g * 2 (a - b) / n and db = -da (either may be null); g is the scalar output gradient.
template <typename T>
void mse_backward(T* da, T* db, const T* a, const T* b, int64_t n, double g) {
  if (n == 0) return;
  const T scale = static_cast<T>(2.0 * g / static_cast<double>(n));
  constexpr int64_t kChunk = 4096;
  int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_for(chunks, [&](int64_t c) {
    int64_t e = c * kChunk + kChunk < n ? c * kChunk + kChunk : n;
    for (int64_t i = c * kChunk; i < e; ++i) {
      T d = scale * (a[i] - b[i]);
      if (da) da[i] = d;
      if (db) db[i] = -d;
    }
  });
}

}  // namespace tgpt::cpu

/*
 * elementwise.h — CPU kernels for broadcast binary ops and unary maps (row sums:
 * kernels/cpu/reduce.h).
 *
 * T is float or double. Work is split over output rows with parallel_for; each element is
 * computed by one thread, so results do not depend on the thread count.
 */
#pragma once

#include <cstdint>

#include "base/parallel.h"
#include "base/shape.h"

namespace tgpt::cpu {

// out[i] = f(a[ia], b[ib]) over the broadcast shape `shape` (contiguous out); sa/sb are the
// element strides of a/b expanded to `shape` (0 on broadcast dims).
template <typename T, typename F>
void binary_broadcast_forward(T* out, const T* a, const T* b, const Shape& shape, const Shape& sa,
                              const Shape& sb, F f) {
  int nd = shape.size();
  if (shape.numel() == 0) return;
  if (nd == 0) {
    out[0] = f(a[0], b[0]);
    return;
  }
  int64_t inner = shape[nd - 1];
  int64_t rows = shape.numel() / inner;
  int64_t ia_s = sa[nd - 1], ib_s = sb[nd - 1];
  parallel_for(rows, [&](int64_t r) {
    int64_t rem = r, oa = 0, ob = 0;
    for (int d = nd - 2; d >= 0; --d) {
      int64_t i = rem % shape[d];
      rem /= shape[d];
      oa += i * sa[d];
      ob += i * sb[d];
    }
    T* o = out + r * inner;
    const T* pa = a + oa;
    const T* pb = b + ob;
    if (ia_s == 1 && ib_s == 1) {
      for (int64_t i = 0; i < inner; ++i) o[i] = f(pa[i], pb[i]);
    } else {
      for (int64_t i = 0; i < inner; ++i) o[i] = f(pa[i * ia_s], pb[i * ib_s]);
    }
  }, rows * inner >= 4096 ? 2 : rows + 1);
}

// out[i] = f(x[i]) for n contiguous elements.
template <typename T, typename F>
void unary_forward(T* out, const T* x, int64_t n, F f) {
  constexpr int64_t kChunk = 4096;
  int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_for(chunks, [&](int64_t c) {
    int64_t e = c * kChunk + kChunk < n ? c * kChunk + kChunk : n;
    for (int64_t i = c * kChunk; i < e; ++i) out[i] = f(x[i]);
  });
}

}  // namespace tgpt::cpu

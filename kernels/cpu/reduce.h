/*
 * reduce.h — CPU kernel for the sum / mean reductions: row sums of [rows, n] (the op moves the
 * reduced dims last). T is float or double; each row is summed serially in double, rows in
 * parallel, so the result does not depend on the thread count.
 */
#pragma once

#include <cstdint>

#include "base/parallel.h"

namespace tgpt::cpu {

// out[r] = sum_j x[r * n + j] for r in [0, rows): each row summed serially in double.
template <typename T>
void row_sum_forward(T* out, const T* x, int64_t rows, int64_t n) {
  parallel_for(
      rows,
      [&](int64_t r) {
        double acc = 0.0;
        const T* p = x + r * n;
        for (int64_t j = 0; j < n; ++j) acc += static_cast<double>(p[j]);
        out[r] = static_cast<T>(acc);
      },
      rows * n >= 4096 ? 2 : rows + 1);
}

}  // namespace tgpt::cpu

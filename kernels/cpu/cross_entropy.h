/*
 * cross_entropy.h — CPU kernels for softmax cross-entropy with label smoothing and ignored rows.
 *
 * logits [N, V], target [N] (int64, already validated: in [0, V) or equal to ignore_index).
 * Per non-ignored row n with lse = logsumexp(logits[n]) and ls the label smoothing:
 *   loss[n] = (1 - ls) * (lse - x[t]) + ls / V * sum_c (lse - x[c])
 * (PyTorch's nll term plus its smoothing term). The op averages loss[n] over non-ignored rows.
 * T is float or double; sums are accumulated in double; one thread per row.
 */
#pragma once

#include <cmath>
#include <cstdint>

#include "base/parallel.h"
#include "kernels/cpu/norm.h"

namespace tgpt::cpu {

// -> row_loss [N] (0 for ignored rows) and row_lse [N] (logsumexp, saved for backward).
template <typename T>
void cross_entropy_forward_cpu(double* row_loss, double* row_lse, const T* logits,
                               const int64_t* target, int64_t N, int64_t V, double label_smoothing,
                               int64_t ignore_index) {
  parallel_for(
      N,
      [&](int64_t n) {
        if (target[n] == ignore_index) {
          row_loss[n] = 0.0;
          row_lse[n] = 0.0;
          return;
        }
        const T* x = logits + n * V;
        double lse = row_logsumexp(x, V);
        double nll = lse - static_cast<double>(x[target[n]]);
        double loss = (1.0 - label_smoothing) * nll;
        if (label_smoothing != 0.0) {
          double smooth = 0.0;  // sum_c (lse - x[c])
          for (int64_t c = 0; c < V; ++c) smooth += lse - static_cast<double>(x[c]);
          loss += label_smoothing / static_cast<double>(V) * smooth;
        }
        row_loss[n] = loss;
        row_lse[n] = lse;
      },
      N * V >= 4096 ? 2 : N + 1);
}

// dloss: gradient of the mean loss, count: number of non-ignored rows -> dlogits [N, V]:
//   dlogits[n, c] = dloss / count * (p[c] - (1 - ls) * [c == t] - ls / V) for non-ignored rows,
//   0 for ignored rows.
template <typename T>
void cross_entropy_backward_cpu(T* dlogits, const T* logits, const double* row_lse,
                                const int64_t* target, int64_t N, int64_t V, double label_smoothing,
                                int64_t ignore_index, double dloss, int64_t count) {
  parallel_for(
      N,
      [&](int64_t n) {
        T* dx = dlogits + n * V;
        if (target[n] == ignore_index) {
          for (int64_t c = 0; c < V; ++c) dx[c] = T(0);
          return;
        }
        const T* x = logits + n * V;
        const double g = dloss / static_cast<double>(count);
        const double lse = row_lse[n];
        const double off = label_smoothing / static_cast<double>(V);
        for (int64_t c = 0; c < V; ++c) {
          double p = std::exp(static_cast<double>(x[c]) - lse);
          double d = p - off - (c == target[n] ? 1.0 - label_smoothing : 0.0);
          dx[c] = static_cast<T>(g * d);
        }
      },
      N * V >= 4096 ? 2 : N + 1);
}

}  // namespace tgpt::cpu

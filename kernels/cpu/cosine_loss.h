/*
 * cosine_loss.h — CPU kernels for TGP-T's classification loss on cosine logits:
 *   logits = scale · normalize(features) · weightᵀ,  loss = mean_n cross_entropy(logits[n], t[n]).
 *
 * features x [N, F] are L2-normalised over F (x / max(||x||, eps), as l2_normalize), the class
 * weight W [K, F] is used as is (method.md §1.2 step 6), target [N] in [0, K) (validated).
 * Forward saves xn = normalize(x) [N, F], ||x|| [N] and the softmax probabilities p [N, K].
 * Backward, with dz = (p - onehot(t)) · dloss / N:
 *   dW = scale · dzᵀ xn,  dxn = scale · dz W,  dx = l2_normalize backward of dxn.
 * T is float or double; GEMMs through OpenBLAS, row statistics in double, rows independent.
 */
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "base/parallel.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"

namespace tgpt::cpu {

// -> row_loss [N], xn [N, F], norm [N], prob [N, K].
template <typename T>
void cosine_logit_loss_forward_cpu(double* row_loss, T* xn, T* norm, T* prob, const T* x,
                                   const T* w, const int64_t* target, int64_t N, int64_t F,
                                   int64_t K, double scale, double eps) {
  l2_normalize_forward_cpu<T>(xn, norm, x, N, F, eps);
  gemm(false, true, N, K, F, static_cast<T>(scale), xn, F, w, F, T(0), prob, K);  // logits
  parallel_for(
      N,
      [&](int64_t n) {
        T* z = prob + n * K;
        double mx = static_cast<double>(z[0]);
        for (int64_t k = 1; k < K; ++k) mx = std::max(mx, static_cast<double>(z[k]));
        double s = 0.0;
        for (int64_t k = 0; k < K; ++k) s += std::exp(static_cast<double>(z[k]) - mx);
        const double lse = mx + std::log(s);
        row_loss[n] = lse - static_cast<double>(z[target[n]]);
        for (int64_t k = 0; k < K; ++k)
          z[k] = static_cast<T>(std::exp(static_cast<double>(z[k]) - lse));
      },
      N * K >= 4096 ? 2 : N + 1);
}

// dloss: gradient of the mean loss. dx [N, F] and/or dw [K, F] (either may be null).
template <typename T>
void cosine_logit_loss_backward_cpu(T* dx, T* dw, const T* prob, const T* xn, const T* norm,
                                    const T* x, const T* w, const int64_t* target, int64_t N,
                                    int64_t F, int64_t K, double scale, double eps, double dloss) {
  std::vector<T> dz(static_cast<size_t>(N * K));
  const double g = dloss / static_cast<double>(N);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      dz[static_cast<size_t>(n * K + k)] =
          static_cast<T>(g * (static_cast<double>(prob[n * K + k]) - (k == target[n] ? 1.0 : 0.0)));
  if (dw) gemm(true, false, K, F, N, static_cast<T>(scale), dz.data(), K, xn, F, T(0), dw, F);
  if (dx) {
    std::vector<T> dxn(static_cast<size_t>(N * F));
    gemm(false, false, N, F, K, static_cast<T>(scale), dz.data(), K, w, F, T(0), dxn.data(), F);
    l2_normalize_backward_cpu<T>(dx, dxn.data(), x, norm, N, F, eps);
  }
}

}  // namespace tgpt::cpu

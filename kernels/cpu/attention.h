/*
 * attention.h — CPU kernels for multi-head scaled dot-product attention on CLIP's packed qkv.
 *
 * qkv [B, T, 3C]: columns [0, C) are Q, [C, 2C) K, [2C, 3C) V; head h of NH uses columns
 * h*D .. h*D+D-1 of each (D = C / NH). Per (b, h): S = (q k^T) / sqrt(D), with the causal mask
 * setting S[i, j] = -inf for j > i; P = softmax over keys; out = P v, heads concatenated into
 * out [B, T, C]. The probabilities P [B, NH, T, T] (0 where masked) are saved for backward when
 * the caller passes a buffer.
 *
 * Each (b, h) copies its head's K (transposed, [D, T]) and V ([T, D]) into contiguous scratch so
 * every inner loop is a unit-stride axpy over j or d that the compiler vectorises without
 * reassociating sums; the arithmetic is in T (float or double). Work is split over the B * NH
 * independent (batch, head) pairs, each owning its output columns, so results are bit-identical
 * whatever the thread count.
 */
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/parallel.h"

namespace tgpt::cpu {

namespace detail {
// Small problems run serially: thread start-up costs more than the work.
inline int64_t attention_min_parallel(int64_t B, int64_t Tn, int64_t C, int64_t NH) {
  return B * Tn * Tn * C >= (1 << 14) ? 2 : B * NH + 1;
}
}  // namespace detail

// out [B, T, C]; att [B, NH, T, T] or nullptr (inference: probabilities not kept).
template <typename T>
void attention_forward_cpu(T* out, T* att, const T* qkv, int64_t B, int64_t Tn, int64_t C,
                           int64_t NH, bool causal) {
  const int64_t D = C / NH, C3 = 3 * C;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  parallel_for(
      B * NH,
      [&](int64_t bh) {
        const int64_t b = bh / NH, h = bh % NH;
        std::vector<T> kt(static_cast<size_t>(D * Tn)), v(static_cast<size_t>(Tn * D));
        std::vector<T> p(static_cast<size_t>(Tn)), acc(static_cast<size_t>(D));
        for (int64_t j = 0; j < Tn; ++j) {
          const T* kj = qkv + (b * Tn + j) * C3 + C + h * D;
          const T* vj = kj + C;
          for (int64_t d = 0; d < D; ++d) kt[d * Tn + j] = kj[d];
          std::copy(vj, vj + D, v.begin() + j * D);
        }
        for (int64_t i = 0; i < Tn; ++i) {
          const T* q = qkv + (b * Tn + i) * C3 + h * D;
          const int64_t jend = causal ? i + 1 : Tn;
          // scores: p[j] = sum_d q[d] * kt[d, j]
          std::fill(p.begin(), p.begin() + jend, T(0));
          for (int64_t d = 0; d < D; ++d) {
            const T qd = q[d] * scale;
            const T* kr = kt.data() + d * Tn;
            for (int64_t j = 0; j < jend; ++j) p[j] += qd * kr[j];
          }
          T mx = p[0];
          for (int64_t j = 1; j < jend; ++j) mx = std::max(mx, p[j]);
          T s = 0;
          for (int64_t j = 0; j < jend; ++j) {
            p[j] = std::exp(p[j] - mx);
            s += p[j];
          }
          const T inv = T(1) / s;
          for (int64_t j = 0; j < jend; ++j) p[j] *= inv;
          if (att) {
            T* a = att + (bh * Tn + i) * Tn;
            std::copy(p.begin(), p.begin() + jend, a);
            std::fill(a + jend, a + Tn, T(0));
          }
          // out[i] = sum_j p[j] * v[j]
          std::fill(acc.begin(), acc.end(), T(0));
          for (int64_t j = 0; j < jend; ++j) {
            const T pj = p[j];
            const T* vr = v.data() + j * D;
            for (int64_t d = 0; d < D; ++d) acc[d] += pj * vr[d];
          }
          std::copy(acc.begin(), acc.end(), out + (b * Tn + i) * C + h * D);
        }
      },
      detail::attention_min_parallel(B, Tn, C, NH));
}

// dout [B, T, C], qkv and att from the forward -> dqkv [B, T, 3C] (fully written).
// With dP = dout v^T and dS = P * (dP - rowsum(P * dP)):
//   dQ = dS k / sqrt(D), dK = dS^T q / sqrt(D), dV = P^T dout.
template <typename T>
void attention_backward_cpu(T* dqkv, const T* dout, const T* qkv, const T* att, int64_t B,
                            int64_t Tn, int64_t C, int64_t NH, bool causal) {
  const int64_t D = C / NH, C3 = 3 * C;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  parallel_for(
      B * NH,
      [&](int64_t bh) {
        const int64_t b = bh / NH, h = bh % NH;
        std::vector<T> k(static_cast<size_t>(Tn * D)), vt(static_cast<size_t>(D * Tn));
        std::vector<T> dk(static_cast<size_t>(Tn * D), T(0)), dv(static_cast<size_t>(Tn * D), T(0));
        std::vector<T> dp(static_cast<size_t>(Tn)), dq(static_cast<size_t>(D));
        for (int64_t j = 0; j < Tn; ++j) {
          const T* kj = qkv + (b * Tn + j) * C3 + C + h * D;
          const T* vj = kj + C;
          std::copy(kj, kj + D, k.begin() + j * D);
          for (int64_t d = 0; d < D; ++d) vt[d * Tn + j] = vj[d];
        }
        for (int64_t i = 0; i < Tn; ++i) {
          const T* q = qkv + (b * Tn + i) * C3 + h * D;
          const T* g = dout + (b * Tn + i) * C + h * D;
          const T* a = att + (bh * Tn + i) * Tn;
          const int64_t jend = causal ? i + 1 : Tn;
          // dp[j] = g · v[j]
          std::fill(dp.begin(), dp.begin() + jend, T(0));
          for (int64_t d = 0; d < D; ++d) {
            const T gd = g[d];
            const T* vr = vt.data() + d * Tn;
            for (int64_t j = 0; j < jend; ++j) dp[j] += gd * vr[j];
          }
          T pdp = 0;
          for (int64_t j = 0; j < jend; ++j) pdp += a[j] * dp[j];
          std::fill(dq.begin(), dq.end(), T(0));
          for (int64_t j = 0; j < jend; ++j) {
            const T pij = a[j];
            const T ds = pij * (dp[j] - pdp) * scale;
            const T* kr = k.data() + j * D;
            T* dkr = dk.data() + j * D;
            T* dvr = dv.data() + j * D;
            for (int64_t d = 0; d < D; ++d) {
              dq[d] += ds * kr[d];
              dkr[d] += ds * q[d];
              dvr[d] += pij * g[d];
            }
          }
          std::copy(dq.begin(), dq.end(), dqkv + (b * Tn + i) * C3 + h * D);
        }
        for (int64_t j = 0; j < Tn; ++j) {
          T* dkj = dqkv + (b * Tn + j) * C3 + C + h * D;
          std::copy(dk.begin() + j * D, dk.begin() + (j + 1) * D, dkj);
          std::copy(dv.begin() + j * D, dv.begin() + (j + 1) * D, dkj + C);
        }
      },
      detail::attention_min_parallel(B, Tn, C, NH));
}

}  // namespace tgpt::cpu

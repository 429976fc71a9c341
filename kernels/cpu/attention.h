/*
 * attention.h — CPU kernels for multi-head scaled dot-product attention on CLIP's packed qkv.
 *
 * qkv [B, T, 3C]: columns [0, C) are Q, [C, 2C) K, [2C, 3C) V; head h of NH uses columns
 * h*D .. h*D+D-1 of each (D = C / NH). Per (b, h): S = (q k^T) / sqrt(D), with the causal mask
 * setting S[i, j] = -inf for j > i; P = softmax over keys; out = P v, heads concatenated into
 * out [B, T, C]. The probabilities P [B, NH, T, T] (0 where masked) are saved for backward.
 *
 * T is float or double; dot products and sums are accumulated in double. Work is split over the
 * B * NH independent (batch, head) pairs, each owning its own output columns, so results are
 * bit-identical whatever the thread count.
 */
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/parallel.h"

namespace tgpt::cpu {

template <typename T>
void attention_forward_cpu(T* out, T* att, const T* qkv, int64_t B, int64_t Tn, int64_t C,
                           int64_t NH, bool causal) {
  const int64_t D = C / NH, C3 = 3 * C;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  const int64_t min_par = B * Tn * Tn * C >= (1 << 14) ? 2 : B * NH + 1;  // small: serial
  parallel_for(
      B * NH,
      [&](int64_t bh) {
        const int64_t b = bh / NH, h = bh % NH;
        std::vector<double> p(static_cast<size_t>(Tn)), acc(static_cast<size_t>(D));
        for (int64_t i = 0; i < Tn; ++i) {
          const T* q = qkv + (b * Tn + i) * C3 + h * D;
          const int64_t jend = causal ? i + 1 : Tn;
          double mx = -INFINITY;
          for (int64_t j = 0; j < jend; ++j) {
            const T* k = qkv + (b * Tn + j) * C3 + C + h * D;
            double dot = 0.0;
            for (int64_t d = 0; d < D; ++d)
              dot += static_cast<double>(q[d]) * static_cast<double>(k[d]);
            p[j] = dot * scale;
            mx = std::max(mx, p[j]);
          }
          double s = 0.0;
          for (int64_t j = 0; j < jend; ++j) {
            p[j] = std::exp(p[j] - mx);
            s += p[j];
          }
          const double inv = 1.0 / s;
          T* a = att + (bh * Tn + i) * Tn;
          std::fill(acc.begin(), acc.end(), 0.0);
          for (int64_t j = 0; j < jend; ++j) {
            p[j] *= inv;
            a[j] = static_cast<T>(p[j]);
            const T* v = qkv + (b * Tn + j) * C3 + 2 * C + h * D;
            for (int64_t d = 0; d < D; ++d) acc[d] += p[j] * static_cast<double>(v[d]);
          }
          for (int64_t j = jend; j < Tn; ++j) a[j] = T(0);
          T* o = out + (b * Tn + i) * C + h * D;
          for (int64_t d = 0; d < D; ++d) o[d] = static_cast<T>(acc[d]);
        }
      },
      min_par);
}

// dout [B, T, C], qkv and att from the forward -> dqkv [B, T, 3C] (fully written).
// With dP = dout v^T and dS = P * (dP - rowsum(P * dP)):
//   dQ = dS k / sqrt(D), dK = dS^T q / sqrt(D), dV = P^T dout.
template <typename T>
void attention_backward_cpu(T* dqkv, const T* dout, const T* qkv, const T* att, int64_t B,
                            int64_t Tn, int64_t C, int64_t NH, bool causal) {
  const int64_t D = C / NH, C3 = 3 * C;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  const int64_t min_par = B * Tn * Tn * C >= (1 << 14) ? 2 : B * NH + 1;  // small: serial
  parallel_for(
      B * NH,
      [&](int64_t bh) {
        const int64_t b = bh / NH, h = bh % NH;
        std::vector<double> dp(static_cast<size_t>(Tn)), dq(static_cast<size_t>(D));
        std::vector<double> dk(static_cast<size_t>(Tn * D), 0.0),
            dv(static_cast<size_t>(Tn * D), 0.0);
        for (int64_t i = 0; i < Tn; ++i) {
          const T* q = qkv + (b * Tn + i) * C3 + h * D;
          const T* dout_i = dout + (b * Tn + i) * C + h * D;
          const T* a = att + (bh * Tn + i) * Tn;
          const int64_t jend = causal ? i + 1 : Tn;
          double pdp = 0.0;
          for (int64_t j = 0; j < jend; ++j) {
            const T* v = qkv + (b * Tn + j) * C3 + 2 * C + h * D;
            double dot = 0.0;
            for (int64_t d = 0; d < D; ++d)
              dot += static_cast<double>(dout_i[d]) * static_cast<double>(v[d]);
            dp[j] = dot;
            pdp += static_cast<double>(a[j]) * dot;
          }
          std::fill(dq.begin(), dq.end(), 0.0);
          for (int64_t j = 0; j < jend; ++j) {
            const double pij = static_cast<double>(a[j]);
            const double ds = pij * (dp[j] - pdp) * scale;
            const T* k = qkv + (b * Tn + j) * C3 + C + h * D;
            double* dkj = dk.data() + j * D;
            double* dvj = dv.data() + j * D;
            for (int64_t d = 0; d < D; ++d) {
              dq[d] += ds * static_cast<double>(k[d]);
              dkj[d] += ds * static_cast<double>(q[d]);
              dvj[d] += pij * static_cast<double>(dout_i[d]);
            }
          }
          T* dqi = dqkv + (b * Tn + i) * C3 + h * D;
          for (int64_t d = 0; d < D; ++d) dqi[d] = static_cast<T>(dq[d]);
        }
        for (int64_t j = 0; j < Tn; ++j) {
          T* dkj = dqkv + (b * Tn + j) * C3 + C + h * D;
          T* dvj = dqkv + (b * Tn + j) * C3 + 2 * C + h * D;
          for (int64_t d = 0; d < D; ++d) {
            dkj[d] = static_cast<T>(dk[j * D + d]);
            dvj[d] = static_cast<T>(dv[j * D + d]);
          }
        }
      },
      min_par);
}

}  // namespace tgpt::cpu

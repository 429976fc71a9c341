/*
 * vocab_ce.h — CPU kernel for cross-entropy over a vocabulary projection without materialising
 * the [N, V] logits: loss = cross_entropy(hidden @ embeddingᵀ, target, ls, ignore_index).
 *
 * hidden [N, W], embedding E [V, W] (row-major, frozen), target [N] (int64, already validated: in
 * [0, V) or equal to ignore_index). The vocabulary is walked in chunks of `chunk` rows of E. Per
 * chunk: logits [N, Vc] = hidden @ E_chunkᵀ (one GEMM), then per row an online log-sum-exp update
 * of the running max m, the running sum s = Σ exp(x - m), the plain sum Σ x (for the smoothing
 * term) and the target logit. At the end, per non-ignored row (PyTorch's formula):
 *   lse = m + log s,  loss[n] = (1 - ls) (lse - x_t) + ls (lse - Σ_v x_v / V).
 *
 * Gradient in the same pass (when grad_dir is given): d loss[n] / d hidden[n] =
 *   Σ_v p_v E_v - (1 - ls) E_t - (ls / V) Σ_v E_v.
 * The first term is accumulated chunk by chunk as acc[n] = Σ_v exp(x_v - m) E_v (a second GEMM
 * per chunk, acc += P̃ @ E_chunk), rescaling acc[n] by exp(m_old - m_new) whenever the running max
 * grows (FlashAttention's output rescaling), and divided by s at the end. So forward + backward
 * cost two GEMMs over the vocabulary (the same as matmul + cross_entropy) and O(N·chunk + N·W)
 * memory; the op's backward only scales grad_dir by dloss / count.
 *
 * Ignored rows cost nothing: when some targets are ignore_index, the other rows of hidden are
 * gathered into a dense [Nv, W] block first and only those go through the GEMMs (exact: rows are
 * independent). TGP-T's targets are mostly padding (a class sentence fills ~8 of its 32
 * positions, a caption ~25 of its 64), so this is most of the vocabulary work on real data.
 *
 * T is float or double (GEMMs in T, per-row statistics in double). For float the per-chunk row
 * pass is vectorised: the chunk max in float (exact), Σ x and Σ exp accumulated in double over
 * SIMD lanes, exp_fast(x - m) in float (<= 1 ulp, kernels/cpu/fast_exp.h); double keeps libm's
 * exp and sequential sums (the f64 reference path). Rows are independent: the per-row work is
 * split over rows, so results do not depend on the thread count.
 */
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "base/parallel.h"
#include "kernels/cpu/fast_exp.h"
#include "kernels/cpu/matmul.h"

namespace tgpt::cpu {

// The kernel on rows that all have a target (none is ignore_index): row_loss [N]; grad_dir
// [N, W] when not null.
template <typename T>
void vocab_ce_dense_rows_cpu(double* row_loss, T* grad_dir, const T* hidden, const T* emb,
                             const int64_t* target, int64_t N, int64_t W, int64_t V, int64_t chunk,
                             double label_smoothing) {
  const double ls = label_smoothing;
  const int64_t Vc_max = chunk < V ? chunk : V;
  std::vector<T> logits(static_cast<size_t>(N * Vc_max));  // [N, Vc], probabilities in place
  std::vector<double> m(static_cast<size_t>(N), -std::numeric_limits<double>::infinity());
  std::vector<double> s(static_cast<size_t>(N), 0.0), sumx(static_cast<size_t>(N), 0.0);
  std::vector<double> xt(static_cast<size_t>(N), 0.0);
  if (grad_dir)
    for (int64_t i = 0; i < N * W; ++i) grad_dir[i] = T(0);
  const int64_t min_par = N * Vc_max >= 4096 ? 2 : N + 1;
  for (int64_t v0 = 0; v0 < V; v0 += Vc_max) {
    const int64_t Vc = V - v0 < Vc_max ? V - v0 : Vc_max;
    const T* Ec = emb + v0 * W;
    gemm(false, true, N, Vc, W, T(1), hidden, W, Ec, W, T(0), logits.data(), Vc);
    parallel_for(
        N,
        [&](int64_t n) {
          T* x = logits.data() + n * Vc;
          const int64_t t = target[n];
          if (t >= v0 && t < v0 + Vc) xt[n] = static_cast<double>(x[t - v0]);  // before overwrite
          double m_new, alpha, csum = 0.0, csumx = 0.0;
          if constexpr (std::is_same_v<T, float>) {
            // Vectorised: the max is exact in float, the sums accumulate in double (SIMD lanes),
            // exp_fast (<= 1 ulp) of the float difference x - m.
            float cmax = x[0];
#pragma omp simd reduction(max : cmax) reduction(+ : csumx)
            for (int64_t c = 0; c < Vc; ++c) {
              cmax = x[c] > cmax ? x[c] : cmax;
              csumx += static_cast<double>(x[c]);
            }
            m_new = static_cast<double>(cmax) > m[n] ? static_cast<double>(cmax) : m[n];
            alpha = std::exp(m[n] - m_new);              // 0 on the first chunk (m = -inf)
            const float mf = static_cast<float>(m_new);  // exact: m is one of the float logits
            if (grad_dir) {
#pragma omp simd reduction(+ : csum)
              for (int64_t c = 0; c < Vc; ++c) {
                const float e = exp_fast(x[c] - mf);
                x[c] = e;
                csum += static_cast<double>(e);
              }
            } else {
#pragma omp simd reduction(+ : csum)
              for (int64_t c = 0; c < Vc; ++c) csum += static_cast<double>(exp_fast(x[c] - mf));
            }
          } else {
            double cmax = static_cast<double>(x[0]);
            for (int64_t c = 0; c < Vc; ++c) {
              const double xv = static_cast<double>(x[c]);
              cmax = xv > cmax ? xv : cmax;
              csumx += xv;
            }
            m_new = cmax > m[n] ? cmax : m[n];
            alpha = std::exp(m[n] - m_new);  // 0 on the first chunk (m = -inf)
            for (int64_t c = 0; c < Vc; ++c) {
              const double e = std::exp(static_cast<double>(x[c]) - m_new);
              csum += e;
              if (grad_dir) x[c] = static_cast<T>(e);
            }
          }
          if (grad_dir && alpha != 1.0) {
            T* acc = grad_dir + n * W;
            for (int64_t w = 0; w < W; ++w)
              acc[w] = static_cast<T>(static_cast<double>(acc[w]) * alpha);
          }
          s[n] = s[n] * alpha + csum;
          m[n] = m_new;
          sumx[n] += csumx;
        },
        min_par);
    // acc += P̃ [N, Vc] @ E_chunk [Vc, W].
    if (grad_dir) gemm(false, false, N, W, Vc, T(1), logits.data(), Vc, Ec, W, T(1), grad_dir, W);
  }
  std::vector<T> colsum;
  if (grad_dir && ls != 0.0) {
    colsum.resize(static_cast<size_t>(W));
    column_sum_cpu<T>(colsum.data(), emb, V, W);
  }
  parallel_for(
      N,
      [&](int64_t n) {
        const int64_t t = target[n];
        const double lse = m[n] + std::log(s[n]);
        row_loss[n] = (1.0 - ls) * (lse - xt[n]) + ls * (lse - sumx[n] / static_cast<double>(V));
        if (!grad_dir) return;
        T* g = grad_dir + n * W;
        const T* et = emb + t * W;
        const double inv_s = 1.0 / s[n], off = ls / static_cast<double>(V);
        for (int64_t w = 0; w < W; ++w) {
          double d = static_cast<double>(g[w]) * inv_s - (1.0 - ls) * static_cast<double>(et[w]);
          if (ls != 0.0) d -= off * static_cast<double>(colsum[static_cast<size_t>(w)]);
          g[w] = static_cast<T>(d);
        }
      },
      N * W >= 4096 ? 2 : N + 1);
}

// -> row_loss [N] (0 for ignored rows); grad_dir [N, W] (0 for ignored rows) when not null.
template <typename T>
void vocab_ce_forward_cpu(double* row_loss, T* grad_dir, const T* hidden, const T* emb,
                          const int64_t* target, int64_t N, int64_t W, int64_t V, int64_t chunk,
                          double label_smoothing, int64_t ignore_index) {
  std::vector<int64_t> valid;  // rows whose target is not ignored
  valid.reserve(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n)
    if (target[n] != ignore_index) valid.push_back(n);
  const int64_t Nv = static_cast<int64_t>(valid.size());
  if (Nv == N) {
    vocab_ce_dense_rows_cpu<T>(row_loss, grad_dir, hidden, emb, target, N, W, V, chunk,
                               label_smoothing);
    return;
  }
  // Gather the valid rows, run on the dense block, scatter back (0 for ignored rows).
  std::vector<T> h_v(static_cast<size_t>(Nv * W)), g_v(grad_dir ? static_cast<size_t>(Nv * W) : 0);
  std::vector<int64_t> t_v(static_cast<size_t>(Nv));
  std::vector<double> loss_v(static_cast<size_t>(Nv));
  for (int64_t j = 0; j < Nv; ++j) {
    const int64_t n = valid[static_cast<size_t>(j)];
    std::copy(hidden + n * W, hidden + (n + 1) * W, h_v.begin() + j * W);
    t_v[static_cast<size_t>(j)] = target[n];
  }
  if (Nv > 0)
    vocab_ce_dense_rows_cpu<T>(loss_v.data(), grad_dir ? g_v.data() : nullptr, h_v.data(), emb,
                               t_v.data(), Nv, W, V, chunk, label_smoothing);
  std::fill(row_loss, row_loss + N, 0.0);
  if (grad_dir) std::fill(grad_dir, grad_dir + N * W, T(0));
  for (int64_t j = 0; j < Nv; ++j) {
    const int64_t n = valid[static_cast<size_t>(j)];
    row_loss[n] = loss_v[static_cast<size_t>(j)];
    if (grad_dir) std::copy(g_v.begin() + j * W, g_v.begin() + (j + 1) * W, grad_dir + n * W);
  }
}

}  // namespace tgpt::cpu

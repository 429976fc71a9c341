/*
 * clip_contrastive_loss.h — CPU kernels for CLIP's symmetric InfoNCE loss (open_clip's ClipLoss
 * on one device, OpenAI's logit-scale clamp in the forward):
 *   a = normalize(I), b = normalize(T)        I, T [N, E]; normalize as l2_normalize (eps 1e-12)
 *   s = exp(min(p, ln 100))                    p the logit-scale parameter (a scalar)
 *   Z = s · a bᵀ                               [N, N], row i = image i against every caption
 *   loss = (CE(Z, arange) + CE(Zᵀ, arange)) / 2
 *        = 1/(2N) Σ_i (lse_row(i) - Z_ii) + 1/(2N) Σ_j (lse_col(j) - Z_jj).
 * Forward saves a, b [N, E], ||I||, ||T|| [N], Z [N, N]; backward recomputes the row and column
 * log-sum-exps of Z in double.
 * Backward, with dloss = g:
 *   dZ_ij = g/(2N) · (softmax_row(Z)_ij + softmax_col(Z)_ij - 2 [i = j])
 *   da = s · dZ b,  db = s · dZᵀ a,  dI / dT = l2_normalize backward of da / db
 *   dp = Σ_ij dZ_ij Z_ij  (= s · ds, since dZ/ds = a bᵀ = Z/s) when p <= ln 100, else 0 (clamped:
 *        as torch.clamp, no gradient flows to a clamped parameter).
 * T is float or double; GEMMs through OpenBLAS, log-sum-exps in double, rows independent.
 */
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "base/parallel.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"

namespace tgpt::cpu {

// The clamp bound of the logit-scale parameter: ln 100 (CLIP's maximum temperature 100).
constexpr double kClipLogitScaleMax = 4.605170185988092;  // == math.log(100) / std::log(100.0)

// s = exp(min(p, ln 100)).
inline double clip_logit_scale(double p) {
  return std::exp(std::min(p, kClipLogitScaleMax));
}

// lse_row [N] / lse_col [N] (double) of the logits [N, N]: log Σ_j exp(Z_ij) / log Σ_i exp(Z_ij).
template <typename T>
void clip_logsumexp_rows_cols_cpu(double* lse_row, double* lse_col, const T* logits, int64_t N) {
  const int64_t grain = N * N >= 4096 ? 2 : N + 1;
  parallel_for(
      N,
      [&](int64_t i) {
        const T* z = logits + i * N;
        double mx = static_cast<double>(z[0]);
        for (int64_t j = 1; j < N; ++j) mx = std::max(mx, static_cast<double>(z[j]));
        double s = 0.0;
        for (int64_t j = 0; j < N; ++j) s += std::exp(static_cast<double>(z[j]) - mx);
        lse_row[i] = mx + std::log(s);
      },
      grain);
  parallel_for(
      N,
      [&](int64_t j) {
        double mx = static_cast<double>(logits[j]);
        for (int64_t i = 1; i < N; ++i) mx = std::max(mx, static_cast<double>(logits[i * N + j]));
        double s = 0.0;
        for (int64_t i = 0; i < N; ++i) s += std::exp(static_cast<double>(logits[i * N + j]) - mx);
        lse_col[j] = mx + std::log(s);
      },
      grain);
}

// -> row_loss [N] (lse_row(i) + lse_col(i) - 2 Z_ii, in double), an/bn [N, E], inorm/tnorm [N],
// logits [N, N].
template <typename T>
void clip_contrastive_loss_forward_cpu(double* row_loss, T* an, T* bn, T* inorm, T* tnorm,
                                       T* logits, const T* img, const T* txt, int64_t N, int64_t E,
                                       double scale, double eps) {
  l2_normalize_forward_cpu<T>(an, inorm, img, N, E, eps);
  l2_normalize_forward_cpu<T>(bn, tnorm, txt, N, E, eps);
  gemm(false, true, N, N, E, static_cast<T>(scale), an, E, bn, E, T(0), logits, N);  // Z
  std::vector<double> lse_row(static_cast<size_t>(N)), lse_col(static_cast<size_t>(N));
  clip_logsumexp_rows_cols_cpu<T>(lse_row.data(), lse_col.data(), logits, N);
  for (int64_t i = 0; i < N; ++i)
    row_loss[i] = lse_row[static_cast<size_t>(i)] + lse_col[static_cast<size_t>(i)] -
                  2.0 * static_cast<double>(logits[i * N + i]);
}

// dloss: gradient of the loss. dimg/dtxt [N, E] (either may be null); *dparam gets dp (0 when
// clamped) when dparam is non-null.
// The log-sum-exps are recomputed here in double from the saved logits: rounding them to f32
// (logits up to 100) would cost ~1e-6 relative in every probability.
template <typename T>
void clip_contrastive_loss_backward_cpu(T* dimg, T* dtxt, double* dparam, const T* an, const T* bn,
                                        const T* inorm, const T* tnorm, const T* logits,
                                        const T* img, const T* txt, int64_t N, int64_t E,
                                        double scale, bool clamped, double eps, double dloss) {
  std::vector<double> lse_row(static_cast<size_t>(N)), lse_col(static_cast<size_t>(N));
  clip_logsumexp_rows_cols_cpu<T>(lse_row.data(), lse_col.data(), logits, N);
  std::vector<T> dz(static_cast<size_t>(N * N));
  const double g = dloss / (2.0 * static_cast<double>(N));
  std::vector<double> dp_row(static_cast<size_t>(N));
  parallel_for(
      N,
      [&](int64_t i) {
        double acc = 0.0;
        for (int64_t j = 0; j < N; ++j) {
          const double z = static_cast<double>(logits[i * N + j]);
          const double d =
              g * (std::exp(z - lse_row[static_cast<size_t>(i)]) +
                   std::exp(z - lse_col[static_cast<size_t>(j)]) - (i == j ? 2.0 : 0.0));
          dz[static_cast<size_t>(i * N + j)] = static_cast<T>(d);
          acc += d * z;
        }
        dp_row[static_cast<size_t>(i)] = acc;
      },
      N * N >= 4096 ? 2 : N + 1);
  if (dparam) {
    double dp = 0.0;
    for (double v : dp_row) dp += v;
    *dparam = clamped ? 0.0 : dp;
  }
  std::vector<T> dn(static_cast<size_t>(N * E));
  if (dimg) {
    gemm(false, false, N, E, N, static_cast<T>(scale), dz.data(), N, bn, E, T(0), dn.data(), E);
    l2_normalize_backward_cpu<T>(dimg, dn.data(), img, inorm, N, E, eps);
  }
  if (dtxt) {
    gemm(true, false, N, E, N, static_cast<T>(scale), dz.data(), N, an, E, T(0), dn.data(), E);
    l2_normalize_backward_cpu<T>(dtxt, dn.data(), txt, tnorm, N, E, eps);
  }
}

}  // namespace tgpt::cpu

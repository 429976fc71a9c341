/*
 * attention.h — CPU kernels for multi-head scaled dot-product attention on CLIP's packed qkv.
 *
 * qkv [B, T, 3C]: columns [0, C) are Q, [C, 2C) K, [2C, 3C) V; head h of NH uses columns
 * h*D .. h*D+D-1 of each (D = C / NH). Per (b, h): S = (q k^T) / sqrt(D), with the causal mask
 * setting S[i, j] = -inf for j > i; P = softmax over keys; out = P v, heads concatenated into
 * out [B, T, C]. The probabilities P [B, NH, T, T] (0 where masked) are saved for backward when
 * the caller passes a buffer.
 *
 * Each (b, h) runs its products as GEMMs (kernels/cpu/matmul.h) straight on the strided head
 * slices of qkv, and the softmax row by row (the row max over SIMD lanes, exact; each row sum
 * in key order, eight rows interleaved so the additions are not one latency-bound chain). Work is
 * split over the B * NH independent (batch, head) pairs inside one parallel region, where OpenBLAS
 * (OpenMP build) runs each GEMM on the calling thread, so every (b, h) is computed the same way
 * whatever the thread count.
 */
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "base/parallel.h"
#include "kernels/cpu/fast_exp.h"
#include "kernels/cpu/matmul.h"

namespace tgpt::cpu {

// out [B, T, C]; att [B, NH, T, T] or nullptr (inference: probabilities not kept).
template <typename T>
void attention_forward_cpu(T* out, T* att, const T* qkv, int64_t B, int64_t Tn, int64_t C,
                           int64_t NH, bool causal) {
  const int64_t D = C / NH, C3 = 3 * C;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  parallel_for(B * NH, [&](int64_t bh) {
    const int64_t b = bh / NH, h = bh % NH;
    const T* q = qkv + b * Tn * C3 + h * D;
    const T* k = q + C;
    const T* v = q + 2 * C;
    std::vector<T> scratch(att ? 0 : static_cast<size_t>(Tn * Tn));
    T* s = att ? att + bh * Tn * Tn : scratch.data();  // [T, T]
    gemm(false, true, Tn, Tn, D, scale, q, C3, k, C3, T(0), s, Tn);
    for (int64_t i = 0; i < Tn; ++i) {
      T* p = s + i * Tn;
      const int64_t jend = causal ? i + 1 : Tn;
      T mx = p[0];
#pragma omp simd reduction(max : mx)
      for (int64_t j = 1; j < jend; ++j) mx = p[j] > mx ? p[j] : mx;  // exact in any order
      for (int64_t j = 0; j < jend; ++j) p[j] = exp_fast(p[j] - mx);  // vectorised
      std::fill(p + jend, p + Tn, T(0));
    }
    // Row sums in key order (the masked zeros add nothing), kRows rows at a time: independent
    // chains instead of one latency-bound chain per row, the same result bit for bit.
    constexpr int64_t kRows = 8;
    for (int64_t i0 = 0; i0 < Tn; i0 += kRows) {
      const int64_t rows = std::min(kRows, Tn - i0);
      T sum[kRows] = {};
      const int64_t jmax = causal ? i0 + rows : Tn;  // zeros beyond it in every row of the block
      for (int64_t j = 0; j < jmax; ++j)
        for (int64_t r = 0; r < rows; ++r) sum[r] += s[(i0 + r) * Tn + j];
      for (int64_t r = 0; r < rows; ++r) {
        T* p = s + (i0 + r) * Tn;
        const T inv = T(1) / sum[r];
        const int64_t jend = causal ? i0 + r + 1 : Tn;
        for (int64_t j = 0; j < jend; ++j) p[j] *= inv;
      }
    }
    gemm(false, false, Tn, D, Tn, T(1), s, Tn, v, C3, T(0), out + b * Tn * C + h * D, C);
  });
}

// dout [B, T, C], qkv and att from the forward -> dqkv [B, T, 3C] (fully written).
// With dP = dout v^T and dS = P * (dP - rowsum(P * dP)) / sqrt(D):
//   dQ = dS k, dK = dS^T q, dV = P^T dout.
template <typename T>
void attention_backward_cpu(T* dqkv, const T* dout, const T* qkv, const T* att, int64_t B,
                            int64_t Tn, int64_t C, int64_t NH, bool causal) {
  const int64_t D = C / NH, C3 = 3 * C;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  parallel_for(B * NH, [&](int64_t bh) {
    const int64_t b = bh / NH, h = bh % NH;
    const T* q = qkv + b * Tn * C3 + h * D;
    const T* k = q + C;
    const T* v = q + 2 * C;
    const T* g = dout + b * Tn * C + h * D;
    const T* p = att + bh * Tn * Tn;
    T* dq = dqkv + b * Tn * C3 + h * D;
    std::vector<T> ds(static_cast<size_t>(Tn * Tn));
    gemm(false, true, Tn, Tn, D, T(1), g, C, v, C3, T(0), ds.data(), Tn);  // dP
    // rowsum(P * dP) in key order, kRows rows at a time (independent chains, same result).
    constexpr int64_t kRows = 8;
    for (int64_t i0 = 0; i0 < Tn; i0 += kRows) {
      const int64_t rows = std::min(kRows, Tn - i0);
      T pdp[kRows] = {};
      const int64_t jmax = causal ? i0 + rows : Tn;
      for (int64_t j = 0; j < jmax; ++j)
        for (int64_t r = 0; r < rows; ++r)
          if (!causal || j <= i0 + r) pdp[r] += p[(i0 + r) * Tn + j] * ds[(i0 + r) * Tn + j];
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = i0 + r;
        T* rr = ds.data() + i * Tn;
        const T* pr = p + i * Tn;
        const int64_t jend = causal ? i + 1 : Tn;
        for (int64_t j = 0; j < jend; ++j) rr[j] = pr[j] * (rr[j] - pdp[r]) * scale;
        std::fill(rr + jend, rr + Tn, T(0));
      }
    }
    gemm(false, false, Tn, D, Tn, T(1), ds.data(), Tn, k, C3, T(0), dq, C3);     // dQ
    gemm(true, false, Tn, D, Tn, T(1), ds.data(), Tn, q, C3, T(0), dq + C, C3);  // dK
    gemm(true, false, Tn, D, Tn, T(1), p, Tn, g, C, T(0), dq + 2 * C, C3);       // dV
  });
}

}  // namespace tgpt::cpu

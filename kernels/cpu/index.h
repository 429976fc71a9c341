/*
 * index.h — CPU kernels for row gathers and scatters: embedding lookup and its scatter-add
 * backward, per-batch row gather (EOT pooling) and the block copy used by concat.
 *
 * Gathers and copies move bytes, so they serve every dtype. Index values must already be checked
 * to lie in range by the caller. The embedding backward splits the work by columns of the weight
 * gradient and adds the ids' rows in order, so it is bit-identical for any thread count.
 */
#pragma once

#include <cstdint>
#include <cstring>

#include "base/parallel.h"

namespace tgpt::cpu {

// out[i, :] = weight[ids[i], :] for i in [0, n); rows of row_bytes bytes.
inline void embedding_forward(char* out, const char* weight, const int64_t* ids, int64_t n,
                              int64_t row_bytes) {
  if (row_bytes == 0) return;
  parallel_for(
      n,
      [&](int64_t i) {
        std::memcpy(out + i * row_bytes, weight + ids[i] * row_bytes,
                    static_cast<size_t>(row_bytes));
      },
      n * row_bytes >= 65536 ? 2 : n + 1);
}

// dweight[ids[i], :] += g[i, :] for i in [0, n) in order; dweight [V, C] must be zeroed.
template <typename T>
void embedding_backward(T* dweight, const T* g, const int64_t* ids, int64_t n, int64_t C) {
  constexpr int64_t kCols = 64;
  int64_t chunks = (C + kCols - 1) / kCols;
  parallel_for(
      chunks,
      [&](int64_t ch) {
        int64_t c0 = ch * kCols, c1 = c0 + kCols < C ? c0 + kCols : C;
        for (int64_t i = 0; i < n; ++i) {
          T* dst = dweight + ids[i] * C;
          const T* src = g + i * C;
          for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
        }
      },
      n * C >= 32768 ? 2 : chunks + 1);
}

// out[b, :] = x[b, index[b], :] for x [B, T, row]; rows of row_bytes bytes.
inline void gather_rows_forward(char* out, const char* x, const int64_t* index, int64_t B,
                                int64_t T, int64_t row_bytes) {
  if (row_bytes == 0) return;
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(out + b * row_bytes, x + (b * T + index[b]) * row_bytes,
                static_cast<size_t>(row_bytes));
}

// dx[b, index[b], :] = g[b, :]; dx [B, T, row] must be zeroed (each b writes its own row).
inline void gather_rows_backward(char* dx, const char* g, const int64_t* index, int64_t B,
                                 int64_t T, int64_t row_bytes) {
  if (row_bytes == 0) return;
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(dx + (b * T + index[b]) * row_bytes, g + b * row_bytes,
                static_cast<size_t>(row_bytes));
}

// Copies `outer` blocks of block_bytes from src (packed) into dst, block o landing at
// dst + o * dst_stride_bytes (concat: dst already offset to this input's slot).
inline void copy_blocks(char* dst, const char* src, int64_t outer, int64_t block_bytes,
                        int64_t dst_stride_bytes) {
  if (block_bytes == 0) return;
  parallel_for(
      outer,
      [&](int64_t o) {
        std::memcpy(dst + o * dst_stride_bytes, src + o * block_bytes,
                    static_cast<size_t>(block_bytes));
      },
      outer * block_bytes >= 65536 ? 2 : outer + 1);
}

}  // namespace tgpt::cpu

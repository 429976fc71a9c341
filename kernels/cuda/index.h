/*
 * index.h — CUDA kernels for row gathers and scatters: embedding lookup and its deterministic
 * backward, gather_rows (EOT pooling) forward/backward.
 *
 * Plain C++ header: device pointers; row indices are int64 device arrays validated by the caller.
 */
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/dtype.h"

namespace tgpt::cuda {

// dst row i = src row index[i] for i in [0, n_rows); rows of row_elems elements of elem_size
// bytes (1, 2, 4 or 8).
void gather_rows(void* dst, const void* src, const int64_t* index, int64_t n_rows,
                 int64_t row_elems, size_t elem_size);
// dst row index[i] = src row i; the index values must be distinct.
void scatter_rows(void* dst, const void* src, const int64_t* index, int64_t n_rows,
                  int64_t row_elems, size_t elem_size);

// dst row o (stride dst_stride_bytes) = src row o (block_bytes, contiguous) for o in [0, outer):
// one concat input placed into the output.
void copy_blocks(void* dst, const void* src, int64_t outer, int64_t block_bytes,
                 int64_t dst_stride_bytes);

// Embedding backward as a segmented sum, deterministic without atomics: the positions are grouped
// by id on the host (CSR: for segment u, positions[offsets[u] .. offsets[u+1]) hold the rows of g
// whose id is ids[u], in increasing order). dweight[ids[u], :] = sum of those rows of g [*, C],
// added in order in f32; rows of dweight whose id never occurs are left as they are (the caller
// zeroes dweight first).
void embedding_backward(DType dt, void* dweight, const void* g, const int64_t* ids,
                        const int64_t* offsets, const int64_t* positions, int64_t n_segments,
                        int64_t C);

}  // namespace tgpt::cuda

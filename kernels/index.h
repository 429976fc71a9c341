/*
 * index.h — launchers for the row gathers and scatters of engine/ops_index.cpp: embedding lookup
 * and its deterministic backward, per-batch row gather (EOT pooling) and concat's block copy.
 *
 * Gathers and copies move bytes (any dtype, elements of esize bytes). Index arrays are host int64
 * arrays validated by the caller (the CUDA path uploads them). CPU kernels: kernels/cpu/index.h;
 * CUDA kernels: kernels/cuda/index.h. Nothing is saved for backward but the indices.
 */
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/launch.h"

namespace tgpt::kernels {

// out [n, C] row i = weight [V, C] row ids[i].
void embedding_forward(Device dev, void* out, const void* weight, const int64_t* ids, int64_t n,
                       int64_t C, size_t esize);
// dweight [V, C] (zeroed by the caller) += rows of g [n, C] at ids, added in order (f32 or f64
// on the CPU; f32, f16 or bf16 with f32 sums on CUDA).
void embedding_backward(Device dev, DType dt, void* dweight, const void* g, const int64_t* ids,
                        int64_t n, int64_t V, int64_t C);
// The dtype the embedding gradient is accumulated in for weights of dtype wdt (f32 for 16-bit
// weights on the CPU, wdt otherwise).
DType embedding_grad_dtype(Device dev, DType wdt);

// out [B, C] row b = x [B, T, C] row (b, index[b]).
void gather_rows_forward(Device dev, void* out, const void* x, const int64_t* index, int64_t B,
                         int64_t T, int64_t C, size_t esize);
// dx [B, T, C] (zeroed by the caller) row (b, index[b]) = g [B, C] row b.
void gather_rows_backward(Device dev, void* dx, const void* g, const int64_t* index, int64_t B,
                          int64_t T, int64_t C, size_t esize);

// `outer` blocks of block_bytes from src (packed) into dst, block o at dst + o * dst_stride_bytes
// (one concat input placed into the output).
void copy_blocks(Device dev, void* dst, const void* src, int64_t outer, int64_t block_bytes,
                 int64_t dst_stride_bytes);

}  // namespace tgpt::kernels

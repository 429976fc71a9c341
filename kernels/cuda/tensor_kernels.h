/*
 * tensor_kernels.h — CUDA kernels behind the Tensor basics (engine/tensor.cpp): strided copies
 * between device views, fill, and dtype conversion, all on the tgpt stream.
 *
 * Plain C++ header (no CUDA types) so the engine can include it; pointers are device pointers.
 * Layouts are given as shape/strides in elements (at most kMaxDims = 5 dims).
 */
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/dtype.h"

namespace tgpt::cuda {

// dst[i] = src[i] for every index i of `shape`, elements of elem_size bytes (1, 2, 4 or 8);
// src and dst are addressed through their own strides. dst and src must not overlap.
void strided_copy(void* dst, const int64_t* dst_strides, const void* src,
                  const int64_t* src_strides, const int64_t* shape, int nd, size_t elem_size);

// Writes the elem_size-byte pattern `bits` (little-endian, low bytes used) to every element of the
// strided view.
void fill(void* dst, const int64_t* shape, const int64_t* strides, int nd, size_t elem_size,
          uint64_t bits);

// Converts n contiguous elements between any two dtypes with the CPU's semantics (through double;
// f16/bf16 round to nearest even from f32; float -> int truncates).
void convert(const void* src, DType src_t, void* dst, DType dst_t, int64_t n);

}  // namespace tgpt::cuda

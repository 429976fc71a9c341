/*
 * index.cu — row gather/scatter and the embedding backward (see index.h).
 *
 * Gathers move raw elements (any dtype). The embedding backward launches a (segment, column
 * tile) grid: each thread owns one column of one vocabulary row and adds that id's gradient rows
 * in position order, so the result does not depend on scheduling. Work is proportional to the
 * number of ids, not to the vocabulary.
 */
#include <climits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/index.h"

namespace tgpt::cuda {

namespace {

constexpr int kThreads = 256;

template <typename E, bool kScatter>
__global__ void move_rows_kernel(E* __restrict__ dst, const E* __restrict__ src,
                                 const int64_t* __restrict__ index, int64_t n_rows,
                                 int64_t row_elems) {
  const int64_t n = n_rows * row_elems;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / row_elems, c = i % row_elems;
    if (kScatter)
      dst[index[r] * row_elems + c] = src[i];
    else
      dst[i] = src[index[r] * row_elems + c];
  }
}

template <bool kScatter>
void move_rows(void* dst, const void* src, const int64_t* index, int64_t n_rows, int64_t row_elems,
               size_t elem_size) {
  const int64_t n = n_rows * row_elems;
  if (n == 0) return;
  const unsigned grid = grid_for(n, kThreads);
  cudaStream_t s = stream();
  switch (elem_size) {
    case 1:
      move_rows_kernel<uint8_t, kScatter><<<grid, kThreads, 0, s>>>(
          static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src), index, n_rows, row_elems);
      break;
    case 2:
      move_rows_kernel<uint16_t, kScatter><<<grid, kThreads, 0, s>>>(
          static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src), index, n_rows, row_elems);
      break;
    case 4:
      move_rows_kernel<uint32_t, kScatter><<<grid, kThreads, 0, s>>>(
          static_cast<uint32_t*>(dst), static_cast<const uint32_t*>(src), index, n_rows, row_elems);
      break;
    case 8:
      move_rows_kernel<uint64_t, kScatter><<<grid, kThreads, 0, s>>>(
          static_cast<uint64_t*>(dst), static_cast<const uint64_t*>(src), index, n_rows, row_elems);
      break;
    default: TGPT_FAIL("cuda gather/scatter rows: unsupported element size ", elem_size);
  }
  CUDA_CHECK_LAUNCH();
}

template <typename S>
__global__ void embedding_backward_kernel(S* __restrict__ dweight, const S* __restrict__ g,
                                          const int64_t* __restrict__ ids,
                                          const int64_t* __restrict__ offsets,
                                          const int64_t* __restrict__ positions, int64_t C) {
  const int64_t u = blockIdx.x;
  const int64_t c = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float acc = 0.f;
  for (int64_t k = offsets[u]; k < offsets[u + 1]; ++k) acc += to_f32(g[positions[k] * C + c]);
  dweight[ids[u] * C + c] = from_f32<S>(acc);
}

}  // namespace

void gather_rows(void* dst, const void* src, const int64_t* index, int64_t n_rows,
                 int64_t row_elems, size_t elem_size) {
  move_rows<false>(dst, src, index, n_rows, row_elems, elem_size);
}

void scatter_rows(void* dst, const void* src, const int64_t* index, int64_t n_rows,
                  int64_t row_elems, size_t elem_size) {
  move_rows<true>(dst, src, index, n_rows, row_elems, elem_size);
}

void copy_blocks(void* dst, const void* src, int64_t outer, int64_t block_bytes,
                 int64_t dst_stride_bytes) {
  if (outer == 0 || block_bytes == 0) return;
  TGPT_CHECK(outer > 0 && block_bytes > 0 && dst_stride_bytes >= block_bytes,
             "concat (CUDA): bad block copy: ", outer, " blocks of ", block_bytes,
             " bytes, destination stride ", dst_stride_bytes, " bytes");
  // cudaMemcpy2DAsync takes pitches (and so widths) up to the device's maximum pitch; beyond it,
  // each block (contiguous in both buffers) is one plain copy.
  static const int64_t max_pitch = [] {
    int dev = 0, pitch = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&pitch, cudaDevAttrMaxPitch, dev));
    return static_cast<int64_t>(pitch);
  }();
  if (dst_stride_bytes <= max_pitch) {
    CUDA_CHECK(cudaMemcpy2DAsync(dst, static_cast<size_t>(dst_stride_bytes), src,
                                 static_cast<size_t>(block_bytes), static_cast<size_t>(block_bytes),
                                 static_cast<size_t>(outer), cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  for (int64_t o = 0; o < outer; ++o)
    CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + o * dst_stride_bytes,
                               static_cast<const char*>(src) + o * block_bytes,
                               static_cast<size_t>(block_bytes), cudaMemcpyDeviceToDevice,
                               stream()));
}

void embedding_backward(DType dt, void* dweight, const void* g, const int64_t* ids,
                        const int64_t* offsets, const int64_t* positions, int64_t n_segments,
                        int64_t C) {
  if (n_segments == 0 || C == 0) return;
  TGPT_CHECK(n_segments <= INT_MAX, "cuda embedding backward: ", n_segments, " distinct ids");
  const int64_t tiles = (C + kThreads - 1) / kThreads;
  TGPT_CHECK(tiles <= 65535, "cuda embedding backward: row length ", C, " too large");
  dim3 grid(static_cast<unsigned>(n_segments), static_cast<unsigned>(tiles));
  dispatch_storage(dt, "embedding backward", [&](auto tag) {
    using S = decltype(tag);
    embedding_backward_kernel<S><<<grid, kThreads, 0, stream()>>>(
        static_cast<S*>(dweight), static_cast<const S*>(g), ids, offsets, positions, C);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace tgpt::cuda

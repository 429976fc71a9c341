/*
 * reduce.cuh — the deterministic row-sum machinery shared by reduce.cu (sum / mean) and
 * mse_loss.cu (included from .cu files only, inside an anonymous namespace of tgpt::cuda).
 *
 * A block of 256 threads per (row, chunk); each thread sums a strided subset in order, the block
 * reduces in a fixed order (common.cuh). Long rows with few rows are split into chunks whose
 * partial sums a second kernel adds in chunk order. The split depends only on (rows, n), so
 * results are bit-reproducible. `Load` maps an element index to the f32 value summed.
 */
#pragma once

#include <algorithm>

#include "kernels/cuda/common.cuh"

namespace tgpt::cuda::row_sums {

constexpr int kThreads = 256;

// Element loaders for the reduction kernels.
template <typename S>
struct LoadValue {
  const S* x;
  __device__ float operator()(int64_t i) const { return to_f32(x[i]); }
};
template <typename S>
struct LoadSquaredDiff {
  const S* a;
  const S* b;
  __device__ float operator()(int64_t i) const {
    const float d = to_f32(a[i]) - to_f32(b[i]);
    return d * d;
  }
};

// Block (row = blockIdx.x, chunk = blockIdx.y) sums elements [chunk * per_chunk, ...) of its row.
// With one chunk it writes out[row] = S(sum / divisor); otherwise partial[row * chunks + chunk].
template <typename S, typename Load>
__global__ void row_sum_kernel(S* __restrict__ out, float* __restrict__ partial, Load load,
                               int64_t n, int64_t per_chunk, float divisor) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const int64_t j0 = int64_t(blockIdx.y) * per_chunk;
  const int64_t j1 = min(n, j0 + per_chunk);
  float s = 0.f;
  for (int64_t j = j0 + threadIdx.x; j < j1; j += blockDim.x) s += load(row * n + j);
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) {
    if (gridDim.y == 1)
      out[row] = from_f32<S>(s / divisor);
    else
      partial[row * gridDim.y + blockIdx.y] = s;
  }
}

template <typename S>
__global__ void row_sum_final_kernel(S* __restrict__ out, const float* __restrict__ partial,
                                     int64_t chunks, float divisor) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  float s = 0.f;
  for (int64_t k = threadIdx.x; k < chunks; k += blockDim.x) s += partial[row * chunks + k];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) out[row] = from_f32<S>(s / divisor);
}

template <typename S, typename Load>
void launch_row_sum(S* out, Load load, int64_t rows, int64_t n, float divisor) {
  if (rows == 0) return;
  TGPT_CHECK(rows <= INT32_MAX, "cuda row_sum: ", rows, " rows");
  // Few long rows: split each row into chunks of at least 8192 elements (at most 512 chunks).
  int64_t chunks = 1;
  if (rows < 256 && n > 16384) {
    const int64_t per = std::max<int64_t>(8192, (n + 511) / 512);
    chunks = (n + per - 1) / per;
  }
  const int64_t per_chunk = chunks > 1 ? (n + chunks - 1) / chunks : std::max<int64_t>(n, 1);
  Scratch partial(chunks > 1 ? static_cast<size_t>(rows * chunks) * sizeof(float) : 0);
  dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(chunks));
  row_sum_kernel<S, Load>
      <<<grid, kThreads, 0, stream()>>>(out, partial.as<float>(), load, n, per_chunk, divisor);
  CUDA_CHECK_LAUNCH();
  if (chunks > 1) {
    row_sum_final_kernel<S><<<static_cast<unsigned>(rows), kThreads, 0, stream()>>>(
        out, partial.as<float>(), chunks, divisor);
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace tgpt::cuda::row_sums

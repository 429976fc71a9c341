/*
 * bias_activation.cu — fused bias + activation out = act(x + bias) on rows x [N, C], forward and
 * backward (dx, dbias), f32 math on f32/f16/bf16 storage.
 *
 * Forward: one grid-stride elementwise pass (read x and bias, write out).
 * Backward: a 2-D grid of (32-column tile, chunk of rows) blocks with 32 x 8 threads; each
 * thread walks its column over the chunk's rows (every 8th row), writes dx and keeps an f32 sum;
 * the 8 row-thread sums are added in order through shared memory into a per-chunk partial, and a
 * second kernel adds the chunk partials in chunk order into dbias. The chunking depends only on
 * N, so dbias is bitwise reproducible (no atomics). See the header for why this is not a
 * cuBLASLt epilogue (tanh GELU only, no QuickGELU).
 */
#include "kernels/cuda/bias_activation.h"
#include "kernels/cuda/common.cuh"

namespace tgpt::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kColTile = 32, kRowThreads = 8;

__device__ __forceinline__ float bias_act_value(Activation op, float v) {
  switch (op) {
    case Activation::relu: return v > 0.f ? v : 0.f;
    case Activation::gelu: return v * 0.5f * (1.f + erff(v * 0.70710678118654752440f));
    default: return v * (1.f / (1.f + expf(-1.702f * v)));
  }
}

__device__ __forceinline__ float bias_act_derivative(Activation op, float v) {
  switch (op) {
    case Activation::relu: return v > 0.f ? 1.f : 0.f;
    case Activation::gelu: {
      const float cdf = 0.5f * (1.f + erff(v * 0.70710678118654752440f));
      const float pdf = 0.39894228040143267794f * expf(-0.5f * v * v);
      return cdf + v * pdf;
    }
    default: {
      const float s = 1.f / (1.f + expf(-1.702f * v));
      return s + 1.702f * v * s * (1.f - s);
    }
  }
}

template <typename S>
__global__ void bias_activation_forward_kernel(S* __restrict__ out, const S* __restrict__ x,
                                               const S* __restrict__ bias, int64_t n, int64_t C,
                                               Activation op) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_f32<S>(bias_act_value(op, to_f32(x[i]) + to_f32(bias[i % C])));
}

// Block (kColTile, kRowThreads) over columns [blockIdx.x * kColTile, +kColTile) and rows
// [blockIdx.y * rows_per_chunk, +rows_per_chunk). partial [chunks, C] may be null (no dbias),
// dx may be null (dbias only).
template <typename S>
__global__ void bias_activation_backward_kernel(S* __restrict__ dx, float* __restrict__ partial,
                                                const S* __restrict__ g, const S* __restrict__ x,
                                                const S* __restrict__ bias, int64_t N, int64_t C,
                                                int64_t rows_per_chunk, Activation op) {
  __shared__ float sums[kRowThreads][kColTile];
  const int64_t c = blockIdx.x * int64_t(kColTile) + threadIdx.x;
  const int64_t r0 = blockIdx.y * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < N ? r0 + rows_per_chunk : N;
  float acc = 0.f;
  if (c < C) {
    const float b = to_f32(bias[c]);
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowThreads) {
      const int64_t i = r * C + c;
      const float d = to_f32(g[i]) * bias_act_derivative(op, to_f32(x[i]) + b);
      if (dx) dx[i] = from_f32<S>(d);
      acc += d;
    }
  }
  if (!partial) return;  // uniform over the block
  sums[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float s = sums[0][threadIdx.x];
    for (int k = 1; k < kRowThreads; ++k) s += sums[k][threadIdx.x];
    partial[blockIdx.y * C + c] = s;
  }
}

template <typename S>
__global__ void bias_activation_dbias_kernel(S* __restrict__ dbias,
                                             const float* __restrict__ partial, int64_t chunks,
                                             int64_t C) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  float s = 0.f;
  for (int64_t k = 0; k < chunks; ++k) s += partial[k * C + c];
  dbias[c] = from_f32<S>(s);
}

}  // namespace

void bias_activation_forward(DType dt, Activation act, void* out, const void* x, const void* bias,
                             int64_t N, int64_t C) {
  const int64_t n = N * C;
  if (n == 0) return;
  dispatch_storage(dt, "bias_activation", [&](auto tag) {
    using S = decltype(tag);
    bias_activation_forward_kernel<S><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
        static_cast<S*>(out), static_cast<const S*>(x), static_cast<const S*>(bias), n, C, act);
    CUDA_CHECK_LAUNCH();
  });
}

void bias_activation_backward(DType dt, Activation act, void* dx, void* dbias, const void* dout,
                              const void* x, const void* bias, int64_t N, int64_t C) {
  if (C == 0 || (!dx && !dbias)) return;
  dispatch_storage(dt, "bias_activation backward", [&](auto tag) {
    using S = decltype(tag);
    if (N == 0) {  // dbias of no rows is zero
      if (dbias)
        CUDA_CHECK(cudaMemsetAsync(dbias, 0, static_cast<size_t>(C) * sizeof(S), stream()));
      return;
    }
    // At least 64 rows per chunk, at most 1024 chunks: a function of N only.
    int64_t rows_per_chunk = (N + 1023) / 1024;
    if (rows_per_chunk < 64) rows_per_chunk = 64;
    const int64_t chunks = (N + rows_per_chunk - 1) / rows_per_chunk;
    const int64_t col_tiles = (C + kColTile - 1) / kColTile;
    TGPT_CHECK(col_tiles < (int64_t(1) << 31), "bias_activation backward: C = ", C, " too large");
    Scratch partial(dbias ? static_cast<size_t>(chunks * C) * sizeof(float) : 0);
    const dim3 grid(static_cast<unsigned>(col_tiles), static_cast<unsigned>(chunks));
    bias_activation_backward_kernel<S><<<grid, dim3(kColTile, kRowThreads), 0, stream()>>>(
        static_cast<S*>(dx), dbias ? partial.as<float>() : nullptr, static_cast<const S*>(dout),
        static_cast<const S*>(x), static_cast<const S*>(bias), N, C, rows_per_chunk, act);
    CUDA_CHECK_LAUNCH();
    if (dbias) {
      bias_activation_dbias_kernel<S>
          <<<static_cast<unsigned>((C + kThreads - 1) / kThreads), kThreads, 0, stream()>>>(
              static_cast<S*>(dbias), partial.as<float>(), chunks, C);
      CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace tgpt::cuda

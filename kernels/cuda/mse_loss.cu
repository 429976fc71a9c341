/*
 * mse_loss.cu — mean squared error, forward (a row sum of squared differences, reduce.cuh) and
 * backward (one thread per element), f32 arithmetic on f32/f16/bf16 storage (see mse_loss.h).
 */
#include "kernels/cuda/mse_loss.h"
#include "kernels/cuda/reduce.cuh"

namespace tgpt::cuda {

namespace {

constexpr int kThreads = 256;

#define GRID_STRIDE_LOOP(i, n)                                              \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); \
       i += int64_t(gridDim.x) * blockDim.x)

template <typename S>
__global__ void mse_backward_kernel(S* __restrict__ da, S* __restrict__ db, const S* __restrict__ a,
                                    const S* __restrict__ b, const S* __restrict__ g, int64_t n) {
  const float scale = 2.f * to_f32(g[0]) / static_cast<float>(n);
  GRID_STRIDE_LOOP(i, n) {
    const float d = scale * (to_f32(a[i]) - to_f32(b[i]));
    if (da) da[i] = from_f32<S>(d);
    if (db) db[i] = from_f32<S>(-d);
  }
}

}  // namespace

using row_sums::launch_row_sum;
using row_sums::LoadSquaredDiff;

void mse_forward(DType dt, void* out, const void* a, const void* b, int64_t n) {
  dispatch_storage(dt, "mse_loss", [&](auto tag) {
    using S = decltype(tag);
    // n = 0: the block sums nothing and divides 0 by 0 -> NaN, as PyTorch.
    launch_row_sum<S>(static_cast<S*>(out),
                      LoadSquaredDiff<S>{static_cast<const S*>(a), static_cast<const S*>(b)}, 1, n,
                      static_cast<float>(n));
  });
}

void mse_backward(DType dt, void* da, void* db, const void* a, const void* b, const void* g,
                  int64_t n) {
  if (n == 0) return;
  dispatch_storage(dt, "mse_loss backward", [&](auto tag) {
    using S = decltype(tag);
    mse_backward_kernel<S><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
        static_cast<S*>(da), static_cast<S*>(db), static_cast<const S*>(a),
        static_cast<const S*>(b), static_cast<const S*>(g), n);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace tgpt::cuda

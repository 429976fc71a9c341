/*
 * cross_entropy.cu — softmax cross-entropy on materialised logits (see cross_entropy.h).
 *
 * Forward: one block per row computes max, sum of exp and sum of logits with fixed-order block
 * reductions, and writes the row loss and logsumexp; a single block then adds the row losses in
 * a fixed order and divides by the count. Backward: one thread per logit.
 */
#include <climits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cross_entropy.h"

namespace tgpt::cuda {

namespace {

constexpr int kThreads = 256;

template <typename S>
__global__ void cross_entropy_rows_kernel(float* __restrict__ row_loss, float* __restrict__ lse_out,
                                          const S* __restrict__ logits,
                                          const int64_t* __restrict__ target, int64_t V, float ls,
                                          int64_t ignore_index) {
  __shared__ float scratch[32];
  const int64_t n = blockIdx.x;
  const int64_t t = target[n];
  if (t == ignore_index) {  // uniform across the block: no barrier is skipped by some threads only
    if (threadIdx.x == 0) {
      row_loss[n] = 0.f;
      lse_out[n] = 0.f;
    }
    return;
  }
  const S* x = logits + n * V;
  float mx = -INFINITY;
  for (int64_t c = threadIdx.x; c < V; c += blockDim.x) mx = fmaxf(mx, to_f32(x[c]));
  mx = block_max(mx, scratch);
  float se = 0.f, sx = 0.f;
  for (int64_t c = threadIdx.x; c < V; c += blockDim.x) {
    const float v = to_f32(x[c]);
    se += expf(v - mx);
    sx += v;
  }
  se = block_sum(se, scratch);
  sx = block_sum(sx, scratch);
  if (threadIdx.x == 0) {
    const float lse = mx + logf(se);
    float loss = (1.f - ls) * (lse - to_f32(x[t]));
    if (ls != 0.f) loss += ls / static_cast<float>(V) * (static_cast<float>(V) * lse - sx);
    row_loss[n] = loss;
    lse_out[n] = lse;
  }
}

template <typename S>
__global__ void cross_entropy_mean_kernel(S* __restrict__ out, const float* __restrict__ row_loss,
                                          int64_t N, float count) {
  __shared__ float scratch[32];
  float s = 0.f;
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) s += row_loss[n];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) out[0] = from_f32<S>(s / count);  // 0 / 0 = NaN when every row is ignored
}

template <typename S>
__global__ void cross_entropy_backward_kernel(S* __restrict__ dlogits, const S* __restrict__ logits,
                                              const float* __restrict__ lse,
                                              const int64_t* __restrict__ target,
                                              const S* __restrict__ dloss, int64_t N, int64_t V,
                                              float ls, int64_t ignore_index, float count) {
  const float scale = to_f32(dloss[0]) / count;
  const float off = ls / static_cast<float>(V);
  const int64_t total = N * V;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / V, c = i % V;
    const int64_t t = target[n];
    if (t == ignore_index) {
      dlogits[i] = from_f32<S>(0.f);
      continue;
    }
    const float p = expf(to_f32(logits[i]) - lse[n]);
    const float d = p - off - (c == t ? 1.f - ls : 0.f);
    dlogits[i] = from_f32<S>(scale * d);
  }
}

}  // namespace

void cross_entropy_forward(DType dt, void* out, float* lse, const void* logits,
                           const int64_t* target, int64_t N, int64_t V, double label_smoothing,
                           int64_t ignore_index, int64_t count) {
  TGPT_CHECK(N <= INT_MAX, "cuda cross_entropy: ", N, " rows");
  Scratch row_loss(static_cast<size_t>(N > 0 ? N : 1) * sizeof(float));
  dispatch_storage(dt, "cross_entropy", [&](auto tag) {
    using S = decltype(tag);
    if (N > 0) {
      cross_entropy_rows_kernel<S><<<static_cast<unsigned>(N), kThreads, 0, stream()>>>(
          row_loss.as<float>(), lse, static_cast<const S*>(logits), target, V,
          static_cast<float>(label_smoothing), ignore_index);
      CUDA_CHECK_LAUNCH();
    }
    cross_entropy_mean_kernel<S><<<1, 1024, 0, stream()>>>(
        static_cast<S*>(out), row_loss.as<float>(), N, static_cast<float>(count));
    CUDA_CHECK_LAUNCH();
  });
}

void cross_entropy_backward(DType dt, void* dlogits, const void* logits, const float* lse,
                            const int64_t* target, const void* dloss, int64_t N, int64_t V,
                            double label_smoothing, int64_t ignore_index, int64_t count) {
  const int64_t total = N * V;
  if (total == 0) return;
  dispatch_storage(dt, "cross_entropy backward", [&](auto tag) {
    using S = decltype(tag);
    cross_entropy_backward_kernel<S><<<grid_for(total, kThreads), kThreads, 0, stream()>>>(
        static_cast<S*>(dlogits), static_cast<const S*>(logits), lse, target,
        static_cast<const S*>(dloss), N, V, static_cast<float>(label_smoothing), ignore_index,
        static_cast<float>(count > 0 ? count : 1));
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace tgpt::cuda

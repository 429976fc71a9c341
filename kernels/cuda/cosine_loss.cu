/*
 * cosine_loss.cu — CUDA kernels of TGP-T's classification loss (see cosine_loss.h):
 *   forward:  cosine_logits_kernel (one warp per (n, k): ||x_n|| and x_n · W_k, both over F),
 *             cosine_softmax_kernel (one block per row: softmax in place -> p, row loss),
 *             cosine_loss_mean_kernel (one block, rows summed in order).
 *   backward: cosine_dweight_kernel (one thread per (k, f), rows summed in order),
 *             cosine_dxn_kernel (one thread per (n, f), classes summed in order),
 *             cosine_dx_kernel (one block per row: the l2_normalize backward).
 * Sizes in TGP-T are tiny (N = batch, F = 1024, K = classes), so the kernels favour parallelism
 * over reuse: x and W stay in L2. Dot products and class sums accumulate in f64: the logits are
 * scaled by 100, which would amplify f32 summation error into the probabilities. Lab:
 * bench/lab_cosine_loss.cu (version 2 here).
 */
#include <climits>
#include <cmath>

#include "base/cuda/cuda_common.h"
#include "kernels/cuda/cosine_loss.h"
#include "kernels/cuda/fused_util.cuh"

namespace tgpt::cuda {

namespace {

constexpr int kWarps = 8;

__device__ __forceinline__ double warp_sum_f64(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// z[n, k] = scale · (x_n · W_k) / max(||x_n||, eps) into prob; norm[n] = ||x_n||.
template <typename T>
__global__ void __launch_bounds__(kWarps * 32)
    cosine_logits_kernel(float* prob, float* norm, const T* x, const T* w, int N, int F, int K,
                         float scale, float eps) {
  const int64_t gw = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (gw >= static_cast<int64_t>(N) * K) return;  // warp-uniform
  const int n = static_cast<int>(gw / K), k = static_cast<int>(gw % K);
  const T* xr = x + static_cast<size_t>(n) * F;
  const T* wr = w + static_cast<size_t>(k) * F;
  // f64 accumulation: the logits are scaled by 100, so an f32 dot's rounding over F = 1024 terms
  // would show up at ~1e-5 in the probabilities. The kernel is latency-bound; f64 costs nothing.
  double ss = 0.0, dot = 0.0;
  for (int f = lane; f < F; f += 32) {
    const double xv = to_f32(xr[f]);
    ss += xv * xv;
    dot += xv * static_cast<double>(to_f32(wr[f]));
  }
  ss = warp_sum_f64(ss);
  dot = warp_sum_f64(dot);
  if (lane == 0) {
    const double nrm = sqrt(ss);
    prob[gw] = static_cast<float>(scale * dot / fmax(nrm, static_cast<double>(eps)));
    if (k == 0) norm[n] = static_cast<float>(nrm);
  }
}

// One block per row: p = softmax(z) in place, row_loss[n] = logsumexp(z) - z[t].
__global__ void __launch_bounds__(256)
    cosine_softmax_kernel(float* prob, float* row_loss, const int64_t* target, int K) {
  const int n = blockIdx.x;
  float* z = prob + static_cast<size_t>(n) * K;
  float mx = -INFINITY;
  for (int k = threadIdx.x; k < K; k += blockDim.x) mx = fmaxf(mx, z[k]);
  mx = block_max(mx);
  const float zt = z[target[n]];  // read before any thread overwrites the row (barrier below)
  float s = 0.f;
  for (int k = threadIdx.x; k < K; k += blockDim.x) s += expf(z[k] - mx);
  s = block_sum(s);
  const float lse = mx + logf(s);
  if (threadIdx.x == 0) row_loss[n] = lse - zt;
  for (int k = threadIdx.x; k < K; k += blockDim.x) z[k] = expf(z[k] - lse);
}

__global__ void __launch_bounds__(1024)
    cosine_loss_mean_kernel(void* loss, DType dt, const float* row_loss, int N) {
  __shared__ double sh[1024];
  double s = 0.0;
  for (int i = threadIdx.x; i < N; i += blockDim.x) s += row_loss[i];
  sh[threadIdx.x] = s;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) sh[threadIdx.x] += sh[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) write_scalar(loss, dt, static_cast<float>(sh[0] / N));
}

// dW[k, f] = scale · g/N · Σ_n (p[n, k] - [t_n = k]) · x[n, f] / max(||x_n||, eps).
template <typename T>
__global__ void cosine_dweight_kernel(T* dw, const float* prob, const float* norm, const T* x,
                                      const int64_t* target, int N, int F, int K, float scale,
                                      float eps, const void* dloss, DType dloss_dt) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(K) * F) return;
  const int k = static_cast<int>(i / F), f = static_cast<int>(i % F);
  const float g = read_scalar(dloss, dloss_dt) / static_cast<float>(N) * scale;
  double acc = 0.0;
  for (int n = 0; n < N; ++n) {
    const float dz = prob[static_cast<size_t>(n) * K + k] - (target[n] == k ? 1.f : 0.f);
    acc +=
        static_cast<double>(dz) * to_f32(x[static_cast<size_t>(n) * F + f]) / fmaxf(norm[n], eps);
  }
  dw[i] = from_f32<T>(static_cast<float>(g * acc));
}

// dxn[n, f] = scale · g/N · Σ_k (p[n, k] - [t_n = k]) · W[k, f].
template <typename T>
__global__ void cosine_dxn_kernel(float* dxn, const float* prob, const T* w, const int64_t* target,
                                  int N, int F, int K, float scale, const void* dloss,
                                  DType dloss_dt) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(N) * F) return;
  const int n = static_cast<int>(i / F), f = static_cast<int>(i % F);
  const float g = read_scalar(dloss, dloss_dt) / static_cast<float>(N) * scale;
  const float* p = prob + static_cast<size_t>(n) * K;
  const int64_t t = target[n];
  double acc = 0.0;  // K terms (1000 for ImageNet): f64 keeps the sum exact to f32 rounding
  for (int k = 0; k < K; ++k)
    acc += static_cast<double>(p[k] - (t == k ? 1.f : 0.f)) *
           to_f32(w[static_cast<size_t>(k) * F + f]);
  dxn[i] = static_cast<float>(g * acc);
}

// One block per row, the l2_normalize backward of kernels/cpu/norm.h: with n = max(||x||, eps) and
// y = x / n, dx = (dxn - y (dxn · y)) / n where ||x|| >= eps, else dxn / n.
template <typename T>
__global__ void __launch_bounds__(256)
    cosine_dx_kernel(T* dx, const float* dxn, const float* norm, const T* x, int F, float eps) {
  const int n = blockIdx.x;
  const float* d = dxn + static_cast<size_t>(n) * F;
  const T* xr = x + static_cast<size_t>(n) * F;
  T* o = dx + static_cast<size_t>(n) * F;
  const float nrm = norm[n];
  const float den = fmaxf(nrm, eps);
  if (nrm >= eps && nrm > 0.f) {
    float dot = 0.f;
    for (int f = threadIdx.x; f < F; f += blockDim.x) dot += d[f] * (to_f32(xr[f]) / den);
    dot = block_sum(dot);
    for (int f = threadIdx.x; f < F; f += blockDim.x) {
      const float y = to_f32(xr[f]) / den;
      o[f] = from_f32<T>((d[f] - y * dot) / den);
    }
  } else {
    for (int f = threadIdx.x; f < F; f += blockDim.x) o[f] = from_f32<T>(d[f] / den);
  }
}

unsigned blocks_for(int64_t n, int threads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

template <typename T>
void forward_typed(void* loss, float* norm, float* prob, float* row_loss, const void* x,
                   const void* w, DType dt, const int64_t* target, int N, int F, int K, float scale,
                   float eps) {
  const int64_t warps = static_cast<int64_t>(N) * K;
  cosine_logits_kernel<T><<<blocks_for(warps, kWarps), kWarps * 32, 0, stream()>>>(
      prob, norm, static_cast<const T*>(x), static_cast<const T*>(w), N, F, K, scale, eps);
  CUDA_CHECK_LAUNCH();
  cosine_softmax_kernel<<<N, 256, 0, stream()>>>(prob, row_loss, target, K);
  CUDA_CHECK_LAUNCH();
  cosine_loss_mean_kernel<<<1, 1024, 0, stream()>>>(loss, dt, row_loss, N);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void backward_typed(void* dx, void* dw, float* dxn, const float* prob, const float* norm,
                    const void* x, const void* w, const int64_t* target, int N, int F, int K,
                    float scale, float eps, const void* dloss, DType dloss_dt) {
  if (dw) {
    cosine_dweight_kernel<T><<<blocks_for(static_cast<int64_t>(K) * F, 256), 256, 0, stream()>>>(
        static_cast<T*>(dw), prob, norm, static_cast<const T*>(x), target, N, F, K, scale, eps,
        dloss, dloss_dt);
    CUDA_CHECK_LAUNCH();
  }
  if (dx) {
    cosine_dxn_kernel<T><<<blocks_for(static_cast<int64_t>(N) * F, 256), 256, 0, stream()>>>(
        dxn, prob, static_cast<const T*>(w), target, N, F, K, scale, dloss, dloss_dt);
    CUDA_CHECK_LAUNCH();
    cosine_dx_kernel<T>
        <<<N, 256, 0, stream()>>>(static_cast<T*>(dx), dxn, norm, static_cast<const T*>(x), F, eps);
    CUDA_CHECK_LAUNCH();
  }
}

void check_sizes(int64_t N, int64_t F, int64_t K) {
  TGPT_CHECK(N > 0 && F > 0 && K > 0 && N <= INT_MAX / 2 && F <= INT_MAX / 2 && K <= INT_MAX / 2 &&
                 N * K <= (int64_t(1) << 36) && N * F <= (int64_t(1) << 36) &&
                 K * F <= (int64_t(1) << 36),
             "cosine_logit_loss (CUDA): sizes out of range: N ", N, ", F ", F, ", K ", K);
  // The logits kernel runs one warp per (row, class), kWarps warps per block, in a 1-D grid.
  const int64_t logit_blocks = (N * K + kWarps - 1) / kWarps;
  TGPT_CHECK(logit_blocks <= INT_MAX, "cosine_logit_loss (CUDA): N * K = ", N, " * ", K, " = ",
             N * K, " (row, class) pairs need ", logit_blocks, " blocks of ", kWarps,
             " warps, more than the CUDA grid limit of 2^31 - 1 blocks; split the batch");
}

}  // namespace

void cosine_logit_loss_forward(void* loss, float* norm, float* prob, float* row_loss, const void* x,
                               const void* w, DType dtype, const int64_t* target, int64_t N,
                               int64_t F, int64_t K, float scale, float eps) {
  check_sizes(N, F, K);
  const int n = static_cast<int>(N), f = static_cast<int>(F), k = static_cast<int>(K);
  switch (dtype) {
    case DType::f32:
      forward_typed<float>(loss, norm, prob, row_loss, x, w, dtype, target, n, f, k, scale, eps);
      break;
    case DType::f16:
      forward_typed<__half>(loss, norm, prob, row_loss, x, w, dtype, target, n, f, k, scale, eps);
      break;
    case DType::bf16:
      forward_typed<__nv_bfloat16>(loss, norm, prob, row_loss, x, w, dtype, target, n, f, k, scale,
                                   eps);
      break;
    default: TGPT_FAIL("cosine_logit_loss (CUDA): unsupported dtype ", dtype_name(dtype));
  }
}

void cosine_logit_loss_backward(void* dx, void* dw, float* dxn_scratch, const float* prob,
                                const float* norm, const void* x, const void* w, DType dtype,
                                const int64_t* target, int64_t N, int64_t F, int64_t K, float scale,
                                float eps, const void* dloss, DType dloss_dtype) {
  check_sizes(N, F, K);
  TGPT_CHECK(dx == nullptr || dxn_scratch != nullptr,
             "cosine_logit_loss backward (CUDA): missing dxn workspace");
  const int n = static_cast<int>(N), f = static_cast<int>(F), k = static_cast<int>(K);
  switch (dtype) {
    case DType::f32:
      backward_typed<float>(dx, dw, dxn_scratch, prob, norm, x, w, target, n, f, k, scale, eps,
                            dloss, dloss_dtype);
      break;
    case DType::f16:
      backward_typed<__half>(dx, dw, dxn_scratch, prob, norm, x, w, target, n, f, k, scale, eps,
                             dloss, dloss_dtype);
      break;
    case DType::bf16:
      backward_typed<__nv_bfloat16>(dx, dw, dxn_scratch, prob, norm, x, w, target, n, f, k, scale,
                                    eps, dloss, dloss_dtype);
      break;
    default: TGPT_FAIL("cosine_logit_loss backward (CUDA): unsupported dtype ", dtype_name(dtype));
  }
}

}  // namespace tgpt::cuda

/*
 * clip_contrastive_loss.cu — CUDA kernels of CLIP's contrastive loss (see
 * clip_contrastive_loss.h):
 *   forward:  clip_normalize_kernel (one block per row: ||x||, x / max(||x||, eps) in f32),
 *             clip_logits_kernel (one warp per (i, j): s · an_i · bn_j),
 *             clip_lse_kernel (one block per row or column: log-sum-exp),
 *             clip_loss_kernel (one block: Σ_i lse_row + lse_col - 2 Z_ii, in order, / 2N).
 *   backward: clip_dlogits_kernel (one thread per (i, j)), clip_dscale_kernel (one block, in
 *             order), clip_dnormalized_kernel (one thread per (row, e)), clip_dx_kernel (one block
 *             per row: the l2_normalize backward).
 * CLIP batches are small (N up to a few thousand, E <= 1024): the kernels favour parallelism
 * over reuse; an, bn and Z stay in L2. Lab: bench/lab_clip_contrastive_loss.cu.
 */
#include <climits>
#include <cmath>

#include "base/cuda/cuda_common.h"
#include "kernels/cuda/clip_contrastive_loss.h"
#include "kernels/cuda/fused_util.cuh"

namespace tgpt::cuda {

namespace {

constexpr int kWarps = 8;
constexpr double kLogitScaleMax = 4.605170185988092;  // ln 100

// s = exp(min(p, ln 100)), the comparison in double as on the CPU.
__device__ __forceinline__ float logit_scale(const void* param, DType pdt) {
  return static_cast<float>(
      exp(fmin(static_cast<double>(read_scalar(param, pdt)), kLogitScaleMax)));
}

template <typename T>
__global__ void __launch_bounds__(256)
    clip_normalize_kernel(float* xn, float* norm, const T* x, int E, float eps) {
  const int n = blockIdx.x;
  const T* xr = x + static_cast<size_t>(n) * E;
  float ss = 0.f;
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    const float v = to_f32(xr[e]);
    ss += v * v;
  }
  ss = block_sum(ss);
  const float nrm = sqrtf(ss);
  const float den = fmaxf(nrm, eps);
  for (int e = threadIdx.x; e < E; e += blockDim.x)
    xn[static_cast<size_t>(n) * E + e] = to_f32(xr[e]) / den;
  if (threadIdx.x == 0) norm[n] = nrm;
}

__global__ void __launch_bounds__(kWarps * 32)
    clip_logits_kernel(float* logits, const float* an, const float* bn, int N, int E,
                       const void* param, DType pdt) {
  const int64_t gw = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (gw >= static_cast<int64_t>(N) * N) return;  // warp-uniform
  const int i = static_cast<int>(gw / N), j = static_cast<int>(gw % N);
  const float* a = an + static_cast<size_t>(i) * E;
  const float* b = bn + static_cast<size_t>(j) * E;
  float dot = 0.f;
  for (int e = lane; e < E; e += 32) dot += a[e] * b[e];
  dot = warp_sum(dot);
  if (lane == 0) logits[gw] = logit_scale(param, pdt) * dot;
}

// One block per row (columns = false) or column: lse[r] = log Σ exp(z).
__global__ void __launch_bounds__(256)
    clip_lse_kernel(float* lse, const float* logits, int N, bool columns) {
  const int r = blockIdx.x;
  const size_t base = columns ? static_cast<size_t>(r) : static_cast<size_t>(r) * N;
  const size_t stride = columns ? static_cast<size_t>(N) : 1;
  float mx = -INFINITY;
  for (int k = threadIdx.x; k < N; k += blockDim.x) mx = fmaxf(mx, logits[base + k * stride]);
  mx = block_max(mx);
  float s = 0.f;
  for (int k = threadIdx.x; k < N; k += blockDim.x) s += expf(logits[base + k * stride] - mx);
  s = block_sum(s);
  if (threadIdx.x == 0) lse[r] = mx + logf(s);
}

__global__ void __launch_bounds__(1024)
    clip_loss_kernel(void* loss, DType dt, const float* logits, const float* lse_row,
                     const float* lse_col, int N) {
  __shared__ double sh[1024];
  double s = 0.0;
  for (int i = threadIdx.x; i < N; i += blockDim.x)
    s +=
        static_cast<double>(lse_row[i]) + lse_col[i] - 2.0 * logits[static_cast<size_t>(i) * N + i];
  sh[threadIdx.x] = s;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) sh[threadIdx.x] += sh[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) write_scalar(loss, dt, static_cast<float>(sh[0] / (2.0 * N)));
}

// dZ[i, j] = g/(2N) · (exp(Z - lse_row[i]) + exp(Z - lse_col[j]) - 2 [i = j]).
__global__ void clip_dlogits_kernel(float* dz, const float* logits, const float* lse_row,
                                    const float* lse_col, int N, const void* dloss,
                                    DType dloss_dt) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<int64_t>(N) * N) return;
  const int i = static_cast<int>(idx / N), j = static_cast<int>(idx % N);
  const float g = read_scalar(dloss, dloss_dt) / (2.f * static_cast<float>(N));
  const float z = logits[idx];
  dz[idx] = g * (expf(z - lse_row[i]) + expf(z - lse_col[j]) - (i == j ? 2.f : 0.f));
}

// dp = Σ dZ · Z (= s · dL/ds), 0 when p > ln 100 (clamped).
__global__ void __launch_bounds__(1024)
    clip_dscale_kernel(void* dparam, const float* dz, const float* logits, int64_t NN,
                       const void* param, DType pdt) {
  __shared__ double sh[1024];
  double s = 0.0;
  for (int64_t k = threadIdx.x; k < NN; k += blockDim.x)
    s += static_cast<double>(dz[k]) * logits[k];
  sh[threadIdx.x] = s;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) sh[threadIdx.x] += sh[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const bool clamped = static_cast<double>(read_scalar(param, pdt)) > kLogitScaleMax;
    write_scalar(dparam, pdt, clamped ? 0.f : static_cast<float>(sh[0]));
  }
}

// dn[r, e] = s · Σ_k dZ[r, k] · other[k, e] (transposed: Σ_k dZ[k, r] · other[k, e]).
__global__ void clip_dnormalized_kernel(float* dn, const float* dz, const float* other, int N,
                                        int E, bool transposed, const void* param, DType pdt) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<int64_t>(N) * E) return;
  const int r = static_cast<int>(idx / E), e = static_cast<int>(idx % E);
  float acc = 0.f;
  for (int k = 0; k < N; ++k) {
    const float d =
        transposed ? dz[static_cast<size_t>(k) * N + r] : dz[static_cast<size_t>(r) * N + k];
    acc += d * other[static_cast<size_t>(k) * E + e];
  }
  dn[idx] = logit_scale(param, pdt) * acc;
}

// One block per row, the l2_normalize backward of kernels/cpu/norm.h with y = xn (saved):
// dx = (dn - y (dn · y)) / den where ||x|| >= eps, else dn / den; den = max(||x||, eps).
template <typename T>
__global__ void __launch_bounds__(256)
    clip_dx_kernel(T* dx, const float* dn, const float* xn, const float* norm, int E, float eps) {
  const int n = blockIdx.x;
  const float* d = dn + static_cast<size_t>(n) * E;
  const float* y = xn + static_cast<size_t>(n) * E;
  T* o = dx + static_cast<size_t>(n) * E;
  const float nrm = norm[n];
  const float den = fmaxf(nrm, eps);
  if (nrm >= eps && nrm > 0.f) {
    float dot = 0.f;
    for (int e = threadIdx.x; e < E; e += blockDim.x) dot += d[e] * y[e];
    dot = block_sum(dot);
    for (int e = threadIdx.x; e < E; e += blockDim.x) o[e] = from_f32<T>((d[e] - y[e] * dot) / den);
  } else {
    for (int e = threadIdx.x; e < E; e += blockDim.x) o[e] = from_f32<T>(d[e] / den);
  }
}

unsigned blocks_for(int64_t n, int threads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

template <typename T>
void forward_typed(void* loss, DType dt, float* an, float* bn, float* inorm, float* tnorm,
                   float* logits, float* lse_row, float* lse_col, const void* img, const void* txt,
                   const void* param, DType pdt, int N, int E, float eps) {
  clip_normalize_kernel<T><<<N, 256, 0, stream()>>>(an, inorm, static_cast<const T*>(img), E, eps);
  CUDA_CHECK_LAUNCH();
  clip_normalize_kernel<T><<<N, 256, 0, stream()>>>(bn, tnorm, static_cast<const T*>(txt), E, eps);
  CUDA_CHECK_LAUNCH();
  const int64_t warps = static_cast<int64_t>(N) * N;
  clip_logits_kernel<<<blocks_for(warps, kWarps), kWarps * 32, 0, stream()>>>(logits, an, bn, N, E,
                                                                              param, pdt);
  CUDA_CHECK_LAUNCH();
  clip_lse_kernel<<<N, 256, 0, stream()>>>(lse_row, logits, N, false);
  CUDA_CHECK_LAUNCH();
  clip_lse_kernel<<<N, 256, 0, stream()>>>(lse_col, logits, N, true);
  CUDA_CHECK_LAUNCH();
  clip_loss_kernel<<<1, 1024, 0, stream()>>>(loss, dt, logits, lse_row, lse_col, N);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void dx_typed(void* dx, float* dn, const float* dz, const float* other, const float* xn,
              const float* norm, int N, int E, bool transposed, const void* param, DType pdt,
              float eps) {
  clip_dnormalized_kernel<<<blocks_for(static_cast<int64_t>(N) * E, 256), 256, 0, stream()>>>(
      dn, dz, other, N, E, transposed, param, pdt);
  CUDA_CHECK_LAUNCH();
  clip_dx_kernel<T><<<N, 256, 0, stream()>>>(static_cast<T*>(dx), dn, xn, norm, E, eps);
  CUDA_CHECK_LAUNCH();
}

void check_sizes(int64_t N, int64_t E) {
  TGPT_CHECK(N > 0 && E > 0 && N <= INT_MAX / 2 && E <= INT_MAX / 2 &&
                 N * N <= (int64_t(1) << 34) && N * E <= (int64_t(1) << 34),
             "clip_contrastive_loss (CUDA): sizes out of range: N ", N, ", E ", E);
  const int64_t logit_blocks = (N * N + kWarps - 1) / kWarps;
  TGPT_CHECK(logit_blocks <= INT_MAX, "clip_contrastive_loss (CUDA): batch N = ", N,
             " needs more logit blocks than the CUDA grid limit; use a smaller batch");
}

void check_param_dtype(DType pdt) {
  TGPT_CHECK(pdt == DType::f32 || pdt == DType::f16 || pdt == DType::bf16,
             "clip_contrastive_loss (CUDA): logit_scale_param dtype ", dtype_name(pdt),
             " is not supported (use f32, f16 or bf16)");
}

}  // namespace

void clip_contrastive_loss_forward(void* loss, DType dtype, float* an, float* bn, float* inorm,
                                   float* tnorm, float* logits, float* lse_row, float* lse_col,
                                   const void* img, const void* txt, const void* param,
                                   DType param_dtype, int64_t N, int64_t E, float eps) {
  check_sizes(N, E);
  check_param_dtype(param_dtype);
  const int n = static_cast<int>(N), e = static_cast<int>(E);
  switch (dtype) {
    case DType::f32:
      forward_typed<float>(loss, dtype, an, bn, inorm, tnorm, logits, lse_row, lse_col, img, txt,
                           param, param_dtype, n, e, eps);
      break;
    case DType::f16:
      forward_typed<__half>(loss, dtype, an, bn, inorm, tnorm, logits, lse_row, lse_col, img, txt,
                            param, param_dtype, n, e, eps);
      break;
    case DType::bf16:
      forward_typed<__nv_bfloat16>(loss, dtype, an, bn, inorm, tnorm, logits, lse_row, lse_col, img,
                                   txt, param, param_dtype, n, e, eps);
      break;
    default: TGPT_FAIL("clip_contrastive_loss (CUDA): unsupported dtype ", dtype_name(dtype));
  }
}

void clip_contrastive_loss_backward(void* dimg, void* dtxt, void* dparam, DType dtype,
                                    float* dz_scratch, float* dn_scratch, const float* an,
                                    const float* bn, const float* inorm, const float* tnorm,
                                    const float* logits, const float* lse_row, const float* lse_col,
                                    const void* param, DType param_dtype, int64_t N, int64_t E,
                                    float eps, const void* dloss, DType dloss_dtype) {
  check_sizes(N, E);
  check_param_dtype(param_dtype);
  TGPT_CHECK(dz_scratch != nullptr && ((dimg == nullptr && dtxt == nullptr) || dn_scratch),
             "clip_contrastive_loss backward (CUDA): missing workspace");
  const int n = static_cast<int>(N), e = static_cast<int>(E);
  clip_dlogits_kernel<<<blocks_for(N * N, 256), 256, 0, stream()>>>(dz_scratch, logits, lse_row,
                                                                    lse_col, n, dloss, dloss_dtype);
  CUDA_CHECK_LAUNCH();
  if (dparam) {
    clip_dscale_kernel<<<1, 1024, 0, stream()>>>(dparam, dz_scratch, logits, N * N, param,
                                                 param_dtype);
    CUDA_CHECK_LAUNCH();
  }
  auto run = [&](auto t) {
    using T = decltype(t);
    if (dimg)
      dx_typed<T>(dimg, dn_scratch, dz_scratch, bn, an, inorm, n, e, false, param, param_dtype,
                  eps);
    if (dtxt)
      dx_typed<T>(dtxt, dn_scratch, dz_scratch, an, bn, tnorm, n, e, true, param, param_dtype, eps);
  };
  switch (dtype) {
    case DType::f32: run(float{}); break;
    case DType::f16: run(__half{}); break;
    case DType::bf16: run(__nv_bfloat16{}); break;
    default:
      TGPT_FAIL("clip_contrastive_loss backward (CUDA): unsupported dtype ", dtype_name(dtype));
  }
}

}  // namespace tgpt::cuda

/*
 * norm.cu — LayerNorm (+ fused residual add), L2 normalisation and softmax kernels (see norm.h).
 *
 * Row kernels: blocks of 8 warps, one warp per row; each lane walks the row with stride 32 and
 * the warp reduces with xor shuffles (fixed order). A warp whose row is past the end returns at
 * once (these kernels have no block-wide barriers).
 *
 * LayerNorm parameter gradients: a (C/32, chunks) grid of 32x8 blocks; the block's 32 columns
 * are summed over its chunk of rows by 8 row-threads in row order, the 8 partials added in order,
 * and a second kernel adds the chunk partials in chunk order.
 */
#include <algorithm>
#include <climits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/norm.h"

namespace tgpt::cuda {

namespace {

constexpr int kWarps = 8, kThreads = kWarps * 32;

inline unsigned row_blocks(int64_t N) {
  const int64_t b = (N + kWarps - 1) / kWarps;
  TGPT_CHECK(b <= INT_MAX, "cuda row kernel: ", N, " rows");
  return static_cast<unsigned>(b);
}

__device__ __forceinline__ int64_t warp_row() {
  return int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
}

template <typename S, bool kResidual>
__global__ void layernorm_forward_kernel(S* __restrict__ out, float* __restrict__ mean,
                                         float* __restrict__ rstd, const S* __restrict__ x,
                                         const S* __restrict__ residual, S* __restrict__ sum_out,
                                         const S* __restrict__ weight, const S* __restrict__ bias,
                                         int64_t N, int C, float eps) {
  const int64_t row = warp_row();
  if (row >= N) return;
  const int lane = threadIdx.x & 31;
  const int64_t base = row * C;
  // The normalised input: x, or s = x + residual rounded to S (written to sum_out and re-read
  // by the same lane below).
  const S* in = kResidual ? sum_out : x;
  float s = 0.f;
  for (int c = lane; c < C; c += 32) {
    float v = to_f32(x[base + c]);
    if (kResidual) {
      const S sv = from_f32<S>(v + to_f32(residual[base + c]));
      sum_out[base + c] = sv;
      v = to_f32(sv);
    }
    s += v;
  }
  const float m = warp_sum(s) / static_cast<float>(C);
  float var = 0.f;
  for (int c = lane; c < C; c += 32) {
    const float d = to_f32(in[base + c]) - m;
    var += d * d;
  }
  const float r = 1.f / sqrtf(warp_sum(var) / static_cast<float>(C) + eps);
  for (int c = lane; c < C; c += 32) {
    float y = (to_f32(in[base + c]) - m) * r;
    if (weight) y *= to_f32(weight[c]);
    if (bias) y += to_f32(bias[c]);
    out[base + c] = from_f32<S>(y);
  }
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
}

template <typename S>
__global__ void layernorm_backward_dx_kernel(S* __restrict__ dx, const S* __restrict__ dout,
                                             const S* __restrict__ x, const S* __restrict__ weight,
                                             const float* __restrict__ mean,
                                             const float* __restrict__ rstd, int64_t N, int C) {
  const int64_t row = warp_row();
  if (row >= N) return;
  const int lane = threadIdx.x & 31;
  const int64_t base = row * C;
  const float m = mean[row], r = rstd[row];
  float sg = 0.f, sgx = 0.f;
  for (int c = lane; c < C; c += 32) {
    const float g = to_f32(dout[base + c]) * (weight ? to_f32(weight[c]) : 1.f);
    const float xhat = (to_f32(x[base + c]) - m) * r;
    sg += g;
    sgx += g * xhat;
  }
  const float g_mean = warp_sum(sg) / static_cast<float>(C);
  const float gx_mean = warp_sum(sgx) / static_cast<float>(C);
  for (int c = lane; c < C; c += 32) {
    const float g = to_f32(dout[base + c]) * (weight ? to_f32(weight[c]) : 1.f);
    const float xhat = (to_f32(x[base + c]) - m) * r;
    dx[base + c] = from_f32<S>(r * (g - g_mean - xhat * gx_mean));
  }
}

constexpr int kColTile = 32, kColRows = 8;

// Partials over one chunk of rows: pw[chunk, c] = sum dout * xhat, pb[chunk, c] = sum dout.
template <typename S>
__global__ void layernorm_params_partial_kernel(float* __restrict__ pw, float* __restrict__ pb,
                                                const S* __restrict__ dout, const S* __restrict__ x,
                                                const float* __restrict__ mean,
                                                const float* __restrict__ rstd, int64_t N,
                                                int64_t C, int64_t rows_per_chunk) {
  __shared__ float sw[kColRows][kColTile + 1];
  __shared__ float sb[kColRows][kColTile + 1];
  const int64_t c = int64_t(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t r1 = min(N, r0 + rows_per_chunk);
  float aw = 0.f, ab = 0.f;
  if (c < C) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColRows) {
      const float g = to_f32(dout[r * C + c]);
      aw += g * (to_f32(x[r * C + c]) - mean[r]) * rstd[r];
      ab += g;
    }
  }
  sw[threadIdx.y][threadIdx.x] = aw;
  sb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float tw = sw[0][threadIdx.x], tb = sb[0][threadIdx.x];
    for (int k = 1; k < kColRows; ++k) {
      tw += sw[k][threadIdx.x];
      tb += sb[k][threadIdx.x];
    }
    pw[int64_t(blockIdx.y) * C + c] = tw;
    pb[int64_t(blockIdx.y) * C + c] = tb;
  }
}

template <typename S>
__global__ void layernorm_params_final_kernel(S* __restrict__ dweight, S* __restrict__ dbias,
                                              const float* __restrict__ pw,
                                              const float* __restrict__ pb, int64_t chunks,
                                              int64_t C) {
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < C;
       c += int64_t(gridDim.x) * blockDim.x) {
    float tw = 0.f, tb = 0.f;
    for (int64_t k = 0; k < chunks; ++k) {
      tw += pw[k * C + c];
      tb += pb[k * C + c];
    }
    if (dweight) dweight[c] = from_f32<S>(tw);
    if (dbias) dbias[c] = from_f32<S>(tb);
  }
}

// ---- L2 normalisation -------------------------------------------------------------------------

template <typename S>
__global__ void l2_normalize_forward_kernel(S* __restrict__ out, float* __restrict__ norm,
                                            const S* __restrict__ x, int64_t N, int C, float eps) {
  const int64_t row = warp_row();
  if (row >= N) return;
  const int lane = threadIdx.x & 31;
  const int64_t base = row * C;
  float ss = 0.f;
  for (int c = lane; c < C; c += 32) {
    const float v = to_f32(x[base + c]);
    ss += v * v;
  }
  const float nrm = sqrtf(warp_sum(ss));
  const float denom = fmaxf(nrm, eps);
  for (int c = lane; c < C; c += 32) out[base + c] = from_f32<S>(to_f32(x[base + c]) / denom);
  if (lane == 0) norm[row] = nrm;
}

template <typename S>
__global__ void l2_normalize_backward_kernel(S* __restrict__ dx, const S* __restrict__ dout,
                                             const S* __restrict__ x,
                                             const float* __restrict__ norm, int64_t N, int C,
                                             float eps) {
  const int64_t row = warp_row();
  if (row >= N) return;
  const int lane = threadIdx.x & 31;
  const int64_t base = row * C;
  // n = max(||x||, eps), y = x / n: dx = (g - y (g . y)) / n where ||x|| >= eps, g / n below
  // (as kernels/cpu/norm.h; the radial part cancels exactly for a one-element row).
  const float nrm = norm[row];
  const float den = fmaxf(nrm, eps);
  if (nrm >= eps && nrm > 0.f) {
    float dot = 0.f;
    for (int c = lane; c < C; c += 32) dot += to_f32(dout[base + c]) * (to_f32(x[base + c]) / den);
    dot = warp_sum(dot);
    for (int c = lane; c < C; c += 32) {
      const float y = to_f32(x[base + c]) / den;
      dx[base + c] = from_f32<S>((to_f32(dout[base + c]) - y * dot) / den);
    }
  } else {
    for (int c = lane; c < C; c += 32) dx[base + c] = from_f32<S>(to_f32(dout[base + c]) / den);
  }
}

// ---- softmax ------------------------------------------------------------------------------------

template <typename S, bool kLog>
__global__ void softmax_forward_kernel(S* __restrict__ out, float* __restrict__ lse_out,
                                       const S* __restrict__ x, int64_t N, int C) {
  const int64_t row = warp_row();
  if (row >= N) return;
  const int lane = threadIdx.x & 31;
  const int64_t base = row * C;
  float mx = -INFINITY;
  for (int c = lane; c < C; c += 32) mx = fmaxf(mx, to_f32(x[base + c]));
  mx = warp_max(mx);
  float s = 0.f;
  for (int c = lane; c < C; c += 32) s += expf(to_f32(x[base + c]) - mx);
  s = warp_sum(s);
  const float lse = mx + logf(s);
  if (kLog) {
    for (int c = lane; c < C; c += 32) out[base + c] = from_f32<S>(to_f32(x[base + c]) - lse);
  } else {
    const float inv = 1.f / s;
    for (int c = lane; c < C; c += 32)
      out[base + c] = from_f32<S>(expf(to_f32(x[base + c]) - mx) * inv);
  }
  if (lane == 0) lse_out[row] = lse;
}

template <typename S, bool kLog>
__global__ void softmax_backward_kernel(S* __restrict__ dx, const S* __restrict__ dout,
                                        const S* __restrict__ x, const float* __restrict__ lse,
                                        int64_t N, int C) {
  const int64_t row = warp_row();
  if (row >= N) return;
  const int lane = threadIdx.x & 31;
  const int64_t base = row * C;
  const float l = lse[row];
  float s = 0.f;  // softmax: sum dout * p; log_softmax: sum dout
  for (int c = lane; c < C; c += 32) {
    const float g = to_f32(dout[base + c]);
    s += kLog ? g : g * expf(to_f32(x[base + c]) - l);
  }
  s = warp_sum(s);
  for (int c = lane; c < C; c += 32) {
    const float g = to_f32(dout[base + c]);
    const float p = expf(to_f32(x[base + c]) - l);
    dx[base + c] = from_f32<S>(kLog ? g - p * s : p * (g - s));
  }
}

int row_length(int64_t C) {
  TGPT_CHECK(C >= 0 && C <= INT_MAX, "cuda row kernel: row length ", C);
  return static_cast<int>(C);
}

}  // namespace

void layernorm_forward(DType dt, void* out, float* mean, float* rstd, const void* x,
                       const void* residual, void* sum_out, const void* weight, const void* bias,
                       int64_t N, int64_t C, double eps) {
  if (N == 0) return;
  TGPT_CHECK(C > 0, "cuda layernorm: empty rows");
  TGPT_CHECK(!residual || sum_out, "cuda layernorm: a residual needs sum_out");
  const int c = row_length(C);
  dispatch_storage(dt, "layer_norm", [&](auto tag) {
    using S = decltype(tag);
    if (residual)
      layernorm_forward_kernel<S, true><<<row_blocks(N), kThreads, 0, stream()>>>(
          static_cast<S*>(out), mean, rstd, static_cast<const S*>(x),
          static_cast<const S*>(residual), static_cast<S*>(sum_out), static_cast<const S*>(weight),
          static_cast<const S*>(bias), N, c, static_cast<float>(eps));
    else
      layernorm_forward_kernel<S, false><<<row_blocks(N), kThreads, 0, stream()>>>(
          static_cast<S*>(out), mean, rstd, static_cast<const S*>(x), nullptr, nullptr,
          static_cast<const S*>(weight), static_cast<const S*>(bias), N, c,
          static_cast<float>(eps));
    CUDA_CHECK_LAUNCH();
  });
}

void layernorm_backward(DType dt, void* dx, void* dweight, void* dbias, const void* dout,
                        const void* x, const void* weight, const float* mean, const float* rstd,
                        int64_t N, int64_t C) {
  const int c = row_length(C);
  dispatch_storage(dt, "layer_norm backward", [&](auto tag) {
    using S = decltype(tag);
    if (dx && N > 0) {
      layernorm_backward_dx_kernel<S><<<row_blocks(N), kThreads, 0, stream()>>>(
          static_cast<S*>(dx), static_cast<const S*>(dout), static_cast<const S*>(x),
          static_cast<const S*>(weight), mean, rstd, N, c);
      CUDA_CHECK_LAUNCH();
    }
    if ((dweight || dbias) && C > 0) {
      const int64_t rows_per_chunk = std::max<int64_t>(256, (N + 127) / 128);
      const int64_t chunks = std::max<int64_t>(1, (N + rows_per_chunk - 1) / rows_per_chunk);
      Scratch pw(static_cast<size_t>(chunks * C) * sizeof(float));
      Scratch pb(static_cast<size_t>(chunks * C) * sizeof(float));
      dim3 grid(static_cast<unsigned>((C + kColTile - 1) / kColTile),
                static_cast<unsigned>(chunks));
      layernorm_params_partial_kernel<S><<<grid, dim3(kColTile, kColRows), 0, stream()>>>(
          pw.as<float>(), pb.as<float>(), static_cast<const S*>(dout), static_cast<const S*>(x),
          mean, rstd, N, C, rows_per_chunk);
      CUDA_CHECK_LAUNCH();
      layernorm_params_final_kernel<S>
          <<<grid_for(C, 256), 256, 0, stream()>>>(static_cast<S*>(dweight), static_cast<S*>(dbias),
                                                   pw.as<float>(), pb.as<float>(), chunks, C);
      CUDA_CHECK_LAUNCH();
    }
  });
}

void l2_normalize_forward(DType dt, void* out, float* norm, const void* x, int64_t N, int64_t C,
                          double eps) {
  if (N == 0) return;
  const int c = row_length(C);
  dispatch_storage(dt, "l2_normalize", [&](auto tag) {
    using S = decltype(tag);
    l2_normalize_forward_kernel<S><<<row_blocks(N), kThreads, 0, stream()>>>(
        static_cast<S*>(out), norm, static_cast<const S*>(x), N, c, static_cast<float>(eps));
    CUDA_CHECK_LAUNCH();
  });
}

void l2_normalize_backward(DType dt, void* dx, const void* dout, const void* x, const float* norm,
                           int64_t N, int64_t C, double eps) {
  if (N == 0 || C == 0) return;
  const int c = row_length(C);
  dispatch_storage(dt, "l2_normalize backward", [&](auto tag) {
    using S = decltype(tag);
    l2_normalize_backward_kernel<S><<<row_blocks(N), kThreads, 0, stream()>>>(
        static_cast<S*>(dx), static_cast<const S*>(dout), static_cast<const S*>(x), norm, N, c,
        static_cast<float>(eps));
    CUDA_CHECK_LAUNCH();
  });
}

void softmax_forward(DType dt, bool log, void* out, float* lse, const void* x, int64_t N,
                     int64_t C) {
  if (N == 0 || C == 0) return;
  const int c = row_length(C);
  dispatch_storage(dt, log ? "log_softmax" : "softmax", [&](auto tag) {
    using S = decltype(tag);
    if (log)
      softmax_forward_kernel<S, true><<<row_blocks(N), kThreads, 0, stream()>>>(
          static_cast<S*>(out), lse, static_cast<const S*>(x), N, c);
    else
      softmax_forward_kernel<S, false><<<row_blocks(N), kThreads, 0, stream()>>>(
          static_cast<S*>(out), lse, static_cast<const S*>(x), N, c);
    CUDA_CHECK_LAUNCH();
  });
}

void softmax_backward(DType dt, bool log, void* dx, const void* dout, const void* x,
                      const float* lse, int64_t N, int64_t C) {
  if (N == 0 || C == 0) return;
  const int c = row_length(C);
  dispatch_storage(dt, log ? "log_softmax backward" : "softmax backward", [&](auto tag) {
    using S = decltype(tag);
    if (log)
      softmax_backward_kernel<S, true><<<row_blocks(N), kThreads, 0, stream()>>>(
          static_cast<S*>(dx), static_cast<const S*>(dout), static_cast<const S*>(x), lse, N, c);
    else
      softmax_backward_kernel<S, false><<<row_blocks(N), kThreads, 0, stream()>>>(
          static_cast<S*>(dx), static_cast<const S*>(dout), static_cast<const S*>(x), lse, N, c);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace tgpt::cuda

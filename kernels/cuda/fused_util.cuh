/*
 * fused_util.cuh — small device helpers shared by tgpt's fused CUDA kernels (attention, vocab
 * cross-entropy, cosine loss): scalars read/written in a run-time dtype, and block reductions
 * that need no scratch argument (a warp butterfly, then one warp over the warp results). The
 * f32 <-> f16/bf16 conversions and warp reductions are common.cuh's. Header-only, CUDA sources
 * only.
 */
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "base/dtype.h"
#include "kernels/cuda/common.cuh"

namespace tgpt::cuda {

__device__ __forceinline__ float read_scalar(const void* p, DType dt) {
  if (dt == DType::f16) return __half2float(*static_cast<const __half*>(p));
  if (dt == DType::bf16) return __bfloat162float(*static_cast<const __nv_bfloat16*>(p));
  return *static_cast<const float*>(p);
}

__device__ __forceinline__ void write_scalar(void* p, DType dt, float v) {
  if (dt == DType::f16)
    *static_cast<__half*>(p) = __float2half_rn(v);
  else if (dt == DType::bf16)
    *static_cast<__nv_bfloat16*>(p) = __float2bfloat16_rn(v);
  else
    *static_cast<float*>(p) = v;
}

// Block-wide sum / max, result in every thread. blockDim.x must be a multiple of 32. The leading
// barrier lets consecutive calls reuse the shared scratch safely.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float sh[32];
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  return warp_sum(lane < nw ? sh[lane] : 0.f);
}
__device__ __forceinline__ float block_max(float v) {
  __shared__ float sh[32];
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  return warp_max(lane < nw ? sh[lane] : -INFINITY);
}

}  // namespace tgpt::cuda

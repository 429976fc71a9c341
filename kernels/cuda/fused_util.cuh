/*
 * fused_util.cuh — small device helpers shared by tgpt's fused CUDA kernels (attention, vocab
 * cross-entropy, cosine loss): f32 <-> f32/f16/bf16 conversions, scalars read/written in a
 * run-time dtype, warp and block reductions. Header-only, CUDA sources only.
 */
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "base/dtype.h"

namespace tgpt::cuda {

template <typename T>
__device__ __forceinline__ float to_f32(T v);
template <>
__device__ __forceinline__ float to_f32<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ float to_f32<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

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

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
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

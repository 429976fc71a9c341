/*
 * common.cuh — device helpers shared by the CUDA kernels (included from .cu files only):
 * f32 loads/stores of every storage type, deterministic warp and block reductions, grid sizing,
 * and the DType -> storage type dispatch used by the launchers.
 *
 * Reductions are deterministic: a warp reduces with a fixed butterfly (xor shuffles), a block
 * reduces its warps' results in warp order, so the same launch configuration always gives the same
 * bits. No kernel in tgpt accumulates floats with atomics.
 */
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "base/cuda/cuda_common.h"
#include "base/dtype.h"
#include "kernels/launch.h"

namespace tgpt::cuda {

// ---- f32 views of the storage types --------------------------------------------------------

__device__ __forceinline__ float to_f32(float v) {
  return v;
}
__device__ __forceinline__ float to_f32(__half v) {
  return __half2float(v);
}
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename S>
__device__ __forceinline__ S from_f32(float v);
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

// ---- deterministic reductions -----------------------------------------------------------------

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum (or max) over the whole block; every thread gets the result. blockDim.x must be a multiple
// of 32 and at most 1024. `scratch` is 32 floats of shared memory; the call ends with a barrier so
// the scratch can be reused by the next call.
template <bool kMax>
__device__ __forceinline__ float block_reduce(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = kMax ? warp_max(v) : warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = scratch[0];
  for (int w = 1; w < nwarps; ++w) r = kMax ? fmaxf(r, scratch[w]) : r + scratch[w];
  __syncthreads();
  return r;
}
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  return block_reduce<false>(v, scratch);
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
  return block_reduce<true>(v, scratch);
}

// ---- launch helpers -------------------------------------------------------------------------

// Blocks for a grid-stride loop over n elements (capped; the loop covers the rest).
inline unsigned grid_for(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  const int64_t cap = int64_t(1) << 20;
  return static_cast<unsigned>(b < cap ? b : cap);
}

// Calls f(S{}) with S the CUDA storage type of a floating dtype (f32, f16, bf16).
template <typename F>
void dispatch_storage(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::f32: f(float{}); return;
    case DType::f16: f(__half{}); return;
    case DType::bf16: f(__nv_bfloat16{}); return;
    default: check_kernel_dtype(Device::CUDA, dt, op); return;  // throws
  }
}

// Scratch device memory (kernels/launch.h's Scratch on the CUDA device), returned when it goes
// out of scope. Safe to free right after the launches that use it: every tgpt kernel runs on the
// one tgpt stream, so a later user of the block is ordered after them.
class Scratch : public kernels::Scratch {
 public:
  explicit Scratch(size_t nbytes) : kernels::Scratch(Device::CUDA, nbytes) {}
};

}  // namespace tgpt::cuda

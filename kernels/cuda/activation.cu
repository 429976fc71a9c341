/*
 * activation.cu — relu, exact gelu and quick_gelu, forward (optionally after a bias add) and
 * backward (see activation.h): one thread per element in a grid-stride loop, f32 arithmetic, one
 * rounding to the storage type.
 */
#include "kernels/cuda/activation.h"
#include "kernels/cuda/common.cuh"

namespace tgpt::cuda {

namespace {

constexpr int kThreads = 256;

#define GRID_STRIDE_LOOP(i, n)                                              \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); \
       i += int64_t(gridDim.x) * blockDim.x)

__device__ __forceinline__ float quick_gelu_sigmoid(float v) {
  return 1.f / (1.f + expf(-1.702f * v));
}

__device__ __forceinline__ float act_forward(Activation op, float v) {
  switch (op) {
    case Activation::relu: return v > 0.f ? v : 0.f;
    case Activation::gelu: return v * 0.5f * (1.f + erff(v * 0.70710678118654752440f));
    default: return v * quick_gelu_sigmoid(v);
  }
}

__device__ __forceinline__ float act_backward(Activation op, float g, float v) {
  switch (op) {
    case Activation::relu: return v > 0.f ? g : 0.f;
    case Activation::gelu: {
      const float cdf = 0.5f * (1.f + erff(v * 0.70710678118654752440f));
      const float pdf = 0.39894228040143267794f * expf(-0.5f * v * v);
      return g * (cdf + v * pdf);
    }
    default: {
      const float s = quick_gelu_sigmoid(v);
      return g * (s + 1.702f * v * s * (1.f - s));
    }
  }
}

template <typename S>
__global__ void activation_forward_kernel(S* __restrict__ out, const S* __restrict__ x,
                                          const S* __restrict__ bias, int64_t n, int64_t C,
                                          Activation op) {
  GRID_STRIDE_LOOP(i, n) {
    float v = to_f32(x[i]);
    if (bias) v = to_f32(from_f32<S>(v + to_f32(bias[i % C])));  // x + b rounded, as unfused
    out[i] = from_f32<S>(act_forward(op, v));
  }
}

template <typename S>
__global__ void activation_backward_kernel(S* __restrict__ dx, const S* __restrict__ g,
                                           const S* __restrict__ x, int64_t n, Activation op) {
  GRID_STRIDE_LOOP(i, n) {
    dx[i] = from_f32<S>(act_backward(op, to_f32(g[i]), to_f32(x[i])));
  }
}

}  // namespace

void activation_forward(DType dt, Activation op, void* out, const void* x, const void* bias,
                        int64_t n, int64_t C) {
  if (n == 0) return;
  TGPT_CHECK(!bias || C > 0, "cuda activation: bias with C = ", C);
  dispatch_storage(dt, "activation", [&](auto tag) {
    using S = decltype(tag);
    activation_forward_kernel<S><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
        static_cast<S*>(out), static_cast<const S*>(x), static_cast<const S*>(bias), n,
        bias ? C : 1, op);
    CUDA_CHECK_LAUNCH();
  });
}

void activation_backward(DType dt, Activation op, void* dx, const void* g, const void* x,
                         int64_t n) {
  if (n == 0) return;
  dispatch_storage(dt, "activation backward", [&](auto tag) {
    using S = decltype(tag);
    activation_backward_kernel<S><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
        static_cast<S*>(dx), static_cast<const S*>(g), static_cast<const S*>(x), n, op);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace tgpt::cuda

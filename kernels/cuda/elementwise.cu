/*
 * elementwise.cu — broadcast binary ops and unary maps (see elementwise.h): one thread per
 * element in a grid-stride loop, f32 arithmetic, one rounding to the storage type.
 */
#include <algorithm>
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/elementwise.h"

namespace tgpt::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kDims = 5;

#define GRID_STRIDE_LOOP(i, n)                                              \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); \
       i += int64_t(gridDim.x) * blockDim.x)

struct Broadcast {
  int nd;
  int64_t shape[kDims];
  int64_t sa[kDims];
  int64_t sb[kDims];
};

__device__ __forceinline__ float apply(BinaryOp op, float x, float y) {
  switch (op) {
    case BinaryOp::add: return x + y;
    case BinaryOp::sub: return x - y;
    case BinaryOp::mul: return x * y;
    default: return x / y;
  }
}

template <typename S, bool kPlain>
__global__ void binary_kernel(S* __restrict__ out, const S* __restrict__ a, const S* __restrict__ b,
                              Broadcast l, int64_t n, BinaryOp op) {
  GRID_STRIDE_LOOP(i, n) {
    int64_t ia = i, ib = i;
    if (!kPlain) {
      int64_t rem = i;
      ia = 0;
      ib = 0;
      for (int d = l.nd - 1; d >= 0; --d) {
        const int64_t c = rem % l.shape[d];
        rem /= l.shape[d];
        ia += c * l.sa[d];
        ib += c * l.sb[d];
      }
    }
    out[i] = from_f32<S>(apply(op, to_f32(a[ia]), to_f32(b[ib])));
  }
}

template <typename S>
__global__ void unary_kernel(S* __restrict__ out, const S* __restrict__ x, int64_t n, UnaryOp op,
                             float s) {
  GRID_STRIDE_LOOP(i, n) {
    const float v = to_f32(x[i]);
    float r;
    switch (op) {
      case UnaryOp::neg: r = -v; break;
      case UnaryOp::exp: r = expf(v); break;
      case UnaryOp::log: r = logf(v); break;
      case UnaryOp::sqrt: r = sqrtf(v); break;
      case UnaryOp::pow: r = powf(v, s); break;
      case UnaryOp::add_scalar: r = v + s; break;
      default: r = v * s; break;
    }
    out[i] = from_f32<S>(r);
  }
}

}  // namespace

void binary_broadcast(DType dt, BinaryOp op, void* out, const void* a, const void* b,
                      const int64_t* shape, const int64_t* sa, const int64_t* sb, int nd) {
  TGPT_CHECK(nd >= 0 && nd <= kDims, "cuda binary: ", nd, " dims");
  Broadcast l{};
  l.nd = nd;
  int64_t n = 1, expect = 1;
  bool plain = true;
  for (int d = nd - 1; d >= 0; --d) {
    l.shape[d] = shape[d];
    l.sa[d] = sa[d];
    l.sb[d] = sb[d];
    if (shape[d] != 1 && (sa[d] != expect || sb[d] != expect)) plain = false;
    expect *= shape[d];
    n *= shape[d];
  }
  if (n == 0) return;
  dispatch_storage(dt, "binary", [&](auto tag) {
    using S = decltype(tag);
    auto* o = static_cast<S*>(out);
    auto* pa = static_cast<const S*>(a);
    auto* pb = static_cast<const S*>(b);
    if (plain)
      binary_kernel<S, true><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(o, pa, pb, l, n, op);
    else
      binary_kernel<S, false>
          <<<grid_for(n, kThreads), kThreads, 0, stream()>>>(o, pa, pb, l, n, op);
    CUDA_CHECK_LAUNCH();
  });
}

void unary(DType dt, UnaryOp op, void* out, const void* x, int64_t n, double s) {
  if (n == 0) return;
  dispatch_storage(dt, "unary", [&](auto tag) {
    using S = decltype(tag);
    unary_kernel<S><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
        static_cast<S*>(out), static_cast<const S*>(x), n, op, static_cast<float>(s));
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace tgpt::cuda

/*
 * elementwise.cu — broadcast binary ops, unary maps, activations, row sums and MSE (see
 * elementwise.h).
 *
 * Maps: one thread per element in a grid-stride loop, f32 arithmetic, one rounding to the
 * storage type. Row sums: a block of 256 threads per (row, chunk); each thread sums a strided
 * subset in order, the block reduces in a fixed order (common.cuh). Long rows with few rows are
 * split into chunks whose partial sums a second kernel adds in chunk order. The split depends
 * only on (rows, n), so results are bit-reproducible.
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

// ---- row reductions -------------------------------------------------------------------------

// Element loaders for the reduction kernels.
template <typename S>
struct LoadValue {
  const S* x;
  __device__ float operator()(int64_t i) const { return to_f32(x[i]); }
};
template <typename S>
struct LoadSquaredDiff {
  const S* a;
  const S* b;
  __device__ float operator()(int64_t i) const {
    const float d = to_f32(a[i]) - to_f32(b[i]);
    return d * d;
  }
};

// Block (row = blockIdx.x, chunk = blockIdx.y) sums elements [chunk * per_chunk, ...) of its row.
// With one chunk it writes out[row] = S(sum / divisor); otherwise partial[row * chunks + chunk].
template <typename S, typename Load>
__global__ void row_sum_kernel(S* __restrict__ out, float* __restrict__ partial, Load load,
                               int64_t n, int64_t per_chunk, float divisor) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const int64_t j0 = int64_t(blockIdx.y) * per_chunk;
  const int64_t j1 = min(n, j0 + per_chunk);
  float s = 0.f;
  for (int64_t j = j0 + threadIdx.x; j < j1; j += blockDim.x) s += load(row * n + j);
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) {
    if (gridDim.y == 1)
      out[row] = from_f32<S>(s / divisor);
    else
      partial[row * gridDim.y + blockIdx.y] = s;
  }
}

template <typename S>
__global__ void row_sum_final_kernel(S* __restrict__ out, const float* __restrict__ partial,
                                     int64_t chunks, float divisor) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  float s = 0.f;
  for (int64_t k = threadIdx.x; k < chunks; k += blockDim.x) s += partial[row * chunks + k];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) out[row] = from_f32<S>(s / divisor);
}

template <typename S, typename Load>
void launch_row_sum(S* out, Load load, int64_t rows, int64_t n, float divisor) {
  if (rows == 0) return;
  TGPT_CHECK(rows <= INT32_MAX, "cuda row_sum: ", rows, " rows");
  // Few long rows: split each row into chunks of at least 8192 elements (at most 512 chunks).
  int64_t chunks = 1;
  if (rows < 256 && n > 16384) {
    const int64_t per = std::max<int64_t>(8192, (n + 511) / 512);
    chunks = (n + per - 1) / per;
  }
  const int64_t per_chunk = chunks > 1 ? (n + chunks - 1) / chunks : std::max<int64_t>(n, 1);
  Scratch partial(chunks > 1 ? static_cast<size_t>(rows * chunks) * sizeof(float) : 0);
  dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(chunks));
  row_sum_kernel<S, Load>
      <<<grid, kThreads, 0, stream()>>>(out, partial.as<float>(), load, n, per_chunk, divisor);
  CUDA_CHECK_LAUNCH();
  if (chunks > 1) {
    row_sum_final_kernel<S><<<static_cast<unsigned>(rows), kThreads, 0, stream()>>>(
        out, partial.as<float>(), chunks, divisor);
    CUDA_CHECK_LAUNCH();
  }
}

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

void activation_forward(DType dt, Activation op, void* out, const void* x, const void* bias, int64_t n,
                        int64_t C) {
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

void activation_backward(DType dt, Activation op, void* dx, const void* g, const void* x, int64_t n) {
  if (n == 0) return;
  dispatch_storage(dt, "activation backward", [&](auto tag) {
    using S = decltype(tag);
    activation_backward_kernel<S><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
        static_cast<S*>(dx), static_cast<const S*>(g), static_cast<const S*>(x), n, op);
    CUDA_CHECK_LAUNCH();
  });
}

void row_sum(DType dt, void* out, const void* x, int64_t rows, int64_t n, double divisor) {
  dispatch_storage(dt, "sum", [&](auto tag) {
    using S = decltype(tag);
    launch_row_sum<S>(static_cast<S*>(out), LoadValue<S>{static_cast<const S*>(x)}, rows, n,
                      static_cast<float>(divisor));
  });
}

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

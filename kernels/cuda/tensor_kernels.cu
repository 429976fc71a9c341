/*
 * tensor_kernels.cu — strided copy, fill and dtype conversion kernels (see tensor_kernels.h).
 *
 * One thread per element in a grid-stride loop. The logical (row-major) element index is split
 * into coordinates with the shape, and each side's offset is the dot product with its strides.
 */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/tensor_kernels.h"

namespace tgpt::cuda {

namespace {

constexpr int kDims = 5;

struct Layout2 {
  int nd;
  int64_t shape[kDims];
  int64_t dst_strides[kDims];
  int64_t src_strides[kDims];
};

template <typename E>
__global__ void strided_copy_kernel(E* __restrict__ dst, const E* __restrict__ src, Layout2 l,
                                    int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = i, od = 0, os = 0;
    for (int d = l.nd - 1; d >= 0; --d) {
      const int64_t c = rem % l.shape[d];
      rem /= l.shape[d];
      od += c * l.dst_strides[d];
      os += c * l.src_strides[d];
    }
    dst[od] = src[os];
  }
}

template <typename E>
__global__ void fill_kernel(E* __restrict__ dst, Layout2 l, int64_t n, E value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = i, od = 0;
    for (int d = l.nd - 1; d >= 0; --d) {
      const int64_t c = rem % l.shape[d];
      rem /= l.shape[d];
      od += c * l.dst_strides[d];
    }
    dst[od] = value;
  }
}

Layout2 make_layout(const int64_t* shape, const int64_t* dst_strides, const int64_t* src_strides,
                    int nd, int64_t& n) {
  TGPT_CHECK(nd >= 0 && nd <= kDims, "cuda strided copy: ", nd, " dims (at most ", kDims, ")");
  Layout2 l{};
  l.nd = nd;
  n = 1;
  for (int d = 0; d < nd; ++d) {
    l.shape[d] = shape[d];
    l.dst_strides[d] = dst_strides[d];
    l.src_strides[d] = src_strides ? src_strides[d] : 0;
    n *= shape[d];
  }
  return l;
}

// ---- conversion ---------------------------------------------------------------------------------

__device__ __forceinline__ double load_d(const float* p, int64_t i) {
  return p[i];
}
__device__ __forceinline__ double load_d(const double* p, int64_t i) {
  return p[i];
}
__device__ __forceinline__ double load_d(const __half* p, int64_t i) {
  return __half2float(p[i]);
}
__device__ __forceinline__ double load_d(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
__device__ __forceinline__ double load_d(const int32_t* p, int64_t i) {
  return p[i];
}
__device__ __forceinline__ double load_d(const int64_t* p, int64_t i) {
  return static_cast<double>(p[i]);
}
__device__ __forceinline__ double load_d(const uint8_t* p, int64_t i) {
  return p[i];
}

__device__ __forceinline__ void store_d(float* p, int64_t i, double v) {
  p[i] = static_cast<float>(v);
}
__device__ __forceinline__ void store_d(double* p, int64_t i, double v) {
  p[i] = v;
}
__device__ __forceinline__ void store_d(__half* p, int64_t i, double v) {
  p[i] = __float2half_rn(static_cast<float>(v));
}
__device__ __forceinline__ void store_d(__nv_bfloat16* p, int64_t i, double v) {
  p[i] = __float2bfloat16_rn(static_cast<float>(v));
}
__device__ __forceinline__ void store_d(int32_t* p, int64_t i, double v) {
  p[i] = static_cast<int32_t>(v);
}
__device__ __forceinline__ void store_d(int64_t* p, int64_t i, double v) {
  p[i] = static_cast<int64_t>(v);
}
__device__ __forceinline__ void store_d(uint8_t* p, int64_t i, double v) {
  p[i] = static_cast<uint8_t>(static_cast<int64_t>(v));
}

template <typename S, typename D>
__global__ void convert_kernel(D* __restrict__ dst, const S* __restrict__ src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    store_d(dst, i, load_d(src, i));
}
// The hot conversions without the trip through double (identical results: f32 -> double -> f32
// is exact, and 16-bit floats widen exactly).
template <>
__global__ void convert_kernel<float, __half>(__half* __restrict__ dst,
                                              const float* __restrict__ src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __float2half_rn(src[i]);
}
template <>
__global__ void convert_kernel<float, __nv_bfloat16>(__nv_bfloat16* __restrict__ dst,
                                                     const float* __restrict__ src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __float2bfloat16_rn(src[i]);
}

// Calls f(T{}) with T the device element type of any dtype.
template <typename F>
void dispatch_any(DType t, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); return;
    case DType::f64: f(double{}); return;
    case DType::f16: f(__half{}); return;
    case DType::bf16: f(__nv_bfloat16{}); return;
    case DType::i32: f(int32_t{}); return;
    case DType::i64: f(int64_t{}); return;
    case DType::u8: f(uint8_t{}); return;
  }
  TGPT_FAIL("cuda convert: unknown dtype");
}

constexpr int kThreads = 256;

}  // namespace

void strided_copy(void* dst, const int64_t* dst_strides, const void* src,
                  const int64_t* src_strides, const int64_t* shape, int nd, size_t elem_size) {
  int64_t n = 0;
  Layout2 l = make_layout(shape, dst_strides, src_strides, nd, n);
  if (n == 0) return;
  const unsigned grid = grid_for(n, kThreads);
  cudaStream_t s = stream();
  switch (elem_size) {
    case 1:
      strided_copy_kernel<<<grid, kThreads, 0, s>>>(static_cast<uint8_t*>(dst),
                                                    static_cast<const uint8_t*>(src), l, n);
      break;
    case 2:
      strided_copy_kernel<<<grid, kThreads, 0, s>>>(static_cast<uint16_t*>(dst),
                                                    static_cast<const uint16_t*>(src), l, n);
      break;
    case 4:
      strided_copy_kernel<<<grid, kThreads, 0, s>>>(static_cast<uint32_t*>(dst),
                                                    static_cast<const uint32_t*>(src), l, n);
      break;
    case 8:
      strided_copy_kernel<<<grid, kThreads, 0, s>>>(static_cast<uint64_t*>(dst),
                                                    static_cast<const uint64_t*>(src), l, n);
      break;
    default: TGPT_FAIL("cuda strided copy: unsupported element size ", elem_size);
  }
  CUDA_CHECK_LAUNCH();
}

void fill(void* dst, const int64_t* shape, const int64_t* strides, int nd, size_t elem_size,
          uint64_t bits) {
  int64_t n = 0;
  Layout2 l = make_layout(shape, strides, nullptr, nd, n);
  if (n == 0) return;
  const unsigned grid = grid_for(n, kThreads);
  cudaStream_t s = stream();
  switch (elem_size) {
    case 1:
      fill_kernel<<<grid, kThreads, 0, s>>>(static_cast<uint8_t*>(dst), l, n,
                                            static_cast<uint8_t>(bits));
      break;
    case 2:
      fill_kernel<<<grid, kThreads, 0, s>>>(static_cast<uint16_t*>(dst), l, n,
                                            static_cast<uint16_t>(bits));
      break;
    case 4:
      fill_kernel<<<grid, kThreads, 0, s>>>(static_cast<uint32_t*>(dst), l, n,
                                            static_cast<uint32_t>(bits));
      break;
    case 8: fill_kernel<<<grid, kThreads, 0, s>>>(static_cast<uint64_t*>(dst), l, n, bits); break;
    default: TGPT_FAIL("cuda fill: unsupported element size ", elem_size);
  }
  CUDA_CHECK_LAUNCH();
}

void convert(const void* src, DType src_t, void* dst, DType dst_t, int64_t n) {
  if (n <= 0) return;
  if (src_t == dst_t) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * dtype_size(src_t),
                               cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  const unsigned grid = grid_for(n, kThreads);
  dispatch_any(src_t, [&](auto s_tag) {
    using S = decltype(s_tag);
    dispatch_any(dst_t, [&](auto d_tag) {
      using D = decltype(d_tag);
      convert_kernel<S, D>
          <<<grid, kThreads, 0, stream()>>>(static_cast<D*>(dst), static_cast<const S*>(src), n);
      CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace tgpt::cuda

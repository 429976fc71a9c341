/*
 * conv.cu — the patch permutation of conv2d_patch and its inverse (see conv.h): one thread per
 * element of patches [B, G, D] in a grid-stride loop (pure copies, any storage type).
 */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/conv.h"

namespace tgpt::cuda {

namespace {

constexpr int kThreads = 256;

template <typename S, bool kForward>
__global__ void patchify_kernel(S* __restrict__ dst, const S* __restrict__ src, int64_t n,
                                int64_t Cin, int64_t H, int64_t W, int64_t P) {
  const int64_t Gw = W / P, G = (H / P) * Gw, D = Cin * P * P;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    // i indexes patches [B, G, D]
    const int64_t d = i % D, g = (i / D) % G, b = i / (D * G);
    const int64_t px = d % P, py = (d / P) % P, c = d / (P * P);
    const int64_t gx = g % Gw, gy = g / Gw;
    const int64_t xi = ((b * Cin + c) * H + gy * P + py) * W + gx * P + px;
    if (kForward)
      dst[i] = src[xi];
    else
      dst[xi] = src[i];
  }
}

}  // namespace

void patchify(DType dt, void* patches, const void* x, int64_t B, int64_t Cin, int64_t H, int64_t W,
              int64_t P) {
  const int64_t n = B * Cin * H * W;
  if (n == 0) return;
  dispatch_storage(dt, "patchify", [&](auto tag) {
    using S = decltype(tag);
    patchify_kernel<S, true><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
        static_cast<S*>(patches), static_cast<const S*>(x), n, Cin, H, W, P);
    CUDA_CHECK_LAUNCH();
  });
}

void unpatchify(DType dt, void* dx, const void* dpatches, int64_t B, int64_t Cin, int64_t H,
                int64_t W, int64_t P) {
  const int64_t n = B * Cin * H * W;
  if (n == 0) return;
  dispatch_storage(dt, "unpatchify", [&](auto tag) {
    using S = decltype(tag);
    patchify_kernel<S, false><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
        static_cast<S*>(dx), static_cast<const S*>(dpatches), n, Cin, H, W, P);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace tgpt::cuda

/*
 * conv.cpp — device dispatch of the patch convolution (kernels/conv.h).
 */
#include "kernels/conv.h"

#include "kernels/cpu/conv.h"
#include "kernels/matmul.h"
#ifdef TGPT_WITH_CUDA
#include "kernels/cuda/conv.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/tensor_kernels.h"
#endif

namespace tgpt::kernels {

void conv2d_patch_forward(Device dev, DType dt, void* out, void* patches, const void* x,
                          const void* w, const void* bias, int64_t B, int64_t Cin, int64_t H,
                          int64_t W, int64_t P, int64_t Cout) {
  const int64_t G = (H / P) * (W / P), D = Cin * P * P;
  check_gemm_kernel_dtype(dev, dt, "conv2d_patch");
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::patchify(dt, patches, x, B, Cin, H, W, P);
    // out[b] [Cout, G] = w [Cout, D] @ patches[b]ᵀ [D, G]
    const bool f32_acc = bias && dt != DType::f32;
    Scratch acc(dev, f32_acc ? static_cast<size_t>(B * Cout * G) * sizeof(float) : 0);
    cuda::gemm(dt, f32_acc ? DType::f32 : dt, false, true, Cout, G, D, 1.f, w, D, 0, patches, D,
               G * D, 0.f, f32_acc ? acc.get() : out, G, Cout * G, B);
    if (bias)
      cuda::bias_add_from_f32(dt, out, f32_acc ? acc.as<float>() : static_cast<const float*>(out),
                              bias, B, Cout, G);
    return;
#else
    fail_without_cuda("conv2d_patch");
#endif
  }
  dispatch_gemm_float(dt, "conv2d_patch", [&](auto tag) {
    using T = decltype(tag);
    if (B * G * D > 0)
      cpu::patchify_cpu<T>(static_cast<T*>(patches), static_cast<const T*>(x), B, Cin, H, W, P);
    if (B * Cout * G > 0)
      cpu::conv2d_patch_forward_cpu<T>(static_cast<T*>(out), static_cast<const T*>(patches),
                                       static_cast<const T*>(w), static_cast<const T*>(bias), B, G,
                                       D, Cout);
    return 0;
  });
}

void conv2d_patch_backward(Device dev, DType dt, void* dx, void* dw, void* dbias, const void* g,
                           const void* patches, const void* w, int64_t B, int64_t Cin, int64_t H,
                           int64_t W, int64_t P, int64_t Cout) {
  const int64_t G = (H / P) * (W / P), D = Cin * P * P;
  const size_t esize = dtype_size(dt);
  Scratch dpatches(dev, dx ? static_cast<size_t>(B * G * D) * esize : 0);
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    if (dx) {
      // dpatches[b] [G, D] = g[b]ᵀ [G, Cout] @ w [Cout, D], then the inverse permutation.
      cuda::gemm(dt, dt, true, false, G, D, Cout, 1.f, g, G, Cout * G, w, D, 0, 0.f, dpatches.get(),
                 D, G * D, B);
      cuda::unpatchify(dt, dx, dpatches.get(), B, Cin, H, W, P);
    }
    if (dw || dbias) {
      // g' = g permuted to [Cout, B, G] (contiguous)
      Scratch gp(dev, static_cast<size_t>(Cout * B * G) * esize);
      const int64_t shape[3] = {Cout, B, G};
      const int64_t src_strides[3] = {G, Cout * G, 1}, dst_strides[3] = {B * G, G, 1};
      cuda::strided_copy(gp.get(), dst_strides, g, src_strides, shape, 3, esize);
      // dw [Cout, D] = g' [Cout, B*G] @ patches [B*G, D]
      if (dw)
        cuda::gemm(dt, dt, false, false, Cout, D, B * G, 1.f, gp.get(), B * G, 0, patches, D, 0,
                   0.f, dw, D, 0, 1);
      // dbias [Cout] = row sums of g' (as sum(g, {0, 2, 3}) computes them)
      if (dbias) cuda::row_sum(dt, dbias, gp.get(), Cout, B * G, 1.0);
    }
    return;
#else
    fail_without_cuda("conv2d_patch backward");
#endif
  }
  dispatch_gemm_float(dt, "conv2d_patch backward", [&](auto tag) {
    using T = decltype(tag);
    cpu::conv2d_patch_backward_cpu<T>(dpatches.as<T>(), static_cast<T*>(dw), static_cast<T*>(dbias),
                                      static_cast<const T*>(g), static_cast<const T*>(patches),
                                      static_cast<const T*>(w), B, G, D, Cout);
    if (dx && B * Cin * H * W > 0)
      cpu::unpatchify_cpu<T>(static_cast<T*>(dx), dpatches.as<T>(), B, Cin, H, W, P);
    return 0;
  });
}

}  // namespace tgpt::kernels

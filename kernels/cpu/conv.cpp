/*
 * conv.cpp — CPU kernels of the patch convolution (kernels/cpu/conv.h): the patch permutation
 * and its inverse, and the per-image GEMMs (kernels/cpu/matmul.h's gemm: f32 on oneDNN or OpenBLAS,
 * f64 on OpenBLAS, bf16 on oneDNN with f32 accumulation).
 */
#include "kernels/cpu/conv.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "base/parallel.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/onednn_gemm.h"

namespace tgpt::cpu {

template <typename T>
void patchify_cpu(T* patches, const T* x, int64_t B, int64_t Cin, int64_t H, int64_t W, int64_t P) {
  int64_t Gh = H / P, Gw = W / P, D = Cin * P * P;
  parallel_for(
      B * Gh,
      [&](int64_t bg) {  // one row of patches
        int64_t b = bg / Gh, gy = bg % Gh;
        for (int64_t gx = 0; gx < Gw; ++gx) {
          T* dst = patches + (bg * Gw + gx) * D;
          for (int64_t c = 0; c < Cin; ++c)
            for (int64_t py = 0; py < P; ++py)
              std::memcpy(dst + (c * P + py) * P,
                          x + ((b * Cin + c) * H + gy * P + py) * W + gx * P, sizeof(T) * P);
        }
      },
      B * Cin * H * W >= 32768 ? 2 : B * Gh + 1);
}

template <typename T>
void unpatchify_cpu(T* dx, const T* dpatches, int64_t B, int64_t Cin, int64_t H, int64_t W,
                    int64_t P) {
  int64_t Gh = H / P, Gw = W / P, D = Cin * P * P;
  parallel_for(
      B * Gh,
      [&](int64_t bg) {
        int64_t b = bg / Gh, gy = bg % Gh;
        for (int64_t gx = 0; gx < Gw; ++gx) {
          const T* src = dpatches + (bg * Gw + gx) * D;
          for (int64_t c = 0; c < Cin; ++c)
            for (int64_t py = 0; py < P; ++py)
              std::memcpy(dx + ((b * Cin + c) * H + gy * P + py) * W + gx * P,
                          src + (c * P + py) * P, sizeof(T) * P);
        }
      },
      B * Cin * H * W >= 32768 ? 2 : B * Gh + 1);
}

template <typename T>
void conv2d_patch_forward_cpu(T* out, const T* patches, const T* w, const T* bias, int64_t B,
                              int64_t G, int64_t D, int64_t Cout) {
  using S = GemmScalar<T>;
  if (bias) {
    parallel_for(
        B * Cout,
        [&](int64_t r) {
          T v = bias[r % Cout];
          T* o = out + r * G;
          for (int64_t i = 0; i < G; ++i) o[i] = v;
        },
        B * Cout * G >= 16384 ? 2 : B * Cout + 1);
  }
  for (int64_t b = 0; b < B; ++b)  // out[b] [Cout, G] = w [Cout, D] @ patches[b]ᵀ
    gemm(false, true, Cout, G, D, S(1), w, D, patches + b * G * D, D, bias ? S(1) : S(0),
         out + b * Cout * G, G);
}

template <typename T>
void conv2d_patch_backward_cpu(T* dpatches, T* dw, T* dbias, const T* g, const T* patches,
                               const T* w, int64_t B, int64_t G, int64_t D, int64_t Cout) {
  using S = GemmScalar<T>;
  std::vector<float> dw32(std::is_same_v<T, bf16> && dw ? static_cast<size_t>(Cout * D) : 0);
  for (int64_t b = 0; b < B; ++b) {
    const T* gb = g + b * Cout * G;  // [Cout, G]
    if constexpr (std::is_same_v<T, bf16>) {
      // bf16: dw summed over the images in f32, rounded to bf16 once below.
      if (dw)
        gemm_bf16(false, false, Cout, D, G, 1.f, gb, G, patches + b * G * D, D, b == 0 ? 0.f : 1.f,
                  dw32.data(), D);
      if (dpatches) gemm(true, false, G, D, Cout, S(1), gb, G, w, D, S(0), dpatches + b * G * D, D);
      continue;
    }
    if (dpatches)  // [G, D] = gbᵀ @ w
      gemm(true, false, G, D, Cout, S(1), gb, G, w, D, S(0), dpatches + b * G * D, D);
    if (dw)  // [Cout, D] += gb @ patches[b]
      gemm(false, false, Cout, D, G, S(1), gb, G, patches + b * G * D, D, b == 0 ? S(0) : S(1), dw,
           D);
  }
  if constexpr (std::is_same_v<T, bf16>)
    if (dw && B > 0)
      for (int64_t i = 0; i < Cout * D; ++i) dw[i] = f32_to_bf16(dw32[i]);
  if (dw && B == 0) std::fill(dw, dw + Cout * D, T{});  // the empty sum
  if (dbias) {
    parallel_for(
        Cout,
        [&](int64_t co) {
          double acc = 0.0;
          for (int64_t b = 0; b < B; ++b) {
            const T* p = g + (b * Cout + co) * G;
            for (int64_t i = 0; i < G; ++i) {
              if constexpr (std::is_same_v<T, bf16>)
                acc += bf16_to_f32(p[i]);
              else
                acc += static_cast<double>(p[i]);
            }
          }
          if constexpr (std::is_same_v<T, bf16>)
            dbias[co] = f32_to_bf16(static_cast<float>(acc));
          else
            dbias[co] = static_cast<T>(acc);
        },
        B * Cout * G >= 16384 ? 2 : Cout + 1);
  }
}

#define TGPT_CONV_INSTANTIATE(T)                                                                \
  template void patchify_cpu<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t);     \
  template void unpatchify_cpu<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t);   \
  template void conv2d_patch_forward_cpu<T>(T*, const T*, const T*, const T*, int64_t, int64_t, \
                                            int64_t, int64_t);                                  \
  template void conv2d_patch_backward_cpu<T>(T*, T*, T*, const T*, const T*, const T*, int64_t, \
                                             int64_t, int64_t, int64_t);

TGPT_CONV_INSTANTIATE(float)
TGPT_CONV_INSTANTIATE(double)
TGPT_CONV_INSTANTIATE(bf16)

#undef TGPT_CONV_INSTANTIATE

}  // namespace tgpt::cpu

/*
 * conv.h — launchers for conv2d_patch, the patch-embedding convolution of CLIP's ViT (kernel =
 * stride = P, no padding; engine/ops_conv.cpp).
 *
 * x [B, Cin, H, W] is permuted into patches [B, G, D] (G = H/P * W/P, D = Cin*P*P; im2col without
 * overlaps), then out[b] [Cout, G] = w [Cout, D] @ patches[b]ᵀ + bias, written in the output
 * layout [B, Cout, H/P, W/P]. Backward reads patches (for dw) and w (for dx). CPU kernels:
 * kernels/cpu/conv.h (f32, f64); CUDA: kernels/cuda/conv.h (the permutation) and the GEMMs of
 * kernels/cuda/matmul.h (one strided-batched GEMM; with a bias on 16-bit data it accumulates into
 * f32 and one kernel adds the bias and rounds).
 */
#pragma once

#include <cstdint>

#include "kernels/launch.h"

namespace tgpt::kernels {

// patches [B, G, D] (written; keep it for backward) and out [B, Cout, G] from x, w [Cout, D] and
// bias [Cout] (or null).
void conv2d_patch_forward(Device dev, DType dt, void* out, void* patches, const void* x,
                          const void* w, const void* bias, int64_t B, int64_t Cin, int64_t H,
                          int64_t W, int64_t P, int64_t Cout);
// dx [B, Cin, H, W], dw [Cout, D], dbias [Cout] (each may be null) from g [B, Cout, G].
void conv2d_patch_backward(Device dev, DType dt, void* dx, void* dw, void* dbias, const void* g,
                           const void* patches, const void* w, int64_t B, int64_t Cin, int64_t H,
                           int64_t W, int64_t P, int64_t Cout);

}  // namespace tgpt::kernels

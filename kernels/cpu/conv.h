/*
 * conv.h — CPU kernels for conv2d_patch, the patch-embedding convolution (kernel = stride = P, no
 * padding): im2col as a pure permutation (patches do not overlap), one GEMM per image.
 *
 * T is float, double or bf16; the GEMMs are kernels/cpu/matmul.h's (oneDNN/OpenBLAS; bf16 with
 * f32 accumulation, dw summed over the images in f32). Call outside OpenMP parallel regions.
 * Extents must fit the BLAS integer type (the op checks this).
 */
#pragma once

#include <cstdint>

namespace tgpt::cpu {

// x [B, Cin, H, W] -> patches [B, Gh*Gw, Cin*P*P], Gh = H/P, Gw = W/P; patch (gy, gx) column
// (c, py, px) = x[b, c, gy*P + py, gx*P + px]. A pure permutation (patches do not overlap).
template <typename T>
void patchify_cpu(T* patches, const T* x, int64_t B, int64_t Cin, int64_t H, int64_t W, int64_t P);
// The inverse permutation: dx [B, Cin, H, W] from dpatches [B, Gh*Gw, Cin*P*P].
template <typename T>
void unpatchify_cpu(T* dx, const T* dpatches, int64_t B, int64_t Cin, int64_t H, int64_t W,
                    int64_t P);

// out[b] [Cout, G] = w [Cout, D] @ patches[b]ᵀ [D, G] + bias[Cout] (broadcast over G); D = Cin*P*P.
template <typename T>
void conv2d_patch_forward_cpu(T* out, const T* patches, const T* w, const T* bias, int64_t B,
                              int64_t G, int64_t D, int64_t Cout);

// dpatches[b] = g[b]ᵀ @ w; dw = sum_b g[b] @ patches[b]; dbias[co] = sum over b, G of g.
// Any output may be null (skipped).
template <typename T>
void conv2d_patch_backward_cpu(T* dpatches, T* dw, T* dbias, const T* g, const T* patches,
                               const T* w, int64_t B, int64_t G, int64_t D, int64_t Cout);

}  // namespace tgpt::cpu

/*
 * conv.h — CUDA kernels of conv2d_patch besides its GEMMs (kernels/cuda/matmul.h): the patch
 * permutation x [B, Cin, H, W] -> patches [B, G, Cin*P*P] and its inverse for the backward.
 *
 * Plain C++ header: device pointers, dtypes f32, f16 or bf16, everything on the tgpt stream.
 */
#pragma once

#include <cstdint>

#include "base/dtype.h"

namespace tgpt::cuda {

// x [B, Cin, H, W] -> patches [B, (H/P)*(W/P), Cin*P*P] and its inverse (see
// kernels/cpu/conv.h patchify_cpu / unpatchify_cpu).
void patchify(DType dt, void* patches, const void* x, int64_t B, int64_t Cin, int64_t H, int64_t W,
              int64_t P);
void unpatchify(DType dt, void* dx, const void* dpatches, int64_t B, int64_t Cin, int64_t H,
                int64_t W, int64_t P);

}  // namespace tgpt::cuda

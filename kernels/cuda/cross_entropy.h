/*
 * cross_entropy.h — CUDA kernels for softmax cross-entropy on materialised logits [N, V]
 * (PyTorch semantics: reduction 'mean', label smoothing, ignore_index), forward and backward.
 *
 * Plain C++ header: device pointers; target is an int64 device array already validated (each
 * entry in [0, V) or equal to ignore_index); count is the number of non-ignored rows.
 */
#pragma once

#include <cstdint>

#include "base/dtype.h"

namespace tgpt::cuda {

// out (one element, dtype dt) = mean over non-ignored rows of the smoothed loss (NaN when
// count == 0); lse f32 [N] saved for backward.
void cross_entropy_forward(DType dt, void* out, float* lse, const void* logits,
                           const int64_t* target, int64_t N, int64_t V, double label_smoothing,
                           int64_t ignore_index, int64_t count);
// dlogits [N, V] = dloss / count * (softmax - (1 - ls) onehot - ls / V), 0 on ignored rows;
// dloss points to the one-element output gradient (dtype dt).
void cross_entropy_backward(DType dt, void* dlogits, const void* logits, const float* lse,
                            const int64_t* target, const void* dloss, int64_t N, int64_t V,
                            double label_smoothing, int64_t ignore_index, int64_t count);

}  // namespace tgpt::cuda

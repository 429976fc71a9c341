/*
 * vocab_ce.h — CUDA launchers for the fused vocabulary cross-entropy (engine op
 * vocab_cross_entropy; algorithm as kernels/cpu/vocab_ce.h).
 *
 * Per vocabulary chunk: a cuBLAS GEMM writes logits [N, Vc] in f32, vocab_ce_chunk_kernel updates
 * the per-row online log-sum-exp state (max, sum of exp, sum of logits, target logit), writes
 * P̃ = exp(x - m) in the input dtype and rescales the gradient accumulator rows, and a second
 * GEMM adds P̃ @ E_chunk into the f32 accumulator [N, W]. A final kernel forms the row losses and
 * the gradient direction, and one block sums the row losses in a fixed order (deterministic).
 * Memory: O(N·chunk + N·W). Inputs f32, f16 or bf16 (GEMMs accumulate in f32; f32 inputs use
 * plain FP32 GEMMs, no TF32). All device pointers; everything runs on tgpt's stream.
 * This header is plain C++17 (no CUDA types) so engine sources can include it.
 */
#pragma once

#include <cstdint>

#include "base/dtype.h"

namespace tgpt::cuda {

struct VocabCeForwardArgs {
  // inputs
  const void* hidden = nullptr;     // [N, W] in dtype
  const void* embedding = nullptr;  // [V, W] in dtype
  const int64_t* target = nullptr;  // [N] validated: in [0, V) or ignore_index
  DType dtype = DType::f32;         // f32, f16 or bf16
  int64_t N = 0, W = 0, V = 0, chunk = 0;
  double label_smoothing = 0.0;
  int64_t ignore_index = -100;
  int64_t count = 0;  // non-ignored rows (the loss is NaN when 0)
  // workspace
  float* logits = nullptr;          // [N, chunk]
  void* probs = nullptr;            // [N, chunk] in dtype (null for f32: written into logits)
  float* row_max = nullptr;         // [N]
  float* row_sum = nullptr;         // [N]
  double* row_sumx = nullptr;       // [N]
  float* row_xt = nullptr;          // [N]
  float* row_loss = nullptr;        // [N]
  float* colsum = nullptr;          // [W] (used when grad_dir and label_smoothing != 0)
  float* colsum_partial = nullptr;  // [kVocabColsumSplits, W] (same condition)
  // outputs
  void* loss = nullptr;       // [] in dtype
  float* grad_dir = nullptr;  // [N, W] d loss_n / d hidden_n, or null (no gradient)
};
constexpr int64_t kVocabColsumSplits = 64;

void vocab_ce_forward(const VocabCeForwardArgs& a);

// dhidden [N, W] (dtype) = grad_dir * dloss / count, dloss a one-element device tensor of
// dloss_dtype (f32, f16 or bf16).
void vocab_ce_backward(void* dhidden, DType dtype, const float* grad_dir, const void* dloss,
                       DType dloss_dtype, int64_t N, int64_t W, int64_t count);

}  // namespace tgpt::cuda

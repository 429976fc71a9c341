/*
 * ops_attention.cpp — multi-head attention on CLIP's packed qkv [B, T, 3C], with autograd.
 * On the CPU f16/bf16 inputs are computed in f32 and returned in the input dtype; CUDA computes
 * f32, f16 and bf16 natively (head dims 64, 80, 128). Launchers: kernels/attention.h, which says
 * what each device saves for backward (the probabilities [B, NH, T, T] on the CPU; the output and
 * the row logsumexp [B, NH, T] on CUDA).
 */
#include <cstdint>

#include "engine/ops_common.h"
#include "kernels/attention.h"

namespace tgpt {

namespace {

// A contiguous tensor whose data pointer is aligned to `align` bytes (copies when the view's
// offset breaks the alignment).
Tensor aligned_contiguous(const Tensor& t, int64_t align) {
  Tensor c = t.detach().contiguous();
  if (reinterpret_cast<uintptr_t>(c.data_ptr()) % static_cast<uintptr_t>(align) != 0) c = c.clone();
  return c;
}

struct AttentionNode : Node {
  Tensor qkv;    // [B, T, 3C] contiguous, aligned
  Tensor probs;  // [B, NH, T, T] softmax probabilities (CPU)
  Tensor out;    // [B, T, C] the forward output (CUDA)
  Tensor lse;    // [B, NH, T] f32 row logsumexp (CUDA)
  int64_t n_heads = 1;
  bool causal = false;
  const char* name() const override { return "attention"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    const int64_t B = qkv.size(0), T = qkv.size(1), C = qkv.size(2) / 3;
    const Device dev = qkv.device();
    Tensor g = aligned_contiguous(grad_as(g_in, qkv), kernels::attention_alignment(dev));
    Tensor dqkv = Tensor::empty(qkv.shape(), qkv.dtype(), dev);
    kernels::attention_backward(
        dev, qkv.dtype(), dqkv.data_ptr(), g.data_ptr(), qkv.data_ptr(), ptr_or_null(probs),
        ptr_or_null(out), lse.defined() ? lse.data<float>() : nullptr, B, T, C, n_heads, causal);
    gi[0] = dqkv;
  }
  void release() override { qkv = probs = out = lse = Tensor(); }
};

}  // namespace

Tensor attention(const Tensor& qkv_in, int n_heads, bool causal) {
  check_float(qkv_in, "attention", "qkv");
  TGPT_CHECK(qkv_in.dim() == 3, "attention: qkv must be [B, T, 3C], got ", qkv_in.shape().str());
  const int64_t C3 = qkv_in.size(2);
  TGPT_CHECK(C3 > 0 && C3 % 3 == 0, "attention: last dim of qkv ", qkv_in.shape().str(),
             " must be a positive multiple of 3 (packed Q, K, V)");
  TGPT_CHECK(n_heads > 0, "attention: n_heads must be positive, got ", n_heads);
  const int64_t C = C3 / 3;
  TGPT_CHECK(C % n_heads == 0, "attention: width C = ", C,
             " is not divisible by n_heads = ", n_heads);
  if (is_half(qkv_in.dtype()) && qkv_in.device() == Device::CPU)
    return attention(qkv_in.to(DType::f32), n_heads, causal).to(qkv_in.dtype());
  const Device dev = qkv_in.device();
  kernels::check_attention(dev, qkv_in.dtype(), C, n_heads);
  const int64_t B = qkv_in.size(0), T = qkv_in.size(1);
  Tensor qkv = aligned_contiguous(qkv_in, kernels::attention_alignment(dev));
  Tensor out = Tensor::empty({B, T, C}, qkv.dtype(), dev);
  auto node = make_node<AttentionNode>({&qkv_in});
  // The probabilities are kept only when backward will need them; CUDA always writes lse.
  const bool saves_probs = kernels::attention_saves_probabilities(dev);
  Tensor probs =
      saves_probs && node ? Tensor::empty({B, n_heads, T, T}, qkv.dtype(), dev) : Tensor();
  Tensor lse = saves_probs ? Tensor() : Tensor::empty({B, n_heads, T}, DType::f32, dev);
  kernels::attention_forward(dev, qkv.dtype(), out.data_ptr(), ptr_or_null(probs),
                             lse.defined() ? lse.data<float>() : nullptr, qkv.data_ptr(), B, T, C,
                             n_heads, causal);
  if (node) {
    node->qkv = qkv;
    node->probs = probs;
    if (!saves_probs) {
      node->out = out;
      node->lse = lse;
    }
    node->n_heads = n_heads;
    node->causal = causal;
    record(out, node);
  }
  return out;
}

}  // namespace tgpt

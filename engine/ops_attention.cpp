/*
 * ops_attention.cpp — multi-head attention on CLIP's packed qkv [B, T, 3C], with autograd.
 * f16/bf16 inputs are computed in f32 and returned in the input dtype.
 * Kernel: kernels/cpu/attention.h (the layout is described there and in ops.h).
 */
#include "engine/ops_common.h"
#include "kernels/cpu/attention.h"

namespace tgpt {

namespace {

struct AttentionNode : Node {
  Tensor qkv;  // [B, T, 3C] contiguous
  Tensor att;  // [B, NH, T, T] softmax probabilities
  int64_t n_heads = 1;
  bool causal = false;
  const char* name() const override { return "attention"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    int64_t B = qkv.size(0), T = qkv.size(1), C = qkv.size(2) / 3;
    Tensor g = g_in.detach();
    if (g.dtype() != qkv.dtype()) g = g.to(qkv.dtype());
    g = g.contiguous();
    Tensor dqkv = Tensor::empty(qkv.shape(), qkv.dtype());
    dispatch_float(qkv.dtype(), "attention backward", [&](auto t) {
      using Tp = decltype(t);
      cpu::attention_backward_cpu<Tp>(dqkv.data<Tp>(), g.data<Tp>(), qkv.data<Tp>(), att.data<Tp>(),
                                      B, T, C, n_heads, causal);
      return 0;
    });
    gi[0] = dqkv;
  }
  void release() override { qkv = att = Tensor(); }
};

}  // namespace

Tensor attention(const Tensor& qkv_in, int n_heads, bool causal) {
  check_float(qkv_in, "attention", "qkv");
  if (is_half(qkv_in.dtype()))
    return attention(qkv_in.to(DType::f32), n_heads, causal).to(qkv_in.dtype());
  TGPT_CHECK(qkv_in.dim() == 3, "attention: qkv must be [B, T, 3C], got ", qkv_in.shape().str());
  const int64_t C3 = qkv_in.size(2);
  TGPT_CHECK(C3 > 0 && C3 % 3 == 0, "attention: last dim of qkv ", qkv_in.shape().str(),
             " must be a positive multiple of 3 (packed Q, K, V)");
  TGPT_CHECK(n_heads > 0, "attention: n_heads must be positive, got ", n_heads);
  const int64_t C = C3 / 3;
  TGPT_CHECK(C % n_heads == 0, "attention: width C = ", C,
             " is not divisible by n_heads = ", n_heads);
  check_cpu_kernel(qkv_in, "attention");
  const int64_t B = qkv_in.size(0), T = qkv_in.size(1);
  Tensor qkv = qkv_in.detach().contiguous();
  Tensor out = Tensor::empty({B, T, C}, qkv.dtype());
  auto node = make_node<AttentionNode>({&qkv_in});
  // The probabilities are kept only when backward will need them.
  Tensor att = node ? Tensor::empty({B, n_heads, T, T}, qkv.dtype()) : Tensor();
  dispatch_float(qkv.dtype(), "attention", [&](auto t) {
    using Tp = decltype(t);
    cpu::attention_forward_cpu<Tp>(out.data<Tp>(), node ? att.data<Tp>() : nullptr, qkv.data<Tp>(),
                                   B, T, C, n_heads, causal);
    return 0;
  });
  if (node) {
    node->qkv = qkv;
    node->att = att;
    node->n_heads = n_heads;
    node->causal = causal;
    record(out, node);
  }
  return out;
}

}  // namespace tgpt

/*
 * ops_attention.cpp — multi-head attention on CLIP's packed qkv [B, T, 3C], with autograd.
 * CPU: f16/bf16 inputs are computed in f32 and returned in the input dtype; kernel
 * kernels/cpu/attention.h (the layout is described there and in ops.h), which keeps the
 * probabilities [B, NH, T, T] for backward.
 * CUDA (TGPT_WITH_CUDA): f32, f16 and bf16 natively (f32 softmax and accumulation), head dims 64,
 * 80 and 128; kernels/cuda/attention.h, a fused FlashAttention-style kernel that keeps only the
 * output and the row logsumexp [B, NH, T] for backward.
 */
#include <cstdint>

#include "engine/ops_common.h"
#include "kernels/cpu/attention.h"
#ifdef TGPT_WITH_CUDA
#include "kernels/cuda/attention.h"
#endif

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

#ifdef TGPT_WITH_CUDA
// A contiguous CUDA tensor whose data pointer is 16-byte aligned (the kernels use 16-byte loads);
// copies when the view's offset breaks the alignment.
Tensor aligned_contiguous(const Tensor& t) {
  Tensor c = t.detach().contiguous();
  if (reinterpret_cast<uintptr_t>(c.data_ptr()) % 16 != 0) c = c.clone();
  return c;
}

struct AttentionCudaNode : Node {
  Tensor qkv;  // [B, T, 3C] contiguous, aligned
  Tensor out;  // [B, T, C] the forward output
  Tensor lse;  // [B, NH, T] f32 row logsumexp
  int64_t n_heads = 1;
  bool causal = false;
  const char* name() const override { return "attention"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    const int64_t B = qkv.size(0), T = qkv.size(1), C = qkv.size(2) / 3;
    Tensor g = g_in.detach();
    if (g.dtype() != qkv.dtype()) g = g.to(qkv.dtype());
    if (g.device() != Device::CUDA) g = g.to(Device::CUDA);
    g = aligned_contiguous(g);
    Tensor dqkv = Tensor::empty(qkv.shape(), qkv.dtype(), Device::CUDA);
    Tensor dsum = Tensor::empty({B, n_heads, T}, DType::f32, Device::CUDA);
    cuda::attention_backward(dqkv.data_ptr(), dsum.data<float>(), g.data_ptr(), qkv.data_ptr(),
                             out.data_ptr(), lse.data<float>(), qkv.dtype(), B, T, C, n_heads,
                             causal);
    gi[0] = dqkv;
  }
  void release() override { qkv = out = lse = Tensor(); }
};

Tensor attention_cuda(const Tensor& qkv_in, int n_heads, bool causal) {
  TGPT_CHECK(
      qkv_in.dtype() == DType::f32 || qkv_in.dtype() == DType::f16 || qkv_in.dtype() == DType::bf16,
      "attention: CUDA kernels take f32, f16 or bf16, got ", dtype_name(qkv_in.dtype()));
  const int64_t B = qkv_in.size(0), T = qkv_in.size(1), C = qkv_in.size(2) / 3;
  TGPT_CHECK(cuda::attention_head_dim_supported(C / n_heads), "attention: head dim ", C / n_heads,
             " (C = ", C, ", ", n_heads, " heads) has no CUDA kernel (64, 80 or 128)");
  Tensor qkv = aligned_contiguous(qkv_in);
  Tensor out = Tensor::empty({B, T, C}, qkv.dtype(), Device::CUDA);
  Tensor lse = Tensor::empty({B, n_heads, T}, DType::f32, Device::CUDA);
  cuda::attention_forward(out.data_ptr(), lse.data<float>(), qkv.data_ptr(), qkv.dtype(), B, T, C,
                          n_heads, causal);
  if (auto node = make_node<AttentionCudaNode>({&qkv_in})) {
    node->qkv = qkv;
    node->out = out;
    node->lse = lse;
    node->n_heads = n_heads;
    node->causal = causal;
    record(out, node);
  }
  return out;
}
#endif

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
#ifdef TGPT_WITH_CUDA
  if (qkv_in.device() == Device::CUDA) return attention_cuda(qkv_in, n_heads, causal);
#endif
  if (is_half(qkv_in.dtype()))
    return attention(qkv_in.to(DType::f32), n_heads, causal).to(qkv_in.dtype());
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

/*
 * ops_vocab_ce.cpp — vocab_cross_entropy: cross_entropy(hidden @ embeddingᵀ, target) without the
 * [N, V] logits, with autograd for hidden (the embedding must be frozen). The forward pass also
 * accumulates the gradient direction for hidden when one is needed (kernels/cpu/vocab_ce.h
 * explains the one-pass scheme), so backward is a scale by dloss / count.
 * Launchers: kernels/vocab_ce.h. On the CPU f16/bf16 inputs are computed in f32; CUDA computes
 * f32, f16 and bf16 natively with f32 accumulation.
 */
#include <algorithm>

#include "engine/ops_common.h"
#include "kernels/vocab_ce.h"

namespace tgpt {

namespace {

// Rows of the vocabulary per chunk: about 4M logits per chunk, a multiple of 256.
int64_t auto_vocab_chunk(int64_t N, int64_t V) {
  int64_t c = (int64_t(1) << 22) / std::max<int64_t>(N, 1);
  c = std::max<int64_t>(256, (c + 255) / 256 * 256);
  return std::min(c, V);
}

struct VocabCrossEntropyNode : Node {
  Tensor grad_dir;  // [N, W] d loss_n / d hidden_n (dtype kernels::vocab_ce_grad_dtype)
  DType dtype = DType::f32;
  int64_t count = 0;
  const char* name() const override { return "vocab_cross_entropy"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    const int64_t N = grad_dir.size(0), W = grad_dir.size(1);
    const Device dev = grad_dir.device();
    Tensor g = g_in.detach();
    if (g.device() != dev) g = g.to(dev);
    Tensor dh = Tensor::empty({N, W}, dtype, dev);
    kernels::vocab_ce_backward(dev, dtype, dh.data_ptr(), grad_dir.data_ptr(), g.data_ptr(),
                               g.dtype(), N, W, count);
    gi[0] = dh;
  }
  void release() override { grad_dir = Tensor(); }
};

}  // namespace

Tensor vocab_cross_entropy(const Tensor& hidden, const Tensor& embedding, const Tensor& target,
                           double label_smoothing, int64_t ignore_index, int64_t chunk) {
  const char* op = "vocab_cross_entropy";
  check_float(hidden, op, "hidden");
  check_float(embedding, op, "embedding");
  check_same_dtype(hidden, embedding, op);
  check_same_device(hidden, embedding, op);
  TGPT_CHECK(hidden.dim() == 2, op, ": hidden must be [N, W], got ", hidden.shape().str());
  TGPT_CHECK(embedding.dim() == 2 && embedding.size(1) == hidden.size(1), op,
             ": embedding must be [V, W] with W = ", hidden.size(1), ", got ",
             embedding.shape().str());
  TGPT_CHECK(!(grad_enabled() && embedding.requires_grad()), op,
             ": a gradient for the embedding is not supported (the vocabulary head must be frozen: "
             "call set_requires_grad(false) or detach() it)");
  const int64_t N = hidden.size(0), W = hidden.size(1), V = embedding.size(0);
  TGPT_CHECK(V > 0 && W > 0, op, ": empty vocabulary or width: embedding ",
             embedding.shape().str());
  TGPT_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, op,
             ": label_smoothing must be in [0, 1], got ", label_smoothing);
  TGPT_CHECK(chunk >= 0, op, ": chunk must be >= 0 (0 = automatic), got ", chunk);
  std::vector<int64_t> tgt;
  const int64_t count = checked_targets(tgt, target, N, V, true, ignore_index, op);
  chunk = chunk == 0 ? auto_vocab_chunk(N, V) : std::min(chunk, V);
  const bool want_grad = grad_enabled() && hidden.requires_grad();

  if (is_half(hidden.dtype()) && hidden.device() == Device::CPU)
    return vocab_cross_entropy(hidden.to(DType::f32), embedding.detach().to(DType::f32), target,
                               label_smoothing, ignore_index, chunk)
        .to(hidden.dtype());
  const Device dev = hidden.device();
  const DType dt = hidden.dtype();
  check_kernel_dtype(dev, dt, op);
  Tensor h = hidden.detach().contiguous(), E = embedding.detach().contiguous();
  Tensor d_target = index_tensor(tgt, dev);
  Tensor grad_dir =
      want_grad ? Tensor::empty({N, W}, kernels::vocab_ce_grad_dtype(dev, dt), dev) : Tensor();
  Tensor out = Tensor::empty({}, dt, dev);
  kernels::vocab_ce_forward(dev, dt, out.data_ptr(), ptr_or_null(grad_dir), h.data_ptr(),
                            E.data_ptr(), d_target.data<int64_t>(), N, W, V, chunk, label_smoothing,
                            ignore_index, count);
  if (auto node = make_node<VocabCrossEntropyNode>({&hidden})) {
    node->grad_dir = grad_dir;
    node->dtype = dt;
    node->count = count;
    record(out, node);
  }
  return out;
}

}  // namespace tgpt

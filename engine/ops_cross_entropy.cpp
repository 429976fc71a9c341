/*
 * ops_cross_entropy.cpp — cross_entropy (PyTorch semantics, reduction 'mean', label smoothing,
 * ignore_index) with autograd for the logits. f16/bf16 logits are computed in f32 and the loss is
 * returned in the logits' dtype; CUDA computes them natively. Launchers: kernels/cross_entropy.h.
 */
#include "engine/ops_common.h"
#include "kernels/cross_entropy.h"

namespace tgpt {

namespace {

struct CrossEntropyNode : Node {
  Tensor logits;  // [N, V] contiguous
  Tensor lse;     // [N] row logsumexp (dtype: kernels::cross_entropy_lse_dtype)
  Tensor target;  // i64 [N] on the logits' device
  double label_smoothing = 0;
  int64_t ignore_index = -100;
  int64_t count = 0;  // non-ignored rows
  const char* name() const override { return "cross_entropy"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    Tensor g = grad_as(g_in, logits);
    Tensor dlogits = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
    kernels::cross_entropy_backward(logits.device(), logits.dtype(), dlogits.data_ptr(),
                                    logits.data_ptr(), lse.data_ptr(), target.data<int64_t>(),
                                    g.data_ptr(), logits.size(0), logits.size(1), label_smoothing,
                                    ignore_index, count);
    gi[0] = dlogits;
  }
  void release() override { logits = lse = target = Tensor(); }
};

}  // namespace

Tensor cross_entropy(const Tensor& logits_in, const Tensor& target, double label_smoothing,
                     int64_t ignore_index) {
  check_float(logits_in, "cross_entropy", "logits");
  if (is_half(logits_in.dtype()) && logits_in.device() == Device::CPU)
    return cross_entropy(logits_in.to(DType::f32), target, label_smoothing, ignore_index)
        .to(logits_in.dtype());
  TGPT_CHECK(logits_in.dim() == 2, "cross_entropy: logits must be [N, V], got ",
             logits_in.shape().str());
  TGPT_CHECK(target.defined(), "cross_entropy: target is undefined");
  TGPT_CHECK(target.dtype() == DType::i32 || target.dtype() == DType::i64,
             "cross_entropy: target must be i32 or i64 class indices, got ",
             dtype_name(target.dtype()));
  const int64_t N = logits_in.size(0), V = logits_in.size(1);
  TGPT_CHECK(target.dim() == 1 && target.size(0) == N, "cross_entropy: target must be [", N,
             "] to match logits ", logits_in.shape().str(), ", got ", target.shape().str());
  TGPT_CHECK(V > 0, "cross_entropy: logits ", logits_in.shape().str(), " have no classes");
  TGPT_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0,
             "cross_entropy: label_smoothing must be in [0, 1], got ", label_smoothing);
  const Device dev = logits_in.device();
  check_kernel_dtype(dev, logits_in.dtype(), "cross_entropy");
  std::vector<int64_t> tgt = index_values(target, "cross_entropy");
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t = tgt[static_cast<size_t>(n)];
    if (t == ignore_index) continue;
    TGPT_CHECK(t >= 0 && t < V, "cross_entropy: target ", t, " at row ", n, " is out of range [0, ",
               V, ") and is not ignore_index (", ignore_index, ")");
    ++count;
  }
  Tensor logits = logits_in.detach().contiguous();
  Tensor d_target = index_tensor(tgt, dev);
  Tensor lse = Tensor::empty({N}, kernels::cross_entropy_lse_dtype(dev), dev);
  Tensor out = Tensor::empty({}, logits.dtype(), dev);
  kernels::cross_entropy_forward(dev, logits.dtype(), out.data_ptr(), lse.data_ptr(),
                                 logits.data_ptr(), d_target.data<int64_t>(), N, V, label_smoothing,
                                 ignore_index, count);
  if (auto node = make_node<CrossEntropyNode>({&logits_in})) {
    node->logits = logits;
    node->lse = lse;
    node->target = d_target;
    node->label_smoothing = label_smoothing;
    node->ignore_index = ignore_index;
    node->count = count;
    record(out, node);
  }
  return out;
}

}  // namespace tgpt

/*
 * ops_loss.cpp — cross_entropy (PyTorch semantics, reduction 'mean', label smoothing,
 * ignore_index) with autograd for the logits. f16/bf16 logits are computed in f32 and the loss is
 * returned in the logits' dtype. Kernel: kernels/cpu/cross_entropy.h.
 */
#include <cmath>
#include <limits>

#include "engine/ops_common.h"
#include "kernels/cpu/cross_entropy.h"
#ifdef TGPT_WITH_CUDA
#include "engine/cuda/op_support.h"
#include "kernels/cuda/cross_entropy.h"
#endif

namespace tgpt {

namespace {

struct CrossEntropyNode : Node {
  Tensor logits;                // [N, V] contiguous
  Tensor lse;                   // f64 [N] row logsumexp
  std::vector<int64_t> target;  // [N]
  double label_smoothing = 0;
  int64_t ignore_index = -100;
  int64_t count = 0;  // non-ignored rows
  const char* name() const override { return "cross_entropy"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    const int64_t N = logits.size(0), V = logits.size(1);
    const double dloss = g_in.item();
    Tensor dlogits = Tensor::zeros(logits.shape(), logits.dtype());
    if (count > 0) {
      dispatch_float(logits.dtype(), "cross_entropy backward", [&](auto t) {
        using T = decltype(t);
        cpu::cross_entropy_backward_cpu<T>(dlogits.data<T>(), logits.data<T>(), lse.data<double>(),
                                           target.data(), N, V, label_smoothing, ignore_index,
                                           dloss, count);
        return 0;
      });
    }
    gi[0] = dlogits;
  }
  void release() override {
    logits = lse = Tensor();
    target.clear();
  }
};

#ifdef TGPT_WITH_CUDA
struct CrossEntropyCudaNode : Node {
  Tensor logits;  // [N, V] contiguous
  Tensor lse;     // f32 [N]
  Tensor target;  // i64 [N] on the device
  double label_smoothing = 0;
  int64_t ignore_index = -100;
  int64_t count = 0;
  const char* name() const override { return "cross_entropy"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    Tensor g = g_in.detach();
    if (g.dtype() != logits.dtype()) g = g.to(logits.dtype());
    if (g.device() != Device::CUDA) g = g.to(Device::CUDA);
    Tensor dlogits = Tensor::empty(logits.shape(), logits.dtype(), Device::CUDA);
    cuda::cross_entropy_backward(logits.dtype(), dlogits.data_ptr(), logits.data_ptr(),
                                 lse.data<float>(), target.data<int64_t>(), g.data_ptr(),
                                 logits.size(0), logits.size(1), label_smoothing, ignore_index,
                                 count);
    gi[0] = dlogits;
  }
  void release() override { logits = lse = target = Tensor(); }
};
#endif

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
  if (logits_in.device() != Device::CUDA) check_cpu_kernel(logits_in, "cross_entropy");
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
#ifdef TGPT_WITH_CUDA
  if (logits.device() == Device::CUDA) {
    check_cuda_float(logits, "cross_entropy");
    Tensor d_target = upload_indices(tgt);
    Tensor d_lse = Tensor::empty({N}, DType::f32, Device::CUDA);
    Tensor out = Tensor::empty({}, logits.dtype(), Device::CUDA);
    cuda::cross_entropy_forward(logits.dtype(), out.data_ptr(), d_lse.data<float>(),
                                logits.data_ptr(), d_target.data<int64_t>(), N, V, label_smoothing,
                                ignore_index, count);
    if (auto node = make_node<CrossEntropyCudaNode>({&logits_in})) {
      node->logits = logits;
      node->lse = d_lse;
      node->target = d_target;
      node->label_smoothing = label_smoothing;
      node->ignore_index = ignore_index;
      node->count = count;
      record(out, node);
    }
    return out;
  }
#endif
  Tensor lse = Tensor::empty({N}, DType::f64);
  std::vector<double> row_loss(static_cast<size_t>(N));
  dispatch_float(logits.dtype(), "cross_entropy", [&](auto t) {
    using T = decltype(t);
    cpu::cross_entropy_forward_cpu<T>(row_loss.data(), lse.data<double>(), logits.data<T>(),
                                      tgt.data(), N, V, label_smoothing, ignore_index);
    return 0;
  });
  double total = 0.0;  // summed in row order: independent of the thread count
  for (double l : row_loss) total += l;
  const double loss =
      count > 0 ? total / static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN();
  Tensor out = Tensor::full({}, loss, logits.dtype());
  if (auto node = make_node<CrossEntropyNode>({&logits_in})) {
    node->logits = logits;
    node->lse = lse;
    node->target = std::move(tgt);
    node->label_smoothing = label_smoothing;
    node->ignore_index = ignore_index;
    node->count = count;
    record(out, node);
  }
  return out;
}

}  // namespace tgpt

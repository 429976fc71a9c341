/*
 * ops_cosine_loss.cpp — cosine_logit_loss, TGP-T's classification loss: mean cross-entropy of
 * scale · l2_normalize(features) · weightᵀ, with autograd for features and weight.
 * Launchers: kernels/cosine_loss.h (which says what each device saves for backward). On the CPU
 * f16/bf16 inputs are computed in f32; CUDA computes f32, f16 and bf16 natively.
 */
#include <cmath>

#include "engine/ops_common.h"
#include "kernels/cosine_loss.h"

namespace tgpt {

namespace {

constexpr double kCosineEps = 1e-12;  // as l2_normalize's default

struct CosineLogitLossNode : Node {
  Tensor x, w;    // features [N, F], weight [K, F], contiguous
  Tensor norm;    // ||x|| [N]
  Tensor prob;    // [N, K] softmax probabilities
  Tensor xn;      // normalize(x) [N, F] (CPU)
  Tensor target;  // i64 [N] on the device
  double scale = 100.0;
  const char* name() const override { return "cosine_logit_loss"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    const int64_t N = x.size(0), F = x.size(1), K = w.size(0);
    const Device dev = x.device();
    Tensor g = g_in.detach();
    if (g.device() != dev) g = g.to(dev);
    Tensor dx = needs_grad(0) ? Tensor::empty({N, F}, x.dtype(), dev) : Tensor();
    Tensor dw = needs_grad(1) ? Tensor::empty({K, F}, x.dtype(), dev) : Tensor();
    kernels::cosine_logit_loss_backward(dev, x.dtype(), ptr_or_null(dx), ptr_or_null(dw),
                                        prob.data_ptr(), ptr_or_null(xn), norm.data_ptr(),
                                        x.data_ptr(), w.data_ptr(), target.data<int64_t>(), N, F, K,
                                        scale, kCosineEps, g.data_ptr(), g.dtype());
    gi[0] = dx;
    gi[1] = dw;
  }
  void release() override { x = w = norm = prob = xn = target = Tensor(); }
};

}  // namespace

Tensor cosine_logit_loss(const Tensor& features, const Tensor& weight, const Tensor& target,
                         double scale) {
  const char* op = "cosine_logit_loss";
  check_float(features, op, "features");
  check_float(weight, op, "weight");
  check_same_dtype(features, weight, op);
  check_same_device(features, weight, op);
  TGPT_CHECK(features.dim() == 2, op, ": features must be [N, F], got ", features.shape().str());
  TGPT_CHECK(weight.dim() == 2 && weight.size(1) == features.size(1), op,
             ": weight must be [K, F] with F = ", features.size(1), ", got ", weight.shape().str());
  TGPT_CHECK(std::isfinite(scale), op, ": scale must be finite, got ", scale);
  const int64_t N = features.size(0), F = features.size(1), K = weight.size(0);
  TGPT_CHECK(N > 0 && F > 0 && K > 0, op, ": empty input: features ", features.shape().str(),
             ", weight ", weight.shape().str());
  std::vector<int64_t> tgt;
  checked_targets(tgt, target, N, K, false, 0, op);

  if (is_half(features.dtype()) && features.device() == Device::CPU)
    return cosine_logit_loss(features.to(DType::f32), weight.to(DType::f32), target, scale)
        .to(features.dtype());
  const Device dev = features.device();
  const DType dt = features.dtype();
  check_kernel_dtype(dev, dt, op);
  Tensor x = features.detach().contiguous(), w = weight.detach().contiguous();
  Tensor d_target = index_tensor(tgt, dev);
  const DType stats = kernels::cosine_loss_stats_dtype(dev, dt);
  Tensor norm = Tensor::empty({N}, stats, dev), prob = Tensor::empty({N, K}, stats, dev);
  Tensor xn =
      kernels::cosine_loss_saves_normalized(dev) ? Tensor::empty({N, F}, dt, dev) : Tensor();
  Tensor out = Tensor::empty({}, dt, dev);
  kernels::cosine_logit_loss_forward(dev, dt, out.data_ptr(), norm.data_ptr(), prob.data_ptr(),
                                     ptr_or_null(xn), x.data_ptr(), w.data_ptr(),
                                     d_target.data<int64_t>(), N, F, K, scale, kCosineEps);
  if (auto node = make_node<CosineLogitLossNode>({&features, &weight})) {
    node->x = x, node->w = w, node->norm = norm, node->prob = prob, node->xn = xn;
    node->target = d_target;
    node->scale = scale;
    record(out, node);
  }
  return out;
}

}  // namespace tgpt

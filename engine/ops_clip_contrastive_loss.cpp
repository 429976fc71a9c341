/*
 * ops_clip_contrastive_loss.cpp — clip_contrastive_loss, CLIP's symmetric InfoNCE loss over a
 * batch of N (image, text) pairs, with autograd for both feature sets and the logit-scale
 * parameter. Launchers: kernels/clip_contrastive_loss.h (what each device saves for backward).
 * On the CPU f16/bf16 inputs are computed in f32; CUDA computes f32, f16 and bf16 natively.
 *
 * The clamp: s = exp(min(p, ln 100)) in the forward (OpenAI's training code; open_clip instead
 * clamps the parameter in place after each step, which gives the same s for p <= ln 100). The
 * gradient is the clamp's: dp = 0 when p > ln 100, so a clamped scale stays where it is apart from
 * weight decay.
 */
#include <cmath>

#include "engine/ops_common.h"
#include "kernels/clip_contrastive_loss.h"

namespace tgpt {

namespace {

constexpr double kClipEps = 1e-12;  // F.normalize's default

struct ClipContrastiveLossNode : Node {
  Tensor img, txt, param;           // [N, E], [N, E] contiguous; param one element (a copy)
  Tensor an, bn, inorm, tnorm;      // normalised features [N, E], norms [N]
  Tensor logits, lse_row, lse_col;  // [N, N]; [N], [N] (CUDA only)
  Shape param_shape;
  const char* name() const override { return "clip_contrastive_loss"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    const int64_t N = img.size(0), E = img.size(1);
    const Device dev = img.device();
    Tensor g = g_in.detach();
    if (g.device() != dev) g = g.to(dev);
    g = g.contiguous();
    Tensor di = needs_grad(0) ? Tensor::empty({N, E}, img.dtype(), dev) : Tensor();
    Tensor dt = needs_grad(1) ? Tensor::empty({N, E}, img.dtype(), dev) : Tensor();
    Tensor dp = needs_grad(2) ? Tensor::empty(param_shape, param.dtype(), dev) : Tensor();
    kernels::clip_contrastive_loss_backward(
        dev, img.dtype(), ptr_or_null(di), ptr_or_null(dt), ptr_or_null(dp), an.data_ptr(),
        bn.data_ptr(), inorm.data_ptr(), tnorm.data_ptr(), logits.data_ptr(), ptr_or_null(lse_row),
        ptr_or_null(lse_col), img.data_ptr(), txt.data_ptr(), param.data_ptr(), param.dtype(), N, E,
        kClipEps, g.data_ptr(), g.dtype());
    gi[0] = di;
    gi[1] = dt;
    gi[2] = dp;
  }
  void release() override {
    img = txt = param = an = bn = inorm = tnorm = logits = lse_row = lse_col = Tensor();
  }
};

}  // namespace

Tensor clip_contrastive_loss(const Tensor& image_features, const Tensor& text_features,
                             const Tensor& logit_scale_param) {
  const char* op = "clip_contrastive_loss";
  check_float(image_features, op, "image_features");
  check_float(text_features, op, "text_features");
  check_float(logit_scale_param, op, "logit_scale_param");
  check_same_dtype(image_features, text_features, op);
  check_same_device(image_features, text_features, op);
  check_same_device(image_features, logit_scale_param, op);
  TGPT_CHECK(image_features.dim() == 2, op, ": image_features must be [N, E], got ",
             image_features.shape().str());
  TGPT_CHECK(text_features.shape() == image_features.shape(), op,
             ": text_features must have image_features' shape ", image_features.shape().str(),
             ", got ", text_features.shape().str());
  TGPT_CHECK(logit_scale_param.numel() == 1 && logit_scale_param.dim() <= 1, op,
             ": logit_scale_param must be a scalar ([] or [1]), got ",
             logit_scale_param.shape().str());
  const int64_t N = image_features.size(0), E = image_features.size(1);
  TGPT_CHECK(N > 0 && E > 0, op, ": empty input: features ", image_features.shape().str());

  const Device dev = image_features.device();
  if (dev == Device::CPU &&
      (is_half(image_features.dtype()) || is_half(logit_scale_param.dtype()))) {
    const DType dt = image_features.dtype();
    auto f32 = [](const Tensor& t) { return is_half(t.dtype()) ? t.to(DType::f32) : t; };
    Tensor loss =
        clip_contrastive_loss(f32(image_features), f32(text_features), f32(logit_scale_param));
    return loss.dtype() == dt ? loss : loss.to(dt);
  }
  const DType dt = image_features.dtype();
  check_kernel_dtype(dev, dt, op);
  check_kernel_dtype(dev, logit_scale_param.dtype(), op);
  if (dev == Device::CPU) {
    const double p = logit_scale_param.item();
    TGPT_CHECK(std::isfinite(p), op, ": logit_scale_param must be finite, got ", p);
  }
  Tensor img = image_features.detach().contiguous(), txt = text_features.detach().contiguous();
  // A copy: the optimizer may update the parameter in place before a deferred backward.
  Tensor param = logit_scale_param.detach().contiguous().clone();
  const DType stats = kernels::clip_contrastive_stats_dtype(dev, dt);
  Tensor an = Tensor::empty({N, E}, stats, dev), bn = Tensor::empty({N, E}, stats, dev);
  Tensor inorm = Tensor::empty({N}, stats, dev), tnorm = Tensor::empty({N}, stats, dev);
  Tensor logits = Tensor::empty({N, N}, stats, dev);
  const bool lse = kernels::clip_contrastive_saves_lse(dev);
  Tensor lse_row = lse ? Tensor::empty({N}, stats, dev) : Tensor();
  Tensor lse_col = lse ? Tensor::empty({N}, stats, dev) : Tensor();
  Tensor out = Tensor::empty({}, dt, dev);
  kernels::clip_contrastive_loss_forward(
      dev, dt, out.data_ptr(), an.data_ptr(), bn.data_ptr(), inorm.data_ptr(), tnorm.data_ptr(),
      logits.data_ptr(), ptr_or_null(lse_row), ptr_or_null(lse_col), img.data_ptr(), txt.data_ptr(),
      param.data_ptr(), param.dtype(), N, E, kClipEps);
  if (auto node = make_node<ClipContrastiveLossNode>(
          {&image_features, &text_features, &logit_scale_param})) {
    node->img = img, node->txt = txt, node->param = param;
    node->an = an, node->bn = bn, node->inorm = inorm, node->tnorm = tnorm;
    node->logits = logits, node->lse_row = lse_row, node->lse_col = lse_col;
    node->param_shape = logit_scale_param.shape();
    record(out, node);
  }
  return out;
}

}  // namespace tgpt

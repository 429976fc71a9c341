/*
 * ops_norm.cpp — normalisations over the last dim with autograd: layer_norm, l2_normalize,
 * softmax and log_softmax. f16/bf16 inputs are computed in f32 and returned in the input dtype.
 * Kernels: kernels/cpu/layernorm.h, kernels/cpu/softmax.h.
 */
#include <cmath>

#include "engine/ops_common.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/softmax.h"

namespace tgpt {

namespace {

// Rows and row length of x [..., C] viewed as [N, C].
void rows_and_cols(const Tensor& x, int64_t& N, int64_t& C) {
  C = x.shape().back();
  N = C > 0 ? x.numel() / C : 0;
}

// The gradient of an output, as a contiguous tensor of dtype dt with no autograd history.
Tensor grad_as(const Tensor& g, DType dt) {
  Tensor d = g.detach();
  if (d.dtype() != dt) d = d.to(dt);
  return d.contiguous();
}

// Checks the optional affine parameter p of layer_norm: [C], same dtype and device as x.
void check_ln_param(const Tensor& p, const Tensor& x, const char* arg) {
  if (!p.defined()) return;
  check_float(p, "layer_norm", arg);
  TGPT_CHECK(p.dim() == 1 && p.size(0) == x.shape().back(), "layer_norm: ", arg, " must be [",
             x.shape().back(), "] to match x ", x.shape().str(), ", got ", p.shape().str());
  check_same_dtype(p, x, "layer_norm");
  check_same_device(p, x, "layer_norm");
}

// --- layer_norm ------------------------------------------------------------------------------

struct LayerNormNode : Node {
  Tensor x, weight, mean, rstd;  // x [N, C] contiguous, weight [C] or undefined, mean/rstd [N]
  const char* name() const override { return "layer_norm"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    int64_t N = x.size(0), C = x.size(1);
    Tensor g = grad_as(g_in, x.dtype());
    Tensor dx, dw, db;
    if (needs_grad(0)) dx = Tensor::empty(x.shape(), x.dtype());
    if (needs_grad(1)) dw = Tensor::empty({C}, x.dtype());
    if (needs_grad(2)) db = Tensor::empty({C}, x.dtype());
    dispatch_float(x.dtype(), "layer_norm backward", [&](auto t) {
      using T = decltype(t);
      cpu::layernorm_backward_cpu<T>(
          dx.defined() ? dx.data<T>() : nullptr, dw.defined() ? dw.data<T>() : nullptr,
          db.defined() ? db.data<T>() : nullptr, g.data<T>(), x.data<T>(),
          weight.defined() ? weight.data<T>() : nullptr, mean.data<T>(), rstd.data<T>(), N, C);
      return 0;
    });
    if (dx.defined()) gi[0] = dx.reshape(inputs[0].shape());
    gi[1] = dw;
    gi[2] = db;
  }
  void release() override { x = weight = mean = rstd = Tensor(); }
};

// --- l2_normalize ----------------------------------------------------------------------------

struct L2NormalizeNode : Node {
  Tensor x, norm;  // x [N, C] contiguous, norm [N]
  double eps = 0;
  const char* name() const override { return "l2_normalize"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    int64_t N = x.size(0), C = x.size(1);
    Tensor g = grad_as(g_in, x.dtype());
    Tensor dx = Tensor::empty(x.shape(), x.dtype());
    dispatch_float(x.dtype(), "l2_normalize backward", [&](auto t) {
      using T = decltype(t);
      cpu::l2_normalize_backward_cpu<T>(dx.data<T>(), g.data<T>(), x.data<T>(), norm.data<T>(), N,
                                        C, eps);
      return 0;
    });
    gi[0] = dx.reshape(inputs[0].shape());
  }
  void release() override { x = norm = Tensor(); }
};

// --- softmax / log_softmax ------------------------------------------------------------------

struct SoftmaxNode : Node {
  Tensor out;  // [N, C] contiguous
  bool log = false;
  const char* name() const override { return log ? "log_softmax" : "softmax"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    int64_t N = out.size(0), C = out.size(1);
    Tensor g = grad_as(g_in, out.dtype());
    Tensor dx = Tensor::empty(out.shape(), out.dtype());
    dispatch_float(out.dtype(), name(), [&](auto t) {
      using T = decltype(t);
      if (log)
        cpu::log_softmax_backward_cpu<T>(dx.data<T>(), g.data<T>(), out.data<T>(), N, C);
      else
        cpu::softmax_backward_cpu<T>(dx.data<T>(), g.data<T>(), out.data<T>(), N, C);
      return 0;
    });
    gi[0] = dx.reshape(inputs[0].shape());
  }
  void release() override { out = Tensor(); }
};

Tensor softmax_impl(const Tensor& x_in, bool log, const char* name) {
  check_float(x_in, name, "x");
  if (is_half(x_in.dtype())) return softmax_impl(x_in.to(DType::f32), log, name).to(x_in.dtype());
  TGPT_CHECK(x_in.dim() >= 1, name, ": x must have at least one dim, got a 0-d tensor");
  check_cpu_kernel(x_in, name);
  int64_t N, C;
  rows_and_cols(x_in, N, C);
  Tensor x = x_in.detach().contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  if (C > 0) {
    dispatch_float(x.dtype(), name, [&](auto t) {
      using T = decltype(t);
      if (log)
        cpu::log_softmax_forward_cpu<T>(out.data<T>(), x.data<T>(), N, C);
      else
        cpu::softmax_forward_cpu<T>(out.data<T>(), x.data<T>(), N, C);
      return 0;
    });
  }
  if (auto node = make_node<SoftmaxNode>({&x_in})) {
    node->out = out.detach().reshape({N, C});
    node->log = log;
    record(out, node);
  }
  return out;
}

}  // namespace

Tensor layer_norm(const Tensor& x_in, const Tensor& weight, const Tensor& bias, double eps) {
  check_float(x_in, "layer_norm", "x");
  if (weight.defined()) check_float(weight, "layer_norm", "weight");
  if (bias.defined()) check_float(bias, "layer_norm", "bias");
  auto as_f32 = [](const Tensor& t) {
    return t.defined() && is_half(t.dtype()) ? t.to(DType::f32) : t;
  };
  if (is_half(x_in.dtype()) || (weight.defined() && is_half(weight.dtype())) ||
      (bias.defined() && is_half(bias.dtype())))
    return layer_norm(as_f32(x_in), as_f32(weight), as_f32(bias), eps).to(x_in.dtype());
  TGPT_CHECK(x_in.dim() >= 1, "layer_norm: x must have at least one dim, got a 0-d tensor");
  TGPT_CHECK(x_in.shape().back() > 0, "layer_norm: last dim of x ", x_in.shape().str(),
             " must be non-empty");
  TGPT_CHECK(eps >= 0 && std::isfinite(eps), "layer_norm: eps must be finite and >= 0, got ", eps);
  check_ln_param(weight, x_in, "weight");
  check_ln_param(bias, x_in, "bias");
  check_cpu_kernel(x_in, "layer_norm");
  int64_t N, C;
  rows_and_cols(x_in, N, C);
  Tensor x = x_in.detach().contiguous();
  Tensor w = weight.defined() ? weight.detach().contiguous() : Tensor();
  Tensor b = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  Tensor mean = Tensor::empty({N}, x.dtype()), rstd = Tensor::empty({N}, x.dtype());
  dispatch_float(x.dtype(), "layer_norm", [&](auto t) {
    using T = decltype(t);
    cpu::layernorm_forward_cpu<T>(out.data<T>(), mean.data<T>(), rstd.data<T>(), x.data<T>(),
                                  w.defined() ? w.data<T>() : nullptr,
                                  b.defined() ? b.data<T>() : nullptr, N, C, eps);
    return 0;
  });
  if (auto node = make_node<LayerNormNode>({&x_in, &weight, &bias})) {
    node->x = x.reshape({N, C});
    node->weight = w;
    node->mean = mean;
    node->rstd = rstd;
    record(out, node);
  }
  return out;
}

Tensor l2_normalize(const Tensor& x_in, double eps) {
  check_float(x_in, "l2_normalize", "x");
  if (is_half(x_in.dtype())) return l2_normalize(x_in.to(DType::f32), eps).to(x_in.dtype());
  TGPT_CHECK(x_in.dim() >= 1, "l2_normalize: x must have at least one dim, got a 0-d tensor");
  TGPT_CHECK(eps >= 0 && std::isfinite(eps), "l2_normalize: eps must be finite and >= 0, got ",
             eps);
  check_cpu_kernel(x_in, "l2_normalize");
  int64_t N, C;
  rows_and_cols(x_in, N, C);
  Tensor x = x_in.detach().contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  Tensor norm = Tensor::empty({N}, x.dtype());
  if (C > 0) {
    dispatch_float(x.dtype(), "l2_normalize", [&](auto t) {
      using T = decltype(t);
      cpu::l2_normalize_forward_cpu<T>(out.data<T>(), norm.data<T>(), x.data<T>(), N, C, eps);
      return 0;
    });
  }
  if (auto node = make_node<L2NormalizeNode>({&x_in})) {
    node->x = x.reshape({N, C});
    node->norm = norm;
    node->eps = eps;
    record(out, node);
  }
  return out;
}

Tensor softmax(const Tensor& x) {
  return softmax_impl(x, false, "softmax");
}
Tensor log_softmax(const Tensor& x) {
  return softmax_impl(x, true, "log_softmax");
}

}  // namespace tgpt

/*
 * ops_norm.cpp — normalisations over the last dim with autograd: layer_norm, add_layer_norm,
 * l2_normalize, softmax and log_softmax. On the CPU f16/bf16 inputs are computed in f32 and
 * returned in the input dtype; CUDA computes them natively. Launchers: kernels/norm.h (which says
 * what each device saves for backward).
 */
#include <cmath>

#include "engine/ops_common.h"
#include "kernels/norm.h"

namespace tgpt {

namespace {

// Rows and row length of x [..., C] viewed as [N, C].
void rows_and_cols(const Tensor& x, int64_t& N, int64_t& C) {
  C = x.shape().back();
  N = C > 0 ? x.numel() / C : 0;
}

// Checks the optional affine parameter p of layer_norm: [C], same dtype and device as x.
void check_ln_param(const Tensor& p, const Tensor& x, const char* op, const char* arg) {
  if (!p.defined()) return;
  check_float(p, op, arg);
  TGPT_CHECK(p.dim() == 1 && p.size(0) == x.shape().back(), op, ": ", arg, " must be [",
             x.shape().back(), "] to match x ", x.shape().str(), ", got ", p.shape().str());
  check_same_dtype(p, x, op);
  check_same_device(p, x, op);
}

// --- layer_norm ------------------------------------------------------------------------------

struct LayerNormNode : Node {
  Tensor x, weight, mean, rstd;  // x [N, C] contiguous, weight [C] or undefined, mean/rstd [N]
  const char* name() const override { return "layer_norm"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    int64_t N = x.size(0), C = x.size(1);
    Tensor g = grad_as(g_in, x);
    Tensor dx, dw, db;
    if (needs_grad(0)) dx = Tensor::empty(x.shape(), x.dtype(), x.device());
    if (needs_grad(1)) dw = Tensor::empty({C}, x.dtype(), x.device());
    if (needs_grad(2)) db = Tensor::empty({C}, x.dtype(), x.device());
    kernels::layernorm_backward(x.device(), x.dtype(), ptr_or_null(dx), ptr_or_null(dw),
                                ptr_or_null(db), g.data_ptr(), x.data_ptr(), ptr_or_null(weight),
                                mean.data_ptr(), rstd.data_ptr(), N, C);
    if (dx.defined()) gi[0] = dx.reshape(inputs[0].shape());
    gi[1] = dw;
    gi[2] = db;
  }
  void release() override { x = weight = mean = rstd = Tensor(); }
};

// s = x + residual as an autograd node (the fused kernel computes s; this records it).
struct ResidualAddNode : Node {
  const char* name() const override { return "residual_add"; }
  void backward(const Tensor& g, std::vector<Tensor>& gi) override {
    if (needs_grad(0)) gi[0] = g;
    if (needs_grad(1)) gi[1] = g;
  }
};

// LayerNorm of x_in, or with `residual` defined of s = x_in + residual (s returned through
// sum_out when non-null), in one launch. x, residual, weight and bias share dtype and device, and
// the device's kernels take the dtype.
Tensor layer_norm_impl(const Tensor& x_in, const Tensor& residual, const Tensor& weight,
                       const Tensor& bias, double eps, Tensor* sum_out) {
  const char* op = residual.defined() ? "add_layer_norm" : "layer_norm";
  TGPT_CHECK(x_in.dim() >= 1, op, ": x must have at least one dim, got a 0-d tensor");
  TGPT_CHECK(x_in.shape().back() > 0, op, ": last dim of x ", x_in.shape().str(),
             " must be non-empty");
  TGPT_CHECK(eps >= 0 && std::isfinite(eps), op, ": eps must be finite and >= 0, got ", eps);
  check_ln_param(weight, x_in, op, "weight");
  check_ln_param(bias, x_in, op, "bias");
  if (residual.defined()) check_same_dtype(x_in, residual, op);
  check_kernel_dtype(x_in.device(), x_in.dtype(), op);
  const Device dev = x_in.device();
  int64_t N, C;
  rows_and_cols(x_in, N, C);
  Tensor x = x_in.detach().contiguous();
  Tensor r = residual.defined() ? residual.detach().contiguous() : Tensor();
  Tensor w = weight.defined() ? weight.detach().contiguous() : Tensor();
  Tensor b = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), dev);
  Tensor s = r.defined() ? Tensor::empty(x.shape(), x.dtype(), dev) : Tensor();
  const DType stats = kernels::norm_stats_dtype(dev, x.dtype());
  Tensor mean = Tensor::empty({N}, stats, dev), rstd = Tensor::empty({N}, stats, dev);
  kernels::layernorm_forward(dev, x.dtype(), out.data_ptr(), mean.data_ptr(), rstd.data_ptr(),
                             x.data_ptr(), ptr_or_null(r), ptr_or_null(s), ptr_or_null(w),
                             ptr_or_null(b), N, C, eps);
  Tensor ln_in = x_in;  // the LayerNorm's autograd input: x, or the recorded sum
  if (r.defined()) {
    if (auto node = make_node<ResidualAddNode>({&x_in, &residual})) record(s, node);
    ln_in = s;
    if (sum_out) *sum_out = s;
  }
  if (auto node = make_node<LayerNormNode>({&ln_in, &weight, &bias})) {
    node->x = (r.defined() ? s.detach() : x).reshape({N, C});
    node->weight = w;
    node->mean = mean;
    node->rstd = rstd;
    record(out, node);
  }
  return out;
}

bool any_half(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  return is_half(x.dtype()) || (weight.defined() && is_half(weight.dtype())) ||
         (bias.defined() && is_half(bias.dtype()));
}

Tensor as_f32(const Tensor& t) {
  return t.defined() && is_half(t.dtype()) ? t.to(DType::f32) : t;
}

// --- l2_normalize ----------------------------------------------------------------------------

struct L2NormalizeNode : Node {
  Tensor x, norm;  // x [N, C] contiguous, norm [N]
  double eps = 0;
  const char* name() const override { return "l2_normalize"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    int64_t N = x.size(0), C = x.size(1);
    Tensor g = grad_as(g_in, x);
    Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
    kernels::l2_normalize_backward(x.device(), x.dtype(), dx.data_ptr(), g.data_ptr(), x.data_ptr(),
                                   norm.data_ptr(), N, C, eps);
    gi[0] = dx.reshape(inputs[0].shape());
  }
  void release() override { x = norm = Tensor(); }
};

// --- softmax / log_softmax ------------------------------------------------------------------

struct SoftmaxNode : Node {
  Tensor out;  // [N, C] the forward output, when the device's backward reads it
  Tensor x;    // [N, C] the forward input, when it reads the input and lse
  Tensor lse;  // f32 [N] row logsumexp, with x
  bool log = false;
  const char* name() const override { return log ? "log_softmax" : "softmax"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    const Tensor& ref = out.defined() ? out : x;
    Tensor g = grad_as(g_in, ref);
    Tensor dx = Tensor::empty(ref.shape(), ref.dtype(), ref.device());
    kernels::softmax_backward(
        ref.device(), ref.dtype(), log, dx.data_ptr(), g.data_ptr(), ptr_or_null(out),
        ptr_or_null(x), lse.defined() ? lse.data<float>() : nullptr, ref.size(0), ref.size(1));
    gi[0] = dx.reshape(inputs[0].shape());
  }
  void release() override { out = x = lse = Tensor(); }
};

Tensor softmax_impl(const Tensor& x_in, bool log, const char* name) {
  check_float(x_in, name, "x");
  if (is_half(x_in.dtype()) && x_in.device() == Device::CPU)
    return softmax_impl(x_in.to(DType::f32), log, name).to(x_in.dtype());
  TGPT_CHECK(x_in.dim() >= 1, name, ": x must have at least one dim, got a 0-d tensor");
  check_kernel_dtype(x_in.device(), x_in.dtype(), name);
  const Device dev = x_in.device();
  int64_t N, C;
  rows_and_cols(x_in, N, C);
  Tensor x = x_in.detach().contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), dev);
  const bool saves_output = kernels::softmax_saves_output(dev);
  Tensor lse = saves_output ? Tensor() : Tensor::empty({N}, DType::f32, dev);
  kernels::softmax_forward(dev, x.dtype(), log, out.data_ptr(),
                           lse.defined() ? lse.data<float>() : nullptr, x.data_ptr(), N, C);
  if (auto node = make_node<SoftmaxNode>({&x_in})) {
    if (saves_output) {
      node->out = out.detach().reshape({N, C});
    } else {
      node->x = x.reshape({N, C});
      node->lse = lse;
    }
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
  if (x_in.device() == Device::CPU && any_half(x_in, weight, bias))
    return layer_norm(as_f32(x_in), as_f32(weight), as_f32(bias), eps).to(x_in.dtype());
  return layer_norm_impl(x_in, Tensor(), weight, bias, eps, nullptr);
}

Tensor add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& weight,
                      const Tensor& bias, double eps, Tensor* sum_out) {
  check_float(x, "add_layer_norm", "x");
  check_float(residual, "add_layer_norm", "residual");
  check_same_device(x, residual, "add_layer_norm");
  TGPT_CHECK(x.shape() == residual.shape(), "add_layer_norm: residual ", residual.shape().str(),
             " must have the shape of x ", x.shape().str());
  if (weight.defined()) check_float(weight, "add_layer_norm", "weight");
  if (bias.defined()) check_float(bias, "add_layer_norm", "bias");
  if (x.device() == Device::CPU && (any_half(x, weight, bias) || is_half(residual.dtype()))) {
    // 16-bit on the CPU: the sum rounded to the dtype, then the f32 LayerNorm of it.
    Tensor s = add(x, residual);
    if (sum_out) *sum_out = s;
    return layer_norm(s, weight, bias, eps);
  }
  return layer_norm_impl(x, residual, weight, bias, eps, sum_out);
}

Tensor l2_normalize(const Tensor& x_in, double eps) {
  check_float(x_in, "l2_normalize", "x");
  if (is_half(x_in.dtype()) && x_in.device() == Device::CPU)
    return l2_normalize(x_in.to(DType::f32), eps).to(x_in.dtype());
  TGPT_CHECK(x_in.dim() >= 1, "l2_normalize: x must have at least one dim, got a 0-d tensor");
  TGPT_CHECK(eps >= 0 && std::isfinite(eps), "l2_normalize: eps must be finite and >= 0, got ",
             eps);
  check_kernel_dtype(x_in.device(), x_in.dtype(), "l2_normalize");
  const Device dev = x_in.device();
  int64_t N, C;
  rows_and_cols(x_in, N, C);
  Tensor x = x_in.detach().contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), dev);
  Tensor norm = Tensor::empty({N}, kernels::norm_stats_dtype(dev, x.dtype()), dev);
  kernels::l2_normalize_forward(dev, x.dtype(), out.data_ptr(), norm.data_ptr(), x.data_ptr(), N, C,
                                eps);
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

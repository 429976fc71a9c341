/*
 * ops_norm.cpp — normalisations over the last dim with autograd: layer_norm, l2_normalize,
 * softmax and log_softmax. f16/bf16 inputs are computed in f32 and returned in the input dtype.
 * Kernels: kernels/cpu/layernorm.h, kernels/cpu/softmax.h.
 */
#include <cmath>

#include "engine/ops_common.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/softmax.h"
#ifdef TGPT_WITH_CUDA
#include "engine/cuda/op_support.h"
#include "kernels/cuda/norm.h"
#endif

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
#ifdef TGPT_WITH_CUDA
    if (x.device() == Device::CUDA) {
      Tensor dx = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
      cuda::l2_normalize_backward(x.dtype(), dx.data_ptr(), g.data_ptr(), x.data_ptr(),
                                  norm.data<float>(), N, C, eps);
      gi[0] = dx.reshape(inputs[0].shape());
      return;
    }
#endif
    Tensor dx = Tensor::empty(x.shape(), x.dtype());
    dispatch_float(x.dtype(), "l2_normalize backward", [&](auto t) {
      using T = decltype(t);
      cpu::l2_normalize_backward_cpu<T>(dx.data<T>(), g.data<T>(), x.data<T>(), norm.data<T>(), N,
                                        C, eps);
      return 0;
    });
    gi[0] = dx.reshape(inputs[0].shape());
  }
  void release() override {
    x = norm = Tensor();
  }
};

// --- softmax / log_softmax ------------------------------------------------------------------

struct SoftmaxNode : Node {
  Tensor out;  // [N, C] contiguous (CPU)
  Tensor x;    // [N, C] contiguous input (CUDA)
  Tensor lse;  // f32 [N] row logsumexp (CUDA)
  bool log = false;
  const char* name() const override { return log ? "log_softmax" : "softmax"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
#ifdef TGPT_WITH_CUDA
    if (x.defined()) {
      Tensor g = grad_as(g_in, x.dtype());
      Tensor dx = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
      cuda::softmax_backward(x.dtype(), log, dx.data_ptr(), g.data_ptr(), x.data_ptr(),
                             lse.data<float>(), x.size(0), x.size(1));
      gi[0] = dx.reshape(inputs[0].shape());
      return;
    }
#endif
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
  void release() override {
    out = x = lse = Tensor();
  }
};

Tensor softmax_impl(const Tensor& x_in, bool log, const char* name) {
  check_float(x_in, name, "x");
  if (is_half(x_in.dtype()) && x_in.device() == Device::CPU)
    return softmax_impl(x_in.to(DType::f32), log, name).to(x_in.dtype());
  TGPT_CHECK(x_in.dim() >= 1, name, ": x must have at least one dim, got a 0-d tensor");
  int64_t N, C;
  rows_and_cols(x_in, N, C);
  Tensor x = x_in.detach().contiguous();
  Tensor out, lse;
#ifdef TGPT_WITH_CUDA
  if (x.device() == Device::CUDA) {
    check_cuda_float(x, name);
    out = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
    lse = Tensor::empty({N}, DType::f32, Device::CUDA);
    cuda::softmax_forward(x.dtype(), log, out.data_ptr(), lse.data<float>(), x.data_ptr(), N, C);
  }
#endif
  if (!out.defined()) check_cpu_kernel(x_in, name);
  if (!out.defined()) out = Tensor::empty(x.shape(), x.dtype());
  if (C > 0 && x.device() == Device::CPU) {
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
    if (lse.defined()) {
      node->x = x.reshape({N, C});
      node->lse = lse;
    } else {
      node->out = out.detach().reshape({N, C});
    }
    node->log = log;
    record(out, node);
  }
  return out;
}

// --- CUDA layer_norm and the fused residual add ---------------------------------------------

// s = x + residual as an autograd node (the fused CUDA kernel computes s; this records it).
struct ResidualAddNode : Node {
  const char* name() const override { return "residual_add"; }
  void backward(const Tensor& g, std::vector<Tensor>& gi) override {
    if (needs_grad(0)) gi[0] = g;
    if (needs_grad(1)) gi[1] = g;
  }
};

#ifdef TGPT_WITH_CUDA
struct LayerNormCudaNode : Node {
  Tensor x, weight, mean, rstd;  // x [N, C] contiguous, weight [C] or undefined, mean/rstd f32 [N]
  const char* name() const override { return "layer_norm"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    int64_t N = x.size(0), C = x.size(1);
    Tensor g = grad_as(g_in, x.dtype());
    Tensor dx, dw, db;
    if (needs_grad(0)) dx = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
    if (needs_grad(1)) dw = Tensor::empty({C}, x.dtype(), Device::CUDA);
    if (needs_grad(2)) db = Tensor::empty({C}, x.dtype(), Device::CUDA);
    cuda::layernorm_backward(x.dtype(), ptr_or_null(dx), ptr_or_null(dw), ptr_or_null(db),
                             g.data_ptr(), x.data_ptr(), ptr_or_null(weight), mean.data<float>(),
                             rstd.data<float>(), N, C);
    if (dx.defined()) gi[0] = dx.reshape(inputs[0].shape());
    gi[1] = dw;
    gi[2] = db;
  }
  void release() override { x = weight = mean = rstd = Tensor(); }
};
#endif

// LayerNorm on the device; with `residual` defined, of s = x_in + residual (s returned through
// sum_out when non-null). x, residual, weight and bias share one dtype (f32, f16 or bf16).
Tensor layer_norm_cuda(const Tensor& x_in, const Tensor& residual, const Tensor& weight,
                       const Tensor& bias, double eps, Tensor* sum_out) {
#ifdef TGPT_WITH_CUDA
  const char* op = residual.defined() ? "add_layer_norm" : "layer_norm";
  check_cuda_float(x_in, op);
  TGPT_CHECK(x_in.dim() >= 1, op, ": x must have at least one dim, got a 0-d tensor");
  TGPT_CHECK(x_in.shape().back() > 0, op, ": last dim of x ", x_in.shape().str(),
             " must be non-empty");
  TGPT_CHECK(eps >= 0 && std::isfinite(eps), op, ": eps must be finite and >= 0, got ", eps);
  check_ln_param(weight, x_in, "weight");
  check_ln_param(bias, x_in, "bias");
  if (residual.defined()) {
    check_same_dtype(x_in, residual, op);
    check_same_device(x_in, residual, op);
    TGPT_CHECK(residual.shape() == x_in.shape(), op, ": residual ", residual.shape().str(),
               " must have the shape of x ", x_in.shape().str());
  }
  int64_t N, C;
  rows_and_cols(x_in, N, C);
  Tensor x = x_in.detach().contiguous();
  Tensor r = residual.defined() ? residual.detach().contiguous() : Tensor();
  Tensor w = weight.defined() ? weight.detach().contiguous() : Tensor();
  Tensor b = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
  Tensor s = r.defined() ? Tensor::empty(x.shape(), x.dtype(), Device::CUDA) : Tensor();
  Tensor mean = Tensor::empty({N}, DType::f32, Device::CUDA);
  Tensor rstd = Tensor::empty({N}, DType::f32, Device::CUDA);
  cuda::layernorm_forward(x.dtype(), out.data_ptr(), mean.data<float>(), rstd.data<float>(),
                          x.data_ptr(), ptr_or_null(r), ptr_or_null(s), ptr_or_null(w),
                          ptr_or_null(b), N, C, eps);
  Tensor ln_in = x_in;  // the LayerNorm's autograd input: x, or the recorded sum
  if (r.defined()) {
    if (auto node = make_node<ResidualAddNode>({&x_in, &residual})) record(s, node);
    ln_in = s;
    if (sum_out) *sum_out = s;
  }
  if (auto node = make_node<LayerNormCudaNode>({&ln_in, &weight, &bias})) {
    node->x = (r.defined() ? s.detach() : x).reshape({N, C});
    node->weight = w;
    node->mean = mean;
    node->rstd = rstd;
    record(out, node);
  }
  return out;
#else
  (void)residual;
  (void)weight;
  (void)bias;
  (void)eps;
  (void)sum_out;
  TGPT_FAIL("layer_norm: ", x_in.str(), " is a CUDA tensor but tgpt was built without CUDA");
#endif
}

}  // namespace

Tensor layer_norm(const Tensor& x_in, const Tensor& weight, const Tensor& bias, double eps) {
  check_float(x_in, "layer_norm", "x");
  if (weight.defined()) check_float(weight, "layer_norm", "weight");
  if (bias.defined()) check_float(bias, "layer_norm", "bias");
  if (x_in.device() == Device::CUDA)
    return layer_norm_cuda(x_in, Tensor(), weight, bias, eps, nullptr);
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
  if (is_half(x_in.dtype()) && x_in.device() == Device::CPU)
    return l2_normalize(x_in.to(DType::f32), eps).to(x_in.dtype());
  TGPT_CHECK(x_in.dim() >= 1, "l2_normalize: x must have at least one dim, got a 0-d tensor");
  TGPT_CHECK(eps >= 0 && std::isfinite(eps), "l2_normalize: eps must be finite and >= 0, got ",
             eps);
  int64_t N, C;
  rows_and_cols(x_in, N, C);
  Tensor x = x_in.detach().contiguous();
  Tensor out, norm;
#ifdef TGPT_WITH_CUDA
  if (x.device() == Device::CUDA) {
    check_cuda_float(x, "l2_normalize");
    out = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
    norm = Tensor::empty({N}, DType::f32, Device::CUDA);  // f32 statistics on the device
    cuda::l2_normalize_forward(x.dtype(), out.data_ptr(), norm.data<float>(), x.data_ptr(), N, C,
                               eps);
  }
#endif
  if (!out.defined()) {
    check_cpu_kernel(x_in, "l2_normalize");
    out = Tensor::empty(x.shape(), x.dtype());
    norm = Tensor::empty({N}, x.dtype());
  }
  if (C > 0 && x.device() == Device::CPU) {
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

namespace tgpt {

Tensor add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& weight,
                      const Tensor& bias, double eps, Tensor* sum_out) {
  check_float(x, "add_layer_norm", "x");
  check_float(residual, "add_layer_norm", "residual");
  check_same_device(x, residual, "add_layer_norm");
  TGPT_CHECK(x.shape() == residual.shape(), "add_layer_norm: residual ", residual.shape().str(),
             " must have the shape of x ", x.shape().str());
  if (x.device() == Device::CUDA) {
    if (weight.defined()) check_float(weight, "add_layer_norm", "weight");
    if (bias.defined()) check_float(bias, "add_layer_norm", "bias");
    return layer_norm_cuda(x, residual, weight, bias, eps, sum_out);
  }
  Tensor s = add(x, residual);
  if (sum_out) *sum_out = s;
  return layer_norm(s, weight, bias, eps);
}

}  // namespace tgpt

/*
 * optim.cpp — AdamW and SGD (see optim.h): argument checks and lazy state. The updates run
 * through the launchers kernels/adamw.h and kernels/sgd.h (CPU kernels kernels/cpu/adamw.h
 * and kernels/cpu/sgd.h; AdamW on CUDA in one multi-tensor launch).
 */
#include "engine/optim.h"

#include <cmath>
#include <cstdint>
#include <unordered_set>

#include "engine/ops_common.h"
#include "kernels/adamw.h"
#include "kernels/sgd.h"

namespace tgpt {

namespace {

bool is_finite_nonneg(double x) {
  return std::isfinite(x) && x >= 0;
}

// Checks that `t` (a state tensor supplied by the caller) matches parameter `p`.
void check_state_tensor(const Tensor& t, const Tensor& p, const char* op, const char* what,
                        size_t i) {
  TGPT_CHECK(t.defined(), op, ": ", what, " of parameter ", i, " is undefined");
  TGPT_CHECK(t.device() == Device::CPU, op, ": ", what, " of parameter ", i,
             " must be a CPU tensor, got ", t.str());
  TGPT_CHECK(t.dtype() == p.dtype(), op, ": ", what, " of parameter ", i, " has dtype ",
             dtype_name(t.dtype()), ", the parameter is ", dtype_name(p.dtype()));
  TGPT_CHECK(t.shape() == p.shape(), op, ": ", what, " of parameter ", i, " has shape ",
             t.shape().str(), ", the parameter is ", p.shape().str());
}

// A fresh contiguous copy of `t` that owns its memory (safe to update in place even when `t`
// wraps a read-only file mapping).
Tensor owned_copy(const Tensor& t) {
  NoGradGuard no_grad;
  Tensor c = Tensor::empty(t.shape(), t.dtype());
  c.copy_(t.detach());
  return c;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Optimizer

Optimizer::Optimizer(std::vector<Tensor> params, double lr, const char* name, bool allow_cuda)
    : params_(std::move(params)), name_(name) {
  TGPT_CHECK(!params_.empty(), name_, ": got an empty parameter list");
  std::unordered_set<const TensorImpl*> seen;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    TGPT_CHECK(p.defined(), name_, ": parameter ", i, " is undefined");
    if (p.device() == Device::CUDA) {
      TGPT_CHECK(allow_cuda, name_, ": parameter ", i, " is ", p.str(),
                 "; CUDA parameters are supported by AdamW only");
      TGPT_CHECK(kernel_takes_dtype(Device::CUDA, p.dtype()), name_, ": parameter ", i, " is ",
                 p.str(), "; CUDA parameters must be f32, f16 or bf16");
    }
    TGPT_CHECK(p.device() == Device::CUDA || (p.dtype() != DType::f16 && p.dtype() != DType::bf16),
               name_, ": parameter ", i, " is ", p.str(),
               "; 16-bit parameters are not supported, keep an f32 master copy and optimize it");
    TGPT_CHECK(p.device() == Device::CUDA || p.dtype() == DType::f32 || p.dtype() == DType::f64,
               name_, ": parameter ", i, " is ", p.str(), "; parameters must be f32 or f64");
    TGPT_CHECK(p.is_leaf(), name_, ": parameter ", i, " (", p.str(),
               ") is not a leaf tensor; cannot optimize the output of an op");
    TGPT_CHECK(p.is_contiguous(), name_, ": parameter ", i, " (", p.str(), ") is not contiguous");
    TGPT_CHECK(seen.insert(&p.impl()).second, name_, ": parameter ", i,
               " appears more than once in the parameter list");
  }
  set_lr(lr);
}

void Optimizer::set_lr(double lr) {
  TGPT_CHECK(is_finite_nonneg(lr), name_, ": invalid learning rate ", lr,
             " (must be finite and >= 0)");
  lr_ = lr;
}

void Optimizer::zero_grad() {
  for (Tensor& p : params_) p.zero_grad();
}

void Optimizer::check_index(size_t i) const {
  TGPT_CHECK(i < params_.size(), name_, ": parameter index ", i, " out of range (", params_.size(),
             " parameters)");
}

Tensor Optimizer::grad_for_update(size_t i) const {
  const Tensor& p = params_[i];
  Tensor g = p.grad();
  if (!g.defined()) return g;
  TGPT_CHECK(g.device() == p.device(), name_, ": gradient of parameter ", i, " is ", g.str(),
             ", expected a ", device_name(p.device()), " tensor");
  TGPT_CHECK(g.dtype() == p.dtype(), name_, ": gradient of parameter ", i, " is ",
             dtype_name(g.dtype()), ", the parameter is ", dtype_name(p.dtype()));
  TGPT_CHECK(g.shape() == p.shape(), name_, ": gradient of parameter ", i, " has shape ",
             g.shape().str(), ", the parameter is ", p.shape().str());
  NoGradGuard no_grad;
  return g.detach().contiguous();
}

// ---------------------------------------------------------------------------------------------
// AdamW

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& options)
    : Optimizer(std::move(params), options.lr, "AdamW", /*allow_cuda=*/true), options_(options) {
  const AdamWOptions& o = options_;
  TGPT_CHECK(is_finite_nonneg(o.eps), "AdamW: invalid eps ", o.eps, " (must be finite and >= 0)");
  TGPT_CHECK(std::isfinite(o.beta1) && o.beta1 >= 0 && o.beta1 < 1, "AdamW: invalid beta1 ",
             o.beta1, " (must be in [0, 1))");
  TGPT_CHECK(std::isfinite(o.beta2) && o.beta2 >= 0 && o.beta2 < 1, "AdamW: invalid beta2 ",
             o.beta2, " (must be in [0, 1))");
  TGPT_CHECK(is_finite_nonneg(o.weight_decay), "AdamW: invalid weight_decay ", o.weight_decay,
             " (must be finite and >= 0)");
  state_.resize(params_.size());
  master_.resize(params_.size());
}

void AdamW::step() {
  std::vector<kernels::AdamWTensor> device_updates;
  std::vector<Tensor> device_grads;  // kept alive until the launch
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = grad_for_update(i);
    if (!g.defined()) continue;  // as torch: no grad, no update, no step count
    Tensor& p = params_[i];
    AdamWState& s = state_[i];
    if (p.device() == Device::CUDA) {
      // f32 moments; 16-bit parameters are updated through an f32 master copy.
      if (s.step == 0) {
        s.exp_avg = Tensor::zeros(p.shape(), DType::f32, Device::CUDA);
        s.exp_avg_sq = Tensor::zeros(p.shape(), DType::f32, Device::CUDA);
      }
      if (p.dtype() != DType::f32 && !master_[i].defined()) {
        NoGradGuard no_grad;
        master_[i] = p.detach().to(DType::f32);
      }
      TGPT_CHECK(s.step < INT64_MAX, "AdamW: step count overflow for parameter ", i);
      s.step += 1;
      kernels::AdamWTensor t;
      t.master = p.dtype() == DType::f32 ? p.data<float>() : master_[i].data<float>();
      t.param_lowp = p.dtype() == DType::f32 ? nullptr : p.data_ptr();
      t.grad = g.data_ptr();
      t.exp_avg = s.exp_avg.data<float>();
      t.exp_avg_sq = s.exp_avg_sq.data<float>();
      t.n = p.numel();
      t.grad_dtype = g.dtype();
      t.step = s.step;
      device_updates.push_back(t);
      device_grads.push_back(g);
      continue;
    }
    if (s.step == 0) {
      s.exp_avg = Tensor::zeros(p.shape(), p.dtype());
      s.exp_avg_sq = Tensor::zeros(p.shape(), p.dtype());
    }
    TGPT_CHECK(s.step < INT64_MAX, "AdamW: step count overflow for parameter ", i);
    s.step += 1;
    kernels::adamw_update(p.device(), p.dtype(), p.data_ptr(), g.data_ptr(), s.exp_avg.data_ptr(),
                          s.exp_avg_sq.data_ptr(), p.numel(), lr_, options_.beta1, options_.beta2,
                          options_.eps, options_.weight_decay, s.step);
  }
  if (!device_updates.empty())
    kernels::adamw_multi_tensor(Device::CUDA, device_updates, lr_, options_.beta1, options_.beta2,
                                options_.eps, options_.weight_decay);
}

const AdamWState& AdamW::state(size_t i) const {
  check_index(i);
  return state_[i];
}

void AdamW::set_state(size_t i, const AdamWState& state) {
  check_index(i);
  TGPT_CHECK(state.step >= 0, "AdamW::set_state: negative step count ", state.step,
             " for parameter ", i);
  if (state.step == 0) {
    TGPT_CHECK(!state.exp_avg.defined() && !state.exp_avg_sq.defined(),
               "AdamW::set_state: parameter ", i,
               " has step 0 but moment tensors; a state before the first step has none");
    state_[i] = AdamWState{};
    return;
  }
  const Tensor& p = params_[i];
  if (p.device() == Device::CUDA) {
    // CUDA parameters keep f32 moments on the device; any device is accepted here.
    auto device_copy = [&](const Tensor& t, const char* what) {
      TGPT_CHECK(t.defined() && t.dtype() == DType::f32 && t.shape() == p.shape(),
                 "AdamW::set_state: ", what, " of CUDA parameter ", i, " must be f32 ",
                 p.shape().str(), ", got ", t.defined() ? t.str() : "undefined");
      NoGradGuard no_grad;
      Tensor c = Tensor::empty(p.shape(), DType::f32, Device::CUDA);
      c.copy_(t.detach());
      return c;
    };
    state_[i] = AdamWState{state.step, device_copy(state.exp_avg, "exp_avg"),
                           device_copy(state.exp_avg_sq, "exp_avg_sq")};
    master_[i] = Tensor();  // re-made from the parameter at the next step
    return;
  }
  check_state_tensor(state.exp_avg, p, "AdamW::set_state", "exp_avg", i);
  check_state_tensor(state.exp_avg_sq, p, "AdamW::set_state", "exp_avg_sq", i);
  state_[i] = AdamWState{state.step, owned_copy(state.exp_avg), owned_copy(state.exp_avg_sq)};
}

// ---------------------------------------------------------------------------------------------
// SGD

SGD::SGD(std::vector<Tensor> params, double lr, const SGDOptions& options)
    : Optimizer(std::move(params), lr, "SGD"), options_(options) {
  const SGDOptions& o = options_;
  TGPT_CHECK(is_finite_nonneg(o.momentum), "SGD: invalid momentum ", o.momentum,
             " (must be finite and >= 0)");
  TGPT_CHECK(std::isfinite(o.dampening), "SGD: invalid dampening ", o.dampening);
  TGPT_CHECK(is_finite_nonneg(o.weight_decay), "SGD: invalid weight_decay ", o.weight_decay,
             " (must be finite and >= 0)");
  TGPT_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
             "SGD: Nesterov momentum requires a momentum > 0 and zero dampening");
  momentum_buffers_.resize(params_.size());
}

void SGD::step() {
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = grad_for_update(i);
    if (!g.defined()) continue;
    Tensor& p = params_[i];
    Tensor& buf = momentum_buffers_[i];
    const bool first = options_.momentum != 0 && !buf.defined();
    if (first) buf = Tensor::empty(p.shape(), p.dtype());
    kernels::sgd_update(p.device(), p.dtype(), p.data_ptr(), g.data_ptr(), ptr_or_null(buf), first,
                        p.numel(), lr_, options_.weight_decay, options_.momentum,
                        options_.dampening, options_.nesterov);
  }
}

const Tensor& SGD::momentum_buffer(size_t i) const {
  check_index(i);
  return momentum_buffers_[i];
}

void SGD::set_momentum_buffer(size_t i, const Tensor& buf) {
  check_index(i);
  if (!buf.defined()) {
    momentum_buffers_[i] = Tensor();
    return;
  }
  check_state_tensor(buf, params_[i], "SGD::set_momentum_buffer", "momentum buffer", i);
  momentum_buffers_[i] = owned_copy(buf);
}

}  // namespace tgpt

/*
 * optim.h — optimizers: AdamW and SGD with momentum, with PyTorch's semantics (torch 1.13,
 * torch.optim.AdamW / torch.optim.SGD, single-tensor path, one parameter group).
 *
 * An optimizer holds handles to leaf parameter tensors and updates them in place from their
 * accumulated .grad() when step() is called. Parameters whose grad is undefined are skipped
 * entirely (their state, including AdamW's per-parameter step count, is left unchanged), as in
 * torch. zero_grad() drops the gradients (torch's set_to_none=True).
 *
 * Parameters must be contiguous CPU leaf tensors of dtype f32 or f64 (f16/bf16 CPU parameters
 * are rejected: keep an f32 master copy and optimize that). AdamW also takes CUDA parameters of
 * dtype f32, f16 or bf16: all of them are updated by one multi-tensor kernel launch per step
 * (kernels/cuda/adamw.h), with f32 moments, and for 16-bit parameters an f32 master copy (made
 * from the parameter at its first step) that is rounded into the parameter after each update. Optimizer state has the parameter's dtype
 * (f32 state for f32 parameters, f64 for f64) and is created lazily at the first step that sees
 * a gradient, as in torch. State accessors exist for checkpointing.
 *
 * The learning rate is a double (set_lr() each iteration from a Scheduler, see schedule.h).
 *
 * Usage:
 *   AdamW opt(params, AdamWOptions::tgpt(2e-3));
 *   for (int64_t k = 1; k <= max_iter; ++k) {
 *     opt.set_lr(schedule.lr_at(k));
 *     opt.zero_grad();
 *     loss(...).backward();
 *     opt.step();
 *   }
 */
#pragma once

#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace tgpt {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Applies one update to every parameter that has a gradient.
  virtual void step() = 0;
  // Drops the gradient of every parameter (the next backward stores fresh ones).
  void zero_grad();

  double lr() const { return lr_; }
  void set_lr(double lr);  // lr must be finite and >= 0

  const std::vector<Tensor>& params() const { return params_; }
  size_t num_params() const { return params_.size(); }
  const char* name() const { return name_; }

 protected:
  // Validates the parameter list (non-empty, unique, contiguous CPU f32/f64 leaves) and lr.
  // allow_cuda: CUDA parameters (f32, f16 or bf16) are accepted (AdamW).
  Optimizer(std::vector<Tensor> params, double lr, const char* name, bool allow_cuda = false);
  void check_index(size_t i) const;
  // The gradient of parameter i as a contiguous tensor, or an undefined tensor if it has none.
  // Throws when the gradient's shape, dtype or device does not match the parameter.
  Tensor grad_for_update(size_t i) const;

  std::vector<Tensor> params_;
  double lr_ = 0;
  const char* name_;
};

// ---------------------------------------------------------------------------------------------
// AdamW (decoupled weight decay). Defaults are torch's.
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;

  // TGP-T's settings (method.md §4.1): betas (0.9, 0.999), eps 1e-7, weight decay 1e-4.
  static AdamWOptions tgpt(double lr) { return AdamWOptions{lr, 0.9, 0.999, 1e-7, 1e-4}; }
};

// Per-parameter AdamW state. Before the parameter's first update: step == 0 and both tensors
// undefined. Afterwards: exp_avg (m) and exp_avg_sq (v) have the parameter's shape and dtype.
struct AdamWState {
  int64_t step = 0;
  Tensor exp_avg;
  Tensor exp_avg_sq;
};

class AdamW : public Optimizer {
 public:
  explicit AdamW(std::vector<Tensor> params, const AdamWOptions& options = {});

  void step() override;

  // The construction options; options().lr is the initial lr, lr() the current one.
  const AdamWOptions& options() const { return options_; }
  // State of parameter i (the tensors are the live state; clone them to keep a snapshot).
  const AdamWState& state(size_t i) const;
  // Replaces the state of parameter i with copies of the given tensors (e.g. from a checkpoint).
  // step == 0 requires both tensors undefined; step > 0 requires both to match the parameter's
  // shape and dtype on the CPU.
  void set_state(size_t i, const AdamWState& state);

 private:
  AdamWOptions options_;
  std::vector<AdamWState> state_;
  std::vector<Tensor> master_;  // f32 copies of f16/bf16 CUDA parameters (created at first step)
};

// ---------------------------------------------------------------------------------------------
// SGD with optional momentum, dampening, (coupled) weight decay and Nesterov momentum:
//   d = g + wd*p;  buf = d (first step) or momentum*buf + (1-dampening)*d;
//   d = nesterov ? d + momentum*buf : buf;  p = p - lr*d.
// There is no default learning rate (torch requires one too).
struct SGDOptions {
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;  // needs momentum > 0 and dampening == 0
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, double lr, const SGDOptions& options = {});

  void step() override;

  const SGDOptions& options() const { return options_; }
  // Momentum buffer of parameter i: undefined until its first update with momentum != 0.
  const Tensor& momentum_buffer(size_t i) const;
  // Replaces it with a copy of `buf` (undefined clears it); must match the parameter's shape and
  // dtype on the CPU.
  void set_momentum_buffer(size_t i, const Tensor& buf);

 private:
  SGDOptions options_;
  std::vector<Tensor> momentum_buffers_;
};

}  // namespace tgpt

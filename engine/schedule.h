/*
 * schedule.h — learning-rate schedules, evaluated per iteration: lr_at(k).
 *
 * Indexing: k counts scheduler steps. The training loop sets opt.set_lr(schedule.lr_at(k)) before
 * the optimizer update of iteration k = 1, 2, ..., which is what calling torch's
 * scheduler.step() before each update gives (TGP-T does this, method.md §4.1).
 *
 *   ConstantSchedule(base):               lr_at(k) = base, k >= 0.
 *   CosineSchedule(base, T):              lr_at(k) = base*(1+cos(pi*k/T))/2, k in [0, T]; the lr of
 *                                         torch's CosineAnnealingLR(T_max=T, eta_min=0) after k
 *                                         scheduler.step() calls (k = 0: base; k = T: 0).
 *   WarmupCosineSchedule(base, T, W=100): TGP-T's schedule (method.md §4.1), k in [1, T]:
 *                                         k < W:  lr = base*k/W      (k = 1 gives base/W; the
 *                                                  construction-time WARMUP_LR is never used)
 *                                         k >= W: lr = base*(1+cos(pi*(k-W)/T))/2
 *                                         so lr_at(W) = base exactly, and the cosine runs with
 *                                         T_max = T although only T-W+1 cosine iterations run:
 *                                         lr_at(T) = base*(1+cos(pi*(T-W)/T))/2 > 0.
 *   ConstantWarmupCosineSchedule(base, T, W, warm): CoOp's schedule (Dassl's ConstantWarmupScheduler
 *                                         before CosineAnnealingLR(T_max = MAX_EPOCH)), per
 *                                         iteration, k in [1, T]:
 *                                         k <= W: lr = warm
 *                                         k >  W: lr = base*(1+cos(pi*(k-W-1)/T))/2 (the first
 *                                                 cosine iteration gets base; like Dassl, T_max
 *                                                 is the whole run, so the end stays above 0)
 * k outside the stated range throws tgpt::Error.
 */
#pragma once

#include <cstdint>

namespace tgpt {

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  virtual double lr_at(int64_t k) const = 0;
};

class ConstantSchedule : public Scheduler {
 public:
  explicit ConstantSchedule(double base_lr);
  double lr_at(int64_t k) const override;

 private:
  double base_lr_;
};

class CosineSchedule : public Scheduler {
 public:
  CosineSchedule(double base_lr, int64_t t_max);
  double lr_at(int64_t k) const override;

 private:
  double base_lr_;
  int64_t t_max_;
};

class WarmupCosineSchedule : public Scheduler {
 public:
  // max_iter = T (MAX_ITER) >= 1, warmup_iters = W (WARMUP_ITER) >= 0.
  WarmupCosineSchedule(double base_lr, int64_t max_iter, int64_t warmup_iters = 100);
  double lr_at(int64_t k) const override;

  int64_t max_iter() const { return max_iter_; }
  int64_t warmup_iters() const { return warmup_iters_; }

 private:
  double base_lr_;
  int64_t max_iter_;
  int64_t warmup_iters_;
};

class ConstantWarmupCosineSchedule : public Scheduler {
 public:
  // max_iter = T >= 1, warmup_iters = W in [0, T], warmup_lr >= 0.
  ConstantWarmupCosineSchedule(double base_lr, int64_t max_iter, int64_t warmup_iters,
                               double warmup_lr);
  double lr_at(int64_t k) const override;

 private:
  double base_lr_;
  int64_t max_iter_;
  int64_t warmup_iters_;
  double warmup_lr_;
};

}  // namespace tgpt

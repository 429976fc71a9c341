/*
 * schedule.cpp — learning-rate schedules (see schedule.h for the formulas and indexing).
 *
 * The expressions are written in the same order as the Python reference (torch's
 * CosineAnnealingLR closed form, TGP-T's linear warm-up `lr * last_epoch / warmup_epoch`), all in
 * double.
 */
#include "engine/schedule.h"

#include <cmath>
#include <numbers>

#include "base/error.h"

namespace tgpt {

namespace {

void check_base_lr(double base_lr, const char* who) {
  TGPT_CHECK(std::isfinite(base_lr) && base_lr >= 0, who, ": invalid base learning rate ", base_lr,
             " (must be finite and >= 0)");
}

}  // namespace

ConstantSchedule::ConstantSchedule(double base_lr) : base_lr_(base_lr) {
  check_base_lr(base_lr, "ConstantSchedule");
}

double ConstantSchedule::lr_at(int64_t k) const {
  TGPT_CHECK(k >= 0, "ConstantSchedule: iteration ", k, " is negative");
  return base_lr_;
}

CosineSchedule::CosineSchedule(double base_lr, int64_t t_max) : base_lr_(base_lr), t_max_(t_max) {
  check_base_lr(base_lr, "CosineSchedule");
  TGPT_CHECK(t_max >= 1, "CosineSchedule: T_max must be >= 1, got ", t_max);
}

double CosineSchedule::lr_at(int64_t k) const {
  TGPT_CHECK(k >= 0 && k <= t_max_, "CosineSchedule: iteration ", k, " outside [0, ", t_max_, "]");
  const double angle = std::numbers::pi * static_cast<double>(k) / static_cast<double>(t_max_);
  return base_lr_ * (1.0 + std::cos(angle)) / 2.0;
}

WarmupCosineSchedule::WarmupCosineSchedule(double base_lr, int64_t max_iter, int64_t warmup_iters)
    : base_lr_(base_lr), max_iter_(max_iter), warmup_iters_(warmup_iters) {
  check_base_lr(base_lr, "WarmupCosineSchedule");
  TGPT_CHECK(max_iter >= 1, "WarmupCosineSchedule: MAX_ITER must be >= 1, got ", max_iter);
  TGPT_CHECK(warmup_iters >= 0, "WarmupCosineSchedule: WARMUP_ITER must be >= 0, got ",
             warmup_iters);
}

double WarmupCosineSchedule::lr_at(int64_t k) const {
  TGPT_CHECK(k >= 1 && k <= max_iter_, "WarmupCosineSchedule: iteration ", k, " outside [1, ",
             max_iter_, "]");
  if (k < warmup_iters_)
    return base_lr_ * static_cast<double>(k) / static_cast<double>(warmup_iters_);
  const double angle =
      std::numbers::pi * static_cast<double>(k - warmup_iters_) / static_cast<double>(max_iter_);
  return base_lr_ * (1.0 + std::cos(angle)) / 2.0;
}

ConstantWarmupCosineSchedule::ConstantWarmupCosineSchedule(double base_lr, int64_t max_iter,
                                                           int64_t warmup_iters, double warmup_lr)
    : base_lr_(base_lr), max_iter_(max_iter), warmup_iters_(warmup_iters), warmup_lr_(warmup_lr) {
  check_base_lr(base_lr, "ConstantWarmupCosineSchedule");
  check_base_lr(warmup_lr, "ConstantWarmupCosineSchedule (warm-up lr)");
  TGPT_CHECK(max_iter >= 1, "ConstantWarmupCosineSchedule: max_iter must be >= 1, got ",
             max_iter);
  TGPT_CHECK(warmup_iters >= 0 && warmup_iters <= max_iter,
             "ConstantWarmupCosineSchedule: warm-up iterations must be in [0, ", max_iter,
             "], got ", warmup_iters);
}

double ConstantWarmupCosineSchedule::lr_at(int64_t k) const {
  TGPT_CHECK(k >= 1 && k <= max_iter_, "ConstantWarmupCosineSchedule: iteration ", k,
             " outside [1, ", max_iter_, "]");
  if (k <= warmup_iters_) return warmup_lr_;
  const double angle = std::numbers::pi * static_cast<double>(k - warmup_iters_ - 1) /
                       static_cast<double>(max_iter_);
  return base_lr_ * (1.0 + std::cos(angle)) / 2.0;
}

}  // namespace tgpt

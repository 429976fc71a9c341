/*
 * test_optim.cpp — optimizers (AdamW, SGD) and learning-rate schedules.
 *
 * Unit tests check the schedules against the formulas of method.md §4.1 at the boundary
 * iterations, AdamW's first step against the closed form, torch semantics (skipping parameters
 * without a gradient, decoupled weight decay, lazy state), state round trips, thread-count
 * determinism and argument checks. Golden tests replay the 10 steps of tests/golden/gen_adamw.py
 * (torch.optim.AdamW / SGD with the same parameters, gradients and lr sequence) and require every
 * parameter after every step to match to max|a-b| / max|b| <= 1e-6 (f32) or 1e-12 (f64), and the
 * lr sequences to 1e-12 relative to the base lr.
 */
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numbers>

#include "engine/optim.h"
#include "base/parallel.h"
#include "engine/safetensors.h"
#include "engine/schedule.h"
#include "tests/test_util.h"

using namespace tgpt;

namespace {

constexpr double kPi = std::numbers::pi;

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.contiguous().data_ptr(), b.contiguous().data_ptr(), a.nbytes()) == 0;
}

Tensor param_from(const std::vector<double>& v, DType dt = DType::f64) {
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}, dt).set_requires_grad(true);
}

}  // namespace

// =============================================================================================
// Schedules

TEST(Schedule, WarmupCosineFollowsSpecAtBoundaries) {
  const double base = 5e-5;
  const int64_t T = 12800, W = 100;
  WarmupCosineSchedule s(base, T);  // WARMUP_ITER defaults to 100
  EXPECT_EQ(s.warmup_iters(), W);
  EXPECT_EQ(s.max_iter(), T);
  auto close = [](double a, double b) { return std::abs(a - b) <= 1e-15 * std::abs(b); };
  // Warm-up: k = 1..W-1, base*k/W; starts at base/100, not at WARMUP_LR.
  EXPECT_TRUE(close(s.lr_at(1), base / 100)) << s.lr_at(1);
  EXPECT_TRUE(close(s.lr_at(50), base / 2)) << s.lr_at(50);
  EXPECT_TRUE(close(s.lr_at(W - 1), base * 0.99)) << s.lr_at(W - 1);
  // k = W is the first cosine iteration with angle 0: exactly base.
  EXPECT_EQ(s.lr_at(W), base);
  EXPECT_TRUE(close(s.lr_at(W + 1), base * (1 + std::cos(kPi / T)) / 2)) << s.lr_at(W + 1);
  // k = T: T_max is MAX_ITER, so the last lr is base*(1-cos(pi*W/T))/2 ~ 1.5e-4*base, not 0.
  const double last = base * (1 - std::cos(kPi * W / T)) / 2;
  EXPECT_NEAR(s.lr_at(T), last, 1e-9 * last);
  EXPECT_GT(s.lr_at(T), 1.5e-4 * base);
  EXPECT_LT(s.lr_at(T), 1.51e-4 * base);
  // Shape: increasing during warm-up, then non-increasing.
  for (int64_t k = 2; k <= W; ++k) EXPECT_GT(s.lr_at(k), s.lr_at(k - 1)) << k;
  for (int64_t k = W + 1; k <= T; k += 97) EXPECT_LT(s.lr_at(k), s.lr_at(k - 1)) << k;
}

TEST(Schedule, WarmupCosineEdgeWarmups) {
  const double base = 1e-3;
  WarmupCosineSchedule w1(base, 10, 1);  // no warm-up iteration: k = 1 is the cosine start
  EXPECT_EQ(w1.lr_at(1), base);
  EXPECT_DOUBLE_EQ(w1.lr_at(6), base * (1 + std::cos(kPi * 5 / 10)) / 2);
  WarmupCosineSchedule w0(base, 10, 0);  // angle pi*k/T from k = 1
  EXPECT_DOUBLE_EQ(w0.lr_at(1), base * (1 + std::cos(kPi / 10)) / 2);
  WarmupCosineSchedule w4(base, 10, 4);
  EXPECT_DOUBLE_EQ(w4.lr_at(3), base * 3 / 4);
  EXPECT_EQ(w4.lr_at(4), base);
  EXPECT_DOUBLE_EQ(w4.lr_at(10), base * (1 + std::cos(kPi * 6 / 10)) / 2);
}

TEST(Schedule, ConstantWarmupCosine) {
  const double base = 2e-3;
  ConstantWarmupCosineSchedule s(base, 20, 3, 1e-5);
  for (int64_t k = 1; k <= 3; ++k) EXPECT_EQ(s.lr_at(k), 1e-5) << k;
  EXPECT_EQ(s.lr_at(4), base);
  EXPECT_DOUBLE_EQ(s.lr_at(14), base * (1 + std::cos(kPi * 10 / 20)) / 2);
  EXPECT_DOUBLE_EQ(s.lr_at(20), base * (1 + std::cos(kPi * 16 / 20)) / 2);
  EXPECT_GT(s.lr_at(20), 0.0);
  EXPECT_THROW(s.lr_at(0), Error);
  EXPECT_THROW(s.lr_at(21), Error);
  EXPECT_THROW(ConstantWarmupCosineSchedule(base, 5, 6, 1e-5), Error);
  EXPECT_THROW(ConstantWarmupCosineSchedule(base, 5, 1, -1.0), Error);
  ConstantWarmupCosineSchedule none(base, 10, 0, 1e-5);
  EXPECT_EQ(none.lr_at(1), base);
}

TEST(Schedule, CosineAndConstant) {
  const double base = 0.1;
  CosineSchedule c(base, 8);
  EXPECT_EQ(c.lr_at(0), base);
  EXPECT_NEAR(c.lr_at(4), base / 2, 1e-17);
  EXPECT_DOUBLE_EQ(c.lr_at(2), base * (1 + std::sqrt(0.5)) / 2);
  EXPECT_EQ(c.lr_at(8), 0.0);
  ConstantSchedule k(3e-4);
  EXPECT_EQ(k.lr_at(0), 3e-4);
  EXPECT_EQ(k.lr_at(123456), 3e-4);
  // Through the interface.
  const Scheduler& s = c;
  EXPECT_EQ(s.lr_at(0), base);
}

TEST(Schedule, BadArgumentsThrow) {
  EXPECT_THROW(WarmupCosineSchedule(-1e-3, 10, 4), Error);
  EXPECT_THROW(WarmupCosineSchedule(NAN, 10, 4), Error);
  EXPECT_THROW(WarmupCosineSchedule(1e-3, 0, 4), Error);
  EXPECT_THROW(WarmupCosineSchedule(1e-3, 10, -1), Error);
  WarmupCosineSchedule w(1e-3, 10, 4);
  EXPECT_THROW(w.lr_at(0), Error);
  EXPECT_THROW(w.lr_at(11), Error);
  EXPECT_THROW(w.lr_at(-5), Error);
  EXPECT_THROW(CosineSchedule(1e-3, 0), Error);
  EXPECT_THROW(CosineSchedule(INFINITY, 5), Error);
  CosineSchedule c(1e-3, 5);
  EXPECT_THROW(c.lr_at(-1), Error);
  EXPECT_THROW(c.lr_at(6), Error);
  EXPECT_THROW(ConstantSchedule(-2.0), Error);
  EXPECT_THROW(ConstantSchedule(1.0).lr_at(-1), Error);
}

// =============================================================================================
// AdamW

TEST(AdamW, DefaultsAreTorchsAndTgptPreset) {
  AdamWOptions d;
  EXPECT_EQ(d.lr, 1e-3);
  EXPECT_EQ(d.beta1, 0.9);
  EXPECT_EQ(d.beta2, 0.999);
  EXPECT_EQ(d.eps, 1e-8);
  EXPECT_EQ(d.weight_decay, 1e-2);
  AdamWOptions t = AdamWOptions::tgpt(5e-5);
  EXPECT_EQ(t.lr, 5e-5);
  EXPECT_EQ(t.eps, 1e-7);
  EXPECT_EQ(t.weight_decay, 1e-4);
  EXPECT_EQ(t.beta1, 0.9);
  EXPECT_EQ(t.beta2, 0.999);
}

TEST(AdamW, FirstTwoStepsMatchClosedForm) {
  // f64, so the closed form holds to rounding. Step 1: m = (1-b1)g, v = (1-b2)g^2, and the
  // bias corrections make the update lr * g / (|g| + eps).
  const double lr = 0.01, wd = 0.1, eps = 1e-3, b1 = 0.9, b2 = 0.999;
  std::vector<double> p0 = {1.5, -2.0, 0.25}, g1 = {0.3, -4.0, 1e-4}, g2 = {-0.7, 2.0, 0.5};
  Tensor p = param_from(p0);
  AdamW opt({p}, AdamWOptions{lr, b1, b2, eps, wd});
  p.set_grad(Tensor::from_vector(g1, {3}, DType::f64));
  opt.step();
  std::vector<double> got = p.to_double_vector();
  std::vector<double> p1(3), m(3), v(3);
  for (int i = 0; i < 3; ++i) {
    m[i] = (1 - b1) * g1[i];
    v[i] = (1 - b2) * g1[i] * g1[i];
    p1[i] = p0[i] * (1 - lr * wd) - lr * g1[i] / (std::abs(g1[i]) + eps);
    EXPECT_NEAR(got[i], p1[i], 1e-14) << i;
  }
  EXPECT_EQ(opt.state(0).step, 1);
  p.set_grad(Tensor::from_vector(g2, {3}, DType::f64));
  opt.step();
  got = p.to_double_vector();
  const double bc1 = 1 - b1 * b1, bc2 = 1 - b2 * b2;
  for (int i = 0; i < 3; ++i) {
    m[i] = b1 * m[i] + (1 - b1) * g2[i];
    v[i] = b2 * v[i] + (1 - b2) * g2[i] * g2[i];
    double expected = p1[i] * (1 - lr * wd) - (lr / bc1) * m[i] / (std::sqrt(v[i] / bc2) + eps);
    EXPECT_NEAR(got[i], expected, 1e-14) << i;
  }
  EXPECT_EQ(opt.state(0).step, 2);
  EXPECT_EQ(opt.state(0).exp_avg.dtype(), DType::f64);
  tgpt::test::expect_close(opt.state(0).exp_avg, Tensor::from_vector(m, {3}, DType::f64), 1e-15, 0,
                           "exp_avg");
  tgpt::test::expect_close(opt.state(0).exp_avg_sq, Tensor::from_vector(v, {3}, DType::f64), 1e-15,
                           0, "exp_avg_sq");
}

TEST(AdamW, SkipsParametersWithoutGradient) {
  Tensor a = param_from({1, 2, 3}, DType::f32);
  Tensor b = param_from({4, 5}, DType::f32);
  Tensor b_before = b.clone();
  AdamW opt({a, b});
  a.set_grad(Tensor::ones({3}));
  opt.step();
  EXPECT_TRUE(bitwise_equal(b, b_before));
  EXPECT_EQ(opt.state(1).step, 0);
  EXPECT_FALSE(opt.state(1).exp_avg.defined());
  EXPECT_FALSE(opt.state(1).exp_avg_sq.defined());
  EXPECT_EQ(opt.state(0).step, 1);
  EXPECT_FALSE(bitwise_equal(a, Tensor::from_vector({1, 2, 3}, {3})));
  // Now only b has a gradient: its own step count starts at 1, a's stays at 1.
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  Tensor a_before = a.clone();
  b.set_grad(Tensor::full({2}, -1.0));
  opt.step();
  EXPECT_TRUE(bitwise_equal(a, a_before));
  EXPECT_EQ(opt.state(0).step, 1);
  EXPECT_EQ(opt.state(1).step, 1);
}

TEST(AdamW, WeightDecayIsDecoupled) {
  // With g = 0 and fresh state, m = v = 0 and the Adam term is 0/(0+eps) = 0: the step is
  // exactly p * (1 - lr*wd), rounded once to f32.
  const double lr = 0.05, wd = 0.2;
  Generator gen(7);
  Tensor p = gen.randn({5, 7}).set_requires_grad(true);
  std::vector<float> p0 = p.to_float_vector();
  AdamW opt({p}, AdamWOptions{lr, 0.9, 0.999, 1e-8, wd});
  p.set_grad(Tensor::zeros({5, 7}));
  opt.step();
  std::vector<float> got = p.to_float_vector();
  const float decay = static_cast<float>(1 - lr * wd);
  for (size_t i = 0; i < p0.size(); ++i) EXPECT_EQ(got[i], p0[i] * decay) << i;
  EXPECT_EQ(opt.state(0).exp_avg.to_double_vector(), std::vector<double>(35, 0.0));
  // Without weight decay a zero gradient leaves p unchanged.
  Tensor q = gen.randn({4}).set_requires_grad(true);
  Tensor q0 = q.clone();
  AdamW opt2({q}, AdamWOptions{lr, 0.9, 0.999, 1e-8, 0.0});
  q.set_grad(Tensor::zeros({4}));
  opt2.step();
  EXPECT_TRUE(bitwise_equal(q, q0));
}

TEST(AdamW, LearningRateSetterAndZeroLr) {
  Tensor p = param_from({1, -1}, DType::f32);
  Tensor p0 = p.clone();
  AdamW opt({p});
  EXPECT_EQ(opt.lr(), 1e-3);
  opt.set_lr(0.0);
  EXPECT_EQ(opt.lr(), 0.0);
  p.set_grad(Tensor::ones({2}));
  opt.step();
  EXPECT_TRUE(bitwise_equal(p, p0));  // lr 0: no decay, no update
  EXPECT_EQ(opt.state(0).step, 1);    // but the moments and step count advance, as in torch
  EXPECT_THROW(opt.set_lr(-1e-3), Error);
  EXPECT_THROW(opt.set_lr(NAN), Error);
  EXPECT_EQ(opt.lr(), 0.0);
}

TEST(AdamW, StateRoundTripContinuesIdentically) {
  Generator gen(11);
  Tensor p = gen.randn({3, 4}).set_requires_grad(true);
  AdamW a({p}, AdamWOptions::tgpt(1e-2));
  for (int t = 0; t < 3; ++t) {
    p.set_grad(gen.randn({3, 4}));
    a.step();
  }
  // A second optimizer over a copy of the parameter, restored from a's state.
  Tensor q = p.clone().detach().set_requires_grad(true);
  AdamW b({q}, AdamWOptions::tgpt(1e-2));
  const AdamWState& sa = a.state(0);
  b.set_state(0, AdamWState{sa.step, sa.exp_avg.clone(), sa.exp_avg_sq.clone()});
  EXPECT_EQ(b.state(0).step, 3);
  EXPECT_FALSE(b.state(0).exp_avg.storage() == sa.exp_avg.storage());  // copied in
  Tensor g = gen.randn({3, 4});
  p.set_grad(g);
  q.set_grad(g);
  a.step();
  b.step();
  EXPECT_TRUE(bitwise_equal(p, q));
  EXPECT_TRUE(bitwise_equal(a.state(0).exp_avg_sq, b.state(0).exp_avg_sq));
  // Resetting to the initial state.
  b.set_state(0, AdamWState{});
  EXPECT_EQ(b.state(0).step, 0);
  EXPECT_FALSE(b.state(0).exp_avg.defined());
}

TEST(AdamW, ResultDoesNotDependOnThreadCount) {
  Generator gen(5);
  Tensor init = gen.randn({100003});
  Tensor g = gen.randn({100003});
  auto run = [&](int threads) {
    int prev = num_threads();
    set_num_threads(threads);
    Tensor p = init.clone().set_requires_grad(true);
    AdamW opt({p});
    for (int t = 0; t < 3; ++t) {
      p.set_grad(g);
      opt.step();
    }
    set_num_threads(prev);
    return p;
  };
  Tensor one = run(1);
  Tensor many = run(std::max(2, num_threads()));
  EXPECT_TRUE(bitwise_equal(one, many));
}

TEST(AdamW, BadArgumentsThrow) {
  auto p = [] { return Tensor::ones({3}).set_requires_grad(true); };
  EXPECT_THROW(AdamW({p()}, AdamWOptions{-1e-3}), Error);
  EXPECT_THROW(AdamW({p()}, AdamWOptions{NAN}), Error);
  EXPECT_THROW(AdamW({p()}, AdamWOptions{1e-3, 1.0}), Error);
  EXPECT_THROW(AdamW({p()}, AdamWOptions{1e-3, -0.1}), Error);
  EXPECT_THROW(AdamW({p()}, AdamWOptions{1e-3, 0.9, 1.0}), Error);
  EXPECT_THROW(AdamW({p()}, AdamWOptions{1e-3, 0.9, 1.5}), Error);
  EXPECT_THROW(AdamW({p()}, AdamWOptions{1e-3, 0.9, 0.999, -1e-8}), Error);
  EXPECT_THROW(AdamW({p()}, AdamWOptions{1e-3, 0.9, 0.999, 1e-8, -1e-2}), Error);
  EXPECT_NO_THROW(AdamW({p()}, AdamWOptions{0.0, 0.0, 0.0, 0.0, 0.0}));
  // Parameter lists.
  EXPECT_THROW(AdamW({}), Error);
  EXPECT_THROW(AdamW({Tensor()}), Error);
  Tensor x = p();
  EXPECT_THROW(AdamW({x, x}), Error);
  EXPECT_THROW(AdamW({mul(x, 2.0)}), Error);  // not a leaf
  clear_tape();
  EXPECT_THROW(AdamW({Tensor::ones({3}, DType::f16)}), Error);
  EXPECT_THROW(AdamW({Tensor::ones({3}, DType::bf16)}), Error);
  EXPECT_THROW(AdamW({Tensor::ones({3}, DType::i32)}), Error);
  EXPECT_THROW(AdamW({Tensor::ones({2, 3}).transpose(0, 1)}), Error);  // not contiguous
  // Gradient that does not match the parameter.
  Tensor y = p();
  AdamW opt({y});
  y.set_grad(Tensor::ones({3}, DType::f64));
  EXPECT_THROW(opt.step(), Error);
  EXPECT_EQ(opt.state(0).step, 0);
  // State that does not match the parameter.
  AdamWState bad_shape{1, Tensor::zeros({4}), Tensor::zeros({4})};
  EXPECT_THROW(opt.set_state(0, bad_shape), Error);
  AdamWState bad_dtype{1, Tensor::zeros({3}, DType::f64), Tensor::zeros({3}, DType::f64)};
  EXPECT_THROW(opt.set_state(0, bad_dtype), Error);
  AdamWState missing{2, Tensor::zeros({3}), Tensor()};
  EXPECT_THROW(opt.set_state(0, missing), Error);
  AdamWState zero_with_tensors{0, Tensor::zeros({3}), Tensor::zeros({3})};
  EXPECT_THROW(opt.set_state(0, zero_with_tensors), Error);
  AdamWState negative{-1, Tensor(), Tensor()};
  EXPECT_THROW(opt.set_state(0, negative), Error);
  EXPECT_THROW(opt.state(1), Error);
  EXPECT_THROW(opt.set_state(1, AdamWState{}), Error);
}

// =============================================================================================
// SGD

TEST(SGD, PlainMomentumAndNesterovMatchFormulas) {
  const double lr = 0.1, mom = 0.9, damp = 0.25, wd = 0.01;
  std::vector<double> p0 = {1.0, -2.0}, g1 = {0.5, 3.0}, g2 = {-1.0, 0.25};
  {  // no momentum, no weight decay: p - lr*g
    Tensor p = param_from(p0);
    SGD opt({p}, lr);
    p.set_grad(Tensor::from_vector(g1, {2}, DType::f64));
    opt.step();
    std::vector<double> got = p.to_double_vector();
    for (int i = 0; i < 2; ++i) EXPECT_DOUBLE_EQ(got[i], p0[i] - lr * g1[i]);
    EXPECT_FALSE(opt.momentum_buffer(0).defined());
  }
  for (bool nesterov : {false, true}) {
    const double d = nesterov ? 0.0 : damp;
    Tensor p = param_from(p0);
    SGD opt({p}, lr, SGDOptions{mom, d, wd, nesterov});
    std::vector<double> ref = p0, buf(2);
    for (int t = 0; t < 2; ++t) {
      const std::vector<double>& g = t == 0 ? g1 : g2;
      p.set_grad(Tensor::from_vector(g, {2}, DType::f64));
      opt.step();
      for (int i = 0; i < 2; ++i) {
        double dp = g[i] + wd * ref[i];
        buf[i] = t == 0 ? dp : mom * buf[i] + (1 - d) * dp;  // no dampening on the first step
        dp = nesterov ? dp + mom * buf[i] : buf[i];
        ref[i] -= lr * dp;
      }
      std::vector<double> got = p.to_double_vector();
      for (int i = 0; i < 2; ++i) EXPECT_NEAR(got[i], ref[i], 1e-15) << nesterov << t << i;
      std::vector<double> gb = opt.momentum_buffer(0).to_double_vector();
      for (int i = 0; i < 2; ++i) EXPECT_NEAR(gb[i], buf[i], 1e-15) << nesterov << t << i;
    }
  }
}

TEST(SGD, SkipsParametersWithoutGradientAndRestoresBuffers) {
  Tensor a = param_from({1, 2}, DType::f32);
  Tensor b = param_from({3}, DType::f32);
  Tensor b0 = b.clone();
  SGD opt({a, b}, 0.1, SGDOptions{0.9});
  a.set_grad(Tensor::ones({2}));
  opt.step();
  EXPECT_TRUE(bitwise_equal(b, b0));
  EXPECT_FALSE(opt.momentum_buffer(1).defined());
  EXPECT_TRUE(opt.momentum_buffer(0).defined());
  opt.set_momentum_buffer(1, Tensor::full({1}, 2.0));
  b.set_grad(Tensor::zeros({1}));
  opt.step();  // buf = 0.9*2 + 0 = 1.8; b = 3 - 0.1*1.8
  EXPECT_FLOAT_EQ(static_cast<float>(b.item()), 3.0f - 0.1f * 1.8f);
  opt.set_momentum_buffer(1, Tensor());
  EXPECT_FALSE(opt.momentum_buffer(1).defined());
}

TEST(SGD, BadArgumentsThrow) {
  auto p = [] { return Tensor::ones({3}).set_requires_grad(true); };
  EXPECT_THROW(SGD({p()}, -0.1), Error);
  EXPECT_THROW(SGD({p()}, 0.1, SGDOptions{-0.9}), Error);
  EXPECT_THROW(SGD({p()}, 0.1, SGDOptions{0.9, 0, -1e-4}), Error);
  EXPECT_THROW(SGD({p()}, 0.1, SGDOptions{0.9, 0.1, 0, true}), Error);  // nesterov + dampening
  EXPECT_THROW(SGD({p()}, 0.1, SGDOptions{0.0, 0.0, 0, true}), Error);  // nesterov, no momentum
  EXPECT_THROW(SGD({}, 0.1), Error);
  Tensor x = p();
  SGD opt({x}, 0.1, SGDOptions{0.9});
  EXPECT_THROW(opt.set_momentum_buffer(0, Tensor::zeros({2})), Error);
  EXPECT_THROW(opt.set_momentum_buffer(0, Tensor::zeros({3}, DType::f64)), Error);
  EXPECT_THROW(opt.momentum_buffer(3), Error);
  EXPECT_THROW(opt.set_lr(INFINITY), Error);
}

// =============================================================================================
// Golden tests against torch (fixture from tests/golden/gen_adamw.py)

namespace {

constexpr int kSteps = 10;
constexpr int kParams = 3;
constexpr double kBaseLr = 2e-3;
constexpr int64_t kWarmup = 4, kMaxIter = 10;

std::string fixture_path() {
  return tgpt::test::golden_dir() + "/adamw.safetensors";
}

// Runs `opt` for kSteps steps over the fixture's gradients with lr_scale * lr.tgpt (taken from
// WarmupCosineSchedule) and checks every parameter after every step against
// `prefix`.param{i}.after.
void replay_and_compare(const SafetensorsFile& f, Optimizer& opt, std::vector<Tensor>& params,
                        double lr_scale, const std::string& prefix, double tol) {
  WarmupCosineSchedule sched(kBaseLr, kMaxIter, kWarmup);
  std::vector<double> has_grad = f.get("has_grad").to_double_vector();
  double worst = 0;
  for (int t = 0; t < kSteps; ++t) {
    opt.set_lr(lr_scale * sched.lr_at(t + 1));
    opt.zero_grad();
    for (int i = 0; i < kParams; ++i)
      if (has_grad[t * kParams + i] != 0)
        params[i].set_grad(f.get("param" + std::to_string(i) + ".grad").select(0, t));
    opt.step();
    for (int i = 0; i < kParams; ++i) {
      Tensor want = f.get(prefix + ".param" + std::to_string(i) + ".after").select(0, t);
      double err = test::rel_error_to_max(params[i], want);
      worst = std::max(worst, err);
      EXPECT_LE(err, tol) << prefix << " param" << i << " after step " << t + 1;
    }
  }
  std::printf("[   info   ] %s vs torch: worst max|a-b|/max|b| over %d steps = %.3g\n",
              prefix.c_str(), kSteps, worst);
}

std::vector<Tensor> fixture_params(const SafetensorsFile& f) {
  std::vector<Tensor> params;
  for (int i = 0; i < kParams; ++i)
    params.push_back(f.get("param" + std::to_string(i) + ".init").clone().set_requires_grad(true));
  return params;
}

}  // namespace

#define SKIP_WITHOUT_GOLDEN()           \
  if (tgpt::test::golden_dir().empty()) \
  GTEST_SKIP() << "TGPT_GOLDEN_DIR not set (run through ctest, which makes the fixtures)"

TEST(OptimGolden, ScheduleMatchesFixture) {
  SKIP_WITHOUT_GOLDEN();
  SafetensorsFile f = SafetensorsFile::open(fixture_path());
  std::vector<double> tgpt_lr = f.get("lr.tgpt").to_double_vector();
  ASSERT_EQ(tgpt_lr.size(), static_cast<size_t>(kSteps));
  WarmupCosineSchedule s(kBaseLr, kMaxIter, kWarmup);
  for (int k = 1; k <= kSteps; ++k)
    EXPECT_NEAR(s.lr_at(k), tgpt_lr[k - 1], 1e-12 * kBaseLr) << "k = " << k;
  // torch's CosineAnnealingLR (recursive form) after k scheduler steps, k = 0..T.
  std::vector<double> cos_lr = f.get("lr.cosine_torch").to_double_vector();
  ASSERT_EQ(cos_lr.size(), static_cast<size_t>(kMaxIter + 1));
  CosineSchedule c(kBaseLr, kMaxIter);
  for (int k = 0; k <= kMaxIter; ++k)
    EXPECT_NEAR(c.lr_at(k), cos_lr[k], 1e-12 * kBaseLr) << "k = " << k;
}

TEST(OptimGolden, AdamWMatchesTorch) {
  SKIP_WITHOUT_GOLDEN();
  SafetensorsFile f = SafetensorsFile::open(fixture_path());
  std::vector<Tensor> params = fixture_params(f);
  AdamW opt(params, AdamWOptions::tgpt(kBaseLr));
  replay_and_compare(f, opt, params, 1.0, "adamw", 1e-6);
  for (int i = 0; i < kParams; ++i) {
    std::string name = "adamw.param" + std::to_string(i);
    EXPECT_EQ(opt.state(i).step, static_cast<int64_t>(f.get(name + ".step").item())) << name;
    EXPECT_LE(test::rel_error_to_max(opt.state(i).exp_avg, f.get(name + ".exp_avg")), 1e-6) << name;
    EXPECT_LE(test::rel_error_to_max(opt.state(i).exp_avg_sq, f.get(name + ".exp_avg_sq")), 1e-6) << name;
  }
  EXPECT_EQ(opt.state(2).step, kSteps - 2);  // param2 had no gradient at steps 3 and 7
}

TEST(OptimGolden, AdamWF64MatchesTorch) {
  SKIP_WITHOUT_GOLDEN();
  SafetensorsFile f = SafetensorsFile::open(fixture_path());
  Tensor p = f.get("adamw64.init").clone().set_requires_grad(true);
  ASSERT_EQ(p.dtype(), DType::f64);
  AdamW opt({p}, AdamWOptions{kBaseLr});  // torch defaults otherwise
  WarmupCosineSchedule sched(kBaseLr, kMaxIter, kWarmup);
  double worst = 0;
  for (int t = 0; t < kSteps; ++t) {
    opt.set_lr(sched.lr_at(t + 1));
    p.set_grad(f.get("adamw64.grad").select(0, t));
    opt.step();
    double err = test::rel_error_to_max(p, f.get("adamw64.after").select(0, t));
    worst = std::max(worst, err);
    EXPECT_LE(err, 1e-12) << "after step " << t + 1;
  }
  std::printf("[   info   ] adamw f64 vs torch: worst max|a-b|/max|b| = %.3g\n", worst);
}

TEST(OptimGolden, SGDMomentumMatchesTorch) {
  SKIP_WITHOUT_GOLDEN();
  SafetensorsFile f = SafetensorsFile::open(fixture_path());
  std::vector<Tensor> params = fixture_params(f);
  SGD opt(params, 1.0, SGDOptions{0.9, 0.1, 1e-3, false});
  replay_and_compare(f, opt, params, 50.0, "sgd", 1e-6);
  for (int i = 0; i < kParams; ++i) {
    std::string name = "sgd.param" + std::to_string(i) + ".momentum_buffer";
    EXPECT_LE(test::rel_error_to_max(opt.momentum_buffer(i), f.get(name)), 1e-6) << name;
  }
}

TEST(OptimGolden, SGDNesterovMatchesTorch) {
  SKIP_WITHOUT_GOLDEN();
  SafetensorsFile f = SafetensorsFile::open(fixture_path());
  std::vector<Tensor> params = fixture_params(f);
  SGD opt(params, 1.0, SGDOptions{0.9, 0.0, 1e-3, true});
  replay_and_compare(f, opt, params, 50.0, "nesterov", 1e-6);
}

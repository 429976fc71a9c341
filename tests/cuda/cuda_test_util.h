/*
 * cuda_test_util.h — helpers for the CUDA op tests: run an op on the CPU (f64 reference, and
 * the same dtype as the device run) and on the device, forward and backward, and compare with
 * per-dtype tolerances.
 *
 * Tolerance rule (FlashAttention's, approximated without PyTorch on the device):
 *   inputs are fresh random f32 values rounded once to the tested dtype; all runs use exactly
 *   these rounded values.
 *   ref   = the CPU op in f64 on the rounded inputs (the "upcast" reference);
 *   lowp  = the CPU op on the rounded inputs in the tested dtype (computed in f32, output rounded
 *           to the dtype): the error a careful low-precision implementation makes;
 *   f16/bf16: max|cuda - ref| <= 2 * max|lowp - ref| + 1e-5 * max|ref|;
 *   f32:      |cuda - ref| <= 1e-5 * (|ref| + max|ref|) elementwise.
 * The 1e-5 * max|ref| floor only covers f32 arithmetic noise when the low-precision run happens
 * to be exact (e.g. pure data movement). Gradients are those of sum(out * w) with a fixed random w
 * (rounded to the dtype; w is the incoming gradient g of the op's backward), compared by the same
 * rule, plus, where a test asks for it, an absolute floor tied to the incoming gradient's size:
 *   tol += grad_floor * eps(dtype) * max|g|          (check_op's grad_floor, 0 by default)
 * for backward formulas that cancel terms of size |g| down to an exact 0 (l2_normalize on a row of
 * length 1): there every reference is 0, so no bound relative to the reference can hold the
 * rounding residue of the cancellation. eps(dtype) is the spacing of the dtype at 1
 * (torch.finfo(dtype).eps: 2^-23 f32, 2^-10 f16, 2^-7 bf16).
 *
 * Every device run happens with allocator poisoning on: each device block handed out is filled
 * with NaN first, so an output element a kernel forgets to write shows up as a NaN mismatch.
 */
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "base/cuda/cuda_common.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"

namespace tgpt::cudatest {

#define SKIP_WITHOUT_CUDA() \
  if (!::tgpt::cuda_available()) GTEST_SKIP() << "no CUDA device"

// Poisons every device allocation while alive.
struct PoisonGuard {
  PoisonGuard() { cuda::set_poison_allocations(true); }
  ~PoisonGuard() { cuda::set_poison_allocations(false); }
  PoisonGuard(const PoisonGuard&) = delete;
  PoisonGuard& operator=(const PoisonGuard&) = delete;
};

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

inline const char* dt_name(DType d) {
  return dtype_name(d);
}

// torch.finfo(dt).eps: the spacing of the floating dtype dt at 1.
inline double dtype_eps(DType dt) {
  switch (dt) {
    case DType::f64: return 0x1p-52;
    case DType::f32: return 0x1p-23;
    case DType::f16: return 0x1p-10;
    case DType::bf16: return 0x1p-7;
    default: return 0;
  }
}

struct RunResult {
  Tensor out;                 // detached, on the CPU
  std::vector<Tensor> grads;  // per input (undefined where no gradient was asked), on the CPU
  Tensor dout;                // the incoming gradient w of sum(out * w) (with backward), on the CPU
};

// Runs f on `masters` (CPU tensors: floating ones f32, index ones i32/i64) rounded to `round_to`,
// then converted to `compute` and moved to `dev`. Inputs with grad[i] get requires_grad; with
// `backward`, the gradient of sum(out * w) is taken.
inline RunResult run_op(const OpFn& f, const std::vector<Tensor>& masters,
                        const std::vector<bool>& grad, DType round_to, DType compute, Device dev,
                        bool backward, uint64_t wseed = 4242) {
  std::vector<Tensor> in;
  for (size_t i = 0; i < masters.size(); ++i) {
    Tensor t = masters[i];
    if (dtype_is_float(t.dtype())) t = t.to(round_to).to(compute);
    if (dev == Device::CUDA) t = t.to(Device::CUDA);
    t = t.detach();
    if (i < grad.size() && grad[i]) t.set_requires_grad(true);
    in.push_back(t);
  }
  RunResult r;
  if (dev == Device::CUDA) {
    PoisonGuard poison;
    Tensor out = f(in);
    r.out = out.detach();
    if (backward) {
      Generator g(wseed);
      Tensor w = g.randn(out.shape()).to(round_to).to(compute);
      r.dout = w;
      sum(mul(out, w.to(Device::CUDA))).backward();
    }
  } else {
    Tensor out = f(in);
    r.out = out.detach();
    if (backward) {
      Generator g(wseed);
      Tensor w = g.randn(out.shape()).to(round_to).to(compute);
      r.dout = w;
      sum(mul(out, w)).backward();
    }
  }
  r.out = r.out.to(Device::CPU);
  for (size_t i = 0; i < in.size(); ++i) {
    Tensor gi = (i < grad.size() && grad[i]) ? in[i].grad() : Tensor();
    r.grads.push_back(gi.defined() ? gi.detach().to(Device::CPU) : Tensor());
  }
  return r;
}

// Compares `got` (device result) with `ref` (f64 reference) under the rule above; `lowp` is the
// CPU result in the tested dtype (unused for f32); abs_floor is added to every element's
// tolerance (0: none).
inline void expect_within(const Tensor& got, const Tensor& ref, const Tensor& lowp, DType dt,
                          const std::string& what, double abs_floor = 0) {
  ASSERT_TRUE(got.defined()) << what << ": no result";
  ASSERT_EQ(got.shape(), ref.shape()) << what;
  std::vector<double> g = got.to_double_vector(), r = ref.to_double_vector();
  double max_ref = 0;
  for (double v : r) max_ref = std::max(max_ref, std::abs(v));
  double bound = 0, lowp_err = 0;
  if (dt != DType::f32) {
    std::vector<double> l = lowp.to_double_vector();
    for (size_t i = 0; i < r.size(); ++i) lowp_err = std::max(lowp_err, std::abs(l[i] - r[i]));
    bound = 2 * lowp_err + 1e-5 * max_ref + abs_floor;
  }
  int bad = 0;
  double worst = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    const double err = std::abs(g[i] - r[i]);
    const double tol = dt == DType::f32 ? 1e-5 * (std::abs(r[i]) + max_ref) + abs_floor : bound;
    if (!(err <= tol)) {  // NaN (poisoned, unwritten) fails here
      if (++bad <= 5)
        ADD_FAILURE() << what << " [" << dt_name(dt) << "] element " << i << ": got " << g[i]
                      << ", reference " << r[i] << ", tolerance " << tol
                      << (dt != DType::f32 ? " (2x low-precision error " : "")
                      << (dt != DType::f32 ? std::to_string(lowp_err) + ")" : "");
    }
    if (std::isnan(err))
      worst = err;
    else if (!std::isnan(worst))
      worst = std::max(worst, err);
  }
  EXPECT_EQ(bad, 0) << what << " [" << dt_name(dt) << "]: " << bad << " of " << r.size()
                    << " elements out of tolerance; max error " << worst << ", max|ref| "
                    << max_ref;
}

// Checks op f on the device against the CPU for dtype dt: forward output, and with `backward`
// the gradients of the inputs flagged in `grad`, each with the absolute floor
// grad_floor * dtype_eps(dt) * max|g| (g: the incoming gradient; see the file comment).
inline void check_op(const OpFn& f, const std::vector<Tensor>& masters,
                     const std::vector<bool>& grad, DType dt, bool backward,
                     const std::string& what, double grad_floor = 0) {
  RunResult ref = run_op(f, masters, grad, dt, DType::f64, Device::CPU, backward);
  RunResult lowp;
  if (dt != DType::f32) lowp = run_op(f, masters, grad, dt, dt, Device::CPU, backward);
  RunResult dev = run_op(f, masters, grad, dt, dt, Device::CUDA, backward);
  EXPECT_EQ(dev.out.dtype(), dt) << what;
  expect_within(dev.out, ref.out, lowp.out, dt, what + " forward");
  if (!backward) return;
  double max_g = 0;
  for (double v : dev.dout.to_double_vector()) max_g = std::max(max_g, std::abs(v));
  const double g_floor = grad_floor * dtype_eps(dt) * max_g;
  for (size_t i = 0; i < masters.size(); ++i) {
    if (i >= grad.size() || !grad[i]) continue;
    ASSERT_TRUE(dev.grads[i].defined()) << what << ": input " << i << " got no gradient";
    expect_within(dev.grads[i], ref.grads[i], dt != DType::f32 ? lowp.grads[i] : Tensor(), dt,
                  what + " grad of input " + std::to_string(i), g_floor);
  }
}

inline const std::vector<DType>& all_float_dtypes() {
  static const std::vector<DType> d = {DType::f32, DType::bf16, DType::f16};
  return d;
}

}  // namespace tgpt::cudatest

/*
 * fused_loss_test_util.h — helpers shared by the fused-loss tests (test_ops_vocab_ce.cpp,
 * test_ops_cosine_loss.cpp): class targets with ignored rows, value and gradients of a loss, and
 * the GoldenFusedLoss fixture reading tests/golden/gen_fused_loss.py's fixture (ours in f32 within
 * 1e-6, relative to the tensor's max, of PyTorch's f64 result; ours in f64 within 1e-12).
 */
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/safetensors.h"
#include "tests/test_util.h"

namespace tgpt::test {

// Targets in [0, V) with the listed rows set to `ignore`.
inline Tensor make_targets(Generator& gen, int64_t N, int64_t V, std::vector<int64_t> ignored_rows,
                           int64_t ignore = -100) {
  Tensor t = gen.randint({N}, 0, V);
  for (int64_t r : ignored_rows) t.data<int64_t>()[r] = ignore;
  return t;
}

// Runs f on leaves copied from the inputs and returns {value, grads of inputs requiring grad}.
inline std::vector<Tensor> value_and_grads(
    const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs,
    double upstream) {
  std::vector<Tensor> leaves;
  for (const Tensor& x : inputs) {
    Tensor l = x.detach().clone();
    if (x.requires_grad()) l.set_requires_grad(true);
    leaves.push_back(l);
  }
  Tensor y = f(leaves);
  std::vector<Tensor> out{y.detach()};
  y.backward(Tensor::full({}, upstream, y.dtype()));
  for (const Tensor& l : leaves)
    if (l.requires_grad()) out.push_back(l.grad());
  return out;
}

inline double rel_to_max(const Tensor& a, const Tensor& ref) {
  EXPECT_EQ(a.shape(), ref.shape()) << a.str() << " vs " << ref.str();
  std::vector<double> va = a.to_double_vector(), vr = ref.to_double_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < va.size() && i < vr.size(); ++i) {
    num = std::max(num, std::abs(va[i] - vr[i]));
    den = std::max(den, std::abs(vr[i]));
  }
  return den > 0 ? num / den : num;
}

class GoldenFusedLoss : public ::testing::Test {
 protected:
  void SetUp() override {
    if (golden_dir().empty()) GTEST_SKIP() << "run via ctest, which writes the fixtures";
    file_ = std::make_unique<SafetensorsFile>(
        SafetensorsFile::open(golden_dir() + "/fused_loss.safetensors"));
  }
  Tensor get(const std::string& name) const { return file_->get(name); }
  // ours in f32 vs PyTorch f64 within 1e-6; ours64 vs PyTorch f64 within 1e-12.
  void check(const Tensor& ours32, const Tensor& ours64, const std::string& key) const {
    Tensor ref64 = get(key + ".f64"), ref32 = get(key);
    double e = rel_to_max(ours32, ref64), e64 = rel_to_max(ours64, ref64);
    std::printf("  %-22s ours-f32-vs-f64 %.2e  (torch f32 vs f64 %.2e)  ours-f64 %.2e\n",
                key.c_str(), e, rel_to_max(ref32, ref64), e64);
    EXPECT_LE(e, 1e-6) << key;
    EXPECT_LE(e64, 1e-12) << key;
  }
  std::unique_ptr<SafetensorsFile> file_;
};

}  // namespace tgpt::test

/*
 * test_ops_attention.cpp — attention on packed qkv [B, T, 3C]: forward against a naive per-head
 * reference written here, backward against f64 finite differences (causal and not, T = 1, 5
 * and 11, 2 heads), argument errors, 16-bit inputs, and bit-identical results for 1 and 2 threads.
 */
#include <gtest/gtest.h>

#include <cmath>

#include "base/parallel.h"
#include "tests/test_util.h"

using namespace tgpt;
using tgpt::test::expect_close;
using tgpt::test::expect_gradients_match;

namespace {

// Naive multi-head attention in double, straight from the definition.
Tensor attention_reference(const Tensor& qkv, int H, bool causal) {
  std::vector<double> v = qkv.to_double_vector();
  int64_t B = qkv.size(0), T = qkv.size(1), C = qkv.size(2) / 3, D = C / H;
  auto at = [&](int64_t b, int64_t t, int64_t col) { return v[(b * T + t) * 3 * C + col]; };
  std::vector<double> out(static_cast<size_t>(B * T * C), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> s(T);
        for (int64_t j = 0; j < T; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += at(b, i, h * D + d) * at(b, j, C + h * D + d);
          s[j] = (causal && j > i) ? -INFINITY : dot / std::sqrt(static_cast<double>(D));
        }
        double mx = -INFINITY, z = 0;
        for (double e : s) mx = std::max(mx, e);
        for (double& e : s) z += (e = std::exp(e - mx));
        for (int64_t j = 0; j < T; ++j)
          for (int64_t d = 0; d < D; ++d)
            out[(b * T + i) * C + h * D + d] += s[j] / z * at(b, j, 2 * C + h * D + d);
      }
  return Tensor::from_vector(out, {B, T, C}, DType::f64);
}

}  // namespace

TEST(Attention, ForwardMatchesReference) {
  Generator gen(41);
  for (bool causal : {false, true}) {
    for (int64_t T : {1, 5, 8, 9, 17}) {  // the kernel's softmax sums rows in blocks of 8
      Tensor qkv = gen.randn({2, T, 3 * 12}, DType::f64);
      Tensor y = attention(qkv, 3, causal);
      EXPECT_EQ(y.shape(), Shape({2, T, 12}));
      expect_close(y, attention_reference(qkv, 3, causal), 1e-12, 1e-13, "f64");
      Tensor qf = gen.randn({2, T, 3 * 16}, DType::f32, 2.0);
      expect_close(attention(qf, 2, causal), attention_reference(qf, 2, causal), 1e-6, 1e-6, "f32");
    }
  }
}

TEST(Attention, CausalFirstTokenCopiesItsValue) {
  // With the causal mask, query 0 sees only key 0, so its output is v_0 exactly.
  Generator gen(42);
  Tensor qkv = gen.randn({1, 4, 3 * 6}, DType::f64);
  Tensor y = attention(qkv, 2, true);
  expect_close(y.select(1, 0), qkv.select(1, 0).narrow(1, 12, 6), 0, 1e-15);
}

TEST(Attention, Gradients) {
  Generator gen(43);
  for (bool causal : {false, true}) {
    for (int64_t T : {1, 5, 11}) {
      Tensor qkv = gen.randn({2, T, 3 * 8}, DType::f64).set_requires_grad(true);
      expect_gradients_match(
          [causal](const std::vector<Tensor>& in) { return attention(in[0], 2, causal); }, {qkv});
    }
  }
  // Non-contiguous qkv.
  Tensor base = gen.randn({5, 2, 12}, DType::f64).set_requires_grad(true);
  expect_gradients_match(
      [](const std::vector<Tensor>& in) { return attention(in[0].transpose(0, 1), 2, true); },
      {base});
}

TEST(Attention, Errors) {
  EXPECT_THROW(attention(Tensor::ones({2, 3, 10}), 2, false), Error);  // 10 not divisible by 3
  EXPECT_THROW(attention(Tensor::ones({2, 3, 12}), 3, false), Error);  // C = 4, 3 heads
  EXPECT_THROW(attention(Tensor::ones({2, 3, 12}), 0, false), Error);
  EXPECT_THROW(attention(Tensor::ones({3, 12}), 2, false), Error);  // not 3-D
  EXPECT_THROW(attention(Tensor::ones({2, 3, 12}, DType::i32), 2, false), Error);
  EXPECT_THROW(attention(Tensor::ones({2, 3, 0}), 1, false), Error);
  try {
    attention(Tensor::ones({2, 3, 12}), 3, false);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("divisible"), std::string::npos) << e.what();
  }
}

TEST(Attention, HalfInputsComputedInF32) {
  Generator gen(44);
  Tensor qkv = gen.randn({2, 5, 3 * 8}).to(DType::bf16);
  Tensor y = attention(qkv, 2, true);
  EXPECT_EQ(y.dtype(), DType::bf16);
  EXPECT_EQ(y.to_double_vector(),
            attention(qkv.to(DType::f32), 2, true).to(DType::bf16).to_double_vector());
}

TEST(Attention, ThreadCountInvariant) {
  Generator gen(45);
  Tensor qkv = gen.randn({3, 17, 3 * 32}).set_requires_grad(true);
  int saved = num_threads();
  std::vector<double> out[2], grad[2];
  for (int k = 0; k < 2; ++k) {
    set_num_threads(k + 1);
    qkv.zero_grad();
    Tensor y = attention(qkv, 4, true);
    out[k] = y.to_double_vector();
    tgpt::test::weighted_sum(y).backward();
    grad[k] = qkv.grad().to_double_vector();
  }
  set_num_threads(saved);
  EXPECT_TRUE(out[0] == out[1]);
  EXPECT_TRUE(grad[0] == grad[1]);
}

/*
 * test_fast_exp.cpp — kernels/cpu/fast_exp.h against exp in double: every 67th float bit pattern
 * over the whole range where the result is neither 0 nor inf in float, error in units in the
 * last place of the correctly rounded float result; special values.
 */
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/cpu/fast_exp.h"

namespace {

// Distance in float steps between a and b (both finite, same sign or zero).
int64_t ulp_distance(float a, float b) {
  return std::abs(static_cast<int64_t>(std::bit_cast<int32_t>(a)) -
                  static_cast<int64_t>(std::bit_cast<int32_t>(b)));
}

TEST(FastExp, WithinOneUlpOfCorrectlyRounded) {
  int64_t worst = 0, checked = 0;
  float worst_x = 0;
  // Negative floats from -0 down to -104, then positive ones up to 89 (every 67th pattern).
  auto sweep = [&](uint32_t first, uint32_t last) {
    for (uint64_t bits = first; bits <= last; bits += 67) {
      const float x = std::bit_cast<float>(static_cast<uint32_t>(bits));
      const float want = static_cast<float>(std::exp(static_cast<double>(x)));
      const float got = tgpt::cpu::exp_fast(x);
      if (std::isinf(want)) {
        EXPECT_TRUE(std::isinf(got)) << x;
        continue;
      }
      const int64_t d = ulp_distance(got, want);
      if (d > worst) worst = d, worst_x = x;
      ++checked;
    }
  };
  sweep(0x80000000u, std::bit_cast<uint32_t>(-104.0f));
  sweep(0x00000000u, std::bit_cast<uint32_t>(89.0f));
  EXPECT_GT(checked, 100'000'000 / 67);
  EXPECT_LE(worst, 1) << "at x = " << worst_x;
}

TEST(FastExp, SpecialValues) {
  using tgpt::cpu::exp_fast;
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(exp_fast(0.0f), 1.0f);
  EXPECT_EQ(exp_fast(-0.0f), 1.0f);
  EXPECT_EQ(exp_fast(inf), inf);
  EXPECT_EQ(exp_fast(-inf), 0.0f);
  EXPECT_EQ(exp_fast(88.8f), inf);
  EXPECT_EQ(exp_fast(1000.0f), inf);
  EXPECT_EQ(exp_fast(-200.0f), 0.0f);
  EXPECT_TRUE(std::isnan(exp_fast(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_GT(exp_fast(-100.0f), 0.0f);  // subnormal, not flushed
  EXPECT_EQ(exp_fast(1.0), std::exp(1.0));
}

}  // namespace

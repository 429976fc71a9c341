/*
 * fast_exp.h — exp for the CPU kernels' hot loops (softmax in attention, QuickGELU's sigmoid),
 * written so that the compiler vectorises it: no calls, no branches.
 *
 * float: x = n·ln2 + r with n = round(x·log2 e) and |r| <= ln2/2 (Cody–Waite: ln2 split in a
 * short high part, exact in n·ln2_hi, and the rest); e^r from its Taylor series to r^7 (the
 * truncation error, < 6e-9 relative, is far below float's 6e-8 rounding); 2^n applied as two
 * exact power-of-two factors so results near overflow (inf above ~88.72) and in the subnormal
 * range (down to ~-103.9, then 0) are rounded once. Measured error <= 1 ulp against exp in
 * double (tests/test_fast_exp.cpp); NaN in, NaN out; exp(±inf) = inf / 0.
 * double: std::exp (the f64 reference paths keep libm).
 */
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace tgpt::cpu {

inline float exp_fast(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;  // 0x3f317200: n·kLn2Hi is exact for |n| <= 256
  constexpr float kLn2Lo = 1.42860676533018705e-6f;  // ln 2 - kLn2Hi
  constexpr float kRound = 12582912.0f;              // 1.5·2^23: adding it rounds to an integer
  const bool is_nan = x != x;
  const float xc = std::min(std::max(is_nan ? 0.0f : x, -104.0f), 89.0f);
  const float n = (xc * kLog2e + kRound) - kRound;  // round to nearest, in [-150, 128]
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  const float p =
      1.0f +
      r * (1.0f + r * (0.5f + r * (1.0f / 6 +
                                   r * (1.0f / 24 +
                                        r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
  const int32_t ni = static_cast<int32_t>(n);
  const int32_t h1 = ni >> 1, h2 = ni - h1;  // each in [-75, 64]: 2^h is a normal float
  const float s1 = std::bit_cast<float>((h1 + 127) << 23);
  const float s2 = std::bit_cast<float>((h2 + 127) << 23);
  const float y = p * s1 * s2;
  return is_nan ? x : y;
}

inline double exp_fast(double x) {
  return std::exp(x);
}

}  // namespace tgpt::cpu

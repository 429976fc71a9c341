/*
 * fused_test_util.h — helpers for the CUDA attention and fused-loss tests: skipping without a
 * device, poisoning the CUDA caching allocator with NaN blocks (so an output element the kernels
 * forget to write shows up as NaN), error measures, and bf16 rounding for low-precision references.
 *
 * Tolerance rule (FlashAttention's): for 16-bit runs, our error against an f64 reference may be
 * at most twice the error of a low-precision reference — the same computation done the way
 * PyTorch's eager ops do it in bf16 (f32 accumulation inside each product, every intermediate
 * tensor rounded to bf16) — plus a floor of 1e-6 of the reference's largest value (or of a
 * related tensor's, where the reference is exactly zero), plus, where a test passes one, an
 * absolute floor derived from a rounding the kernel does and that reference does not (e.g. the
 * attention backward's row term, test_cuda_attention.cpp).
 */
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "base/device.h"
#include "base/dtype.h"
#include "engine/tensor.h"

namespace tgpt::test {

#define SKIP_WITHOUT_CUDA_DEVICE() \
  if (!::tgpt::cuda_available()) GTEST_SKIP() << "no CUDA device"

// Leaves blocks of the given byte sizes, filled with 0xff bytes (NaN as f32, f16 and bf16), in
// the CUDA caching allocator's free lists: the next allocations of these sizes reuse them.
inline void poison_cuda_cache(const std::vector<size_t>& nbytes, int copies = 3) {
  std::vector<Tensor> keep;
  for (size_t n : nbytes)
    for (int i = 0; i < copies; ++i)
      keep.push_back(Tensor::full({static_cast<int64_t>(n)}, 255.0, DType::u8, Device::CUDA));
}

// Number of NaN / inf values.
inline int64_t count_non_finite(const std::vector<double>& v) {
  int64_t n = 0;
  for (double x : v) n += std::isfinite(x) ? 0 : 1;
  return n;
}

// max|a - ref| and max|ref| (NaN in a counts as infinite error).
inline double max_abs_diff(const std::vector<double>& a, const std::vector<double>& ref) {
  EXPECT_EQ(a.size(), ref.size());
  double m = 0;
  for (size_t i = 0; i < a.size() && i < ref.size(); ++i) {
    const double d = std::abs(a[i] - ref[i]);
    m = std::isnan(d) ? INFINITY : std::max(m, d);
  }
  return m;
}
inline double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

// Rounds to the nearest bf16 value (ties to even), returned as float.
inline float round_bf16(float x) {
  return bf16_to_f32(f32_to_bf16(x));
}

// Checks max|ours - ref| <= rel * max(max|ref|, scale_floor) (f32 runs) and that ours is finite.
// scale_floor gives the magnitude of a related tensor when ref itself may be exactly 0 (e.g. dQ
// and dK at T = 1).
inline void expect_rel_to_max(const std::vector<double>& ours, const std::vector<double>& ref,
                              double rel, const std::string& what, double scale_floor = 0) {
  EXPECT_EQ(count_non_finite(ours), 0) << what << ": non-finite values (unwritten output?)";
  const double err = max_abs_diff(ours, ref), scale = std::max(max_abs(ref), scale_floor);
  std::printf("    %-40s err/max %.2e\n", what.c_str(), scale > 0 ? err / scale : err);
  EXPECT_LE(err, rel * scale + 1e-30) << what << ": max error " << err << ", max |ref| " << scale;
}

// FlashAttention's rule for 16-bit runs (see the file comment); scale_floor as above, abs_floor
// added to the bound.
inline void expect_within_lowp(const std::vector<double>& ours, const std::vector<double>& lowp,
                               const std::vector<double>& ref, const std::string& what,
                               double scale_floor = 0, double abs_floor = 0) {
  EXPECT_EQ(count_non_finite(ours), 0) << what << ": non-finite values (unwritten output?)";
  const double e_ours = max_abs_diff(ours, ref), e_lowp = max_abs_diff(lowp, ref);
  const double scale = std::max(max_abs(ref), scale_floor);
  std::printf("    %-40s ours %.2e  low-precision ref %.2e  (of max %.2e, floor %.2e)\n",
              what.c_str(), e_ours, e_lowp, scale, abs_floor);
  EXPECT_LE(e_ours, 2.0 * e_lowp + 1e-6 * scale + abs_floor)
      << what << ": our error " << e_ours << " vs low-precision reference error " << e_lowp
      << ", floor " << abs_floor;
}

}  // namespace tgpt::test

/*
 * resize.cpp — PIL-exact bicubic resize of 8-bit RGB images (algorithm in resize.h).
 */
#include "data/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/parallel.h"

// The weights must be computed with exactly the double operations PIL performs: never fuse a
// multiply and an add into an FMA (possible when built for a CPU with FMA), it changes the bits.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace tgpt {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // 22 fractional bits for 8-bit images

// Keys cubic convolution kernel with a = -0.5 (support 2), evaluated in PIL's operation order.
double bicubic_kernel(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Fixed-point accumulator -> uint8: round (the 2^21 start value) and clamp to [0, 255].
inline uint8_t clip8(int64_t acc) {
  if (acc >= (int64_t{1} << kPrecisionBits << 8)) return 255;
  if (acc <= 0) return 0;
  return static_cast<uint8_t>(acc >> kPrecisionBits);
}

// Horizontal pass: rows [y0, y1) of src -> dst [y1 - y0, out_w].
void resample_horizontal(const Image& src, int64_t y0, int64_t y1, const ResampleTaps& taps,
                         Image& dst) {
  const int64_t out_w = dst.width;
  parallel_for(
      y1 - y0,
      [&](int64_t r) {
        const uint8_t* in = src.row(y0 + r);
        uint8_t* out = dst.row(r);
        for (int64_t xx = 0; xx < out_w; ++xx) {
          const int32_t* k = &taps.weights[static_cast<size_t>(xx * taps.ksize)];
          const uint8_t* p = in + taps.first[xx] * 3;
          int64_t acc0 = int64_t{1} << (kPrecisionBits - 1), acc1 = acc0, acc2 = acc0;
          for (int64_t t = 0; t < taps.count[xx]; ++t) {
            acc0 += int64_t{p[3 * t + 0]} * k[t];
            acc1 += int64_t{p[3 * t + 1]} * k[t];
            acc2 += int64_t{p[3 * t + 2]} * k[t];
          }
          out[3 * xx + 0] = clip8(acc0);
          out[3 * xx + 1] = clip8(acc1);
          out[3 * xx + 2] = clip8(acc2);
        }
      },
      16);
}

// Vertical pass: dst row yy mixes src rows taps.first[yy] - row_shift + t.
void resample_vertical(const Image& src, int64_t row_shift, const ResampleTaps& taps, Image& dst) {
  const int64_t n = dst.width * 3;
  parallel_for(
      dst.height,
      [&](int64_t yy) {
        std::vector<int64_t> acc(static_cast<size_t>(n), int64_t{1} << (kPrecisionBits - 1));
        const int32_t* k = &taps.weights[static_cast<size_t>(yy * taps.ksize)];
        for (int64_t t = 0; t < taps.count[yy]; ++t) {
          const uint8_t* in = src.row(taps.first[yy] - row_shift + t);
          const int64_t w = k[t];
          for (int64_t i = 0; i < n; ++i) acc[i] += int64_t{in[i]} * w;
        }
        uint8_t* out = dst.row(yy);
        for (int64_t i = 0; i < n; ++i) out[i] = clip8(acc[i]);
      },
      16);
}

}  // namespace

ResampleTaps bicubic_taps(int64_t in_size, int64_t out_size) {
  TGPT_CHECK(in_size >= 1 && out_size >= 1, "bicubic_taps: sizes must be >= 1, got ", in_size,
             " -> ", out_size);
  TGPT_CHECK(in_size <= kMaxImagePixels && out_size <= kMaxImagePixels,
             "bicubic_taps: size too large: ", in_size, " -> ", out_size);
  // PIL takes the box edges as floats: (in1 - in0) is computed in float, then widened.
  const float in0 = 0.0f, in1 = static_cast<float>(in_size);
  const double scale = static_cast<double>(in1 - in0) / static_cast<double>(out_size);
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 2.0 * filterscale;
  const double ss = 1.0 / filterscale;

  ResampleTaps taps;
  taps.ksize = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  taps.first.resize(static_cast<size_t>(out_size));
  taps.count.resize(static_cast<size_t>(out_size));
  taps.weights.assign(static_cast<size_t>(out_size * taps.ksize), 0);
  std::vector<double> w(static_cast<size_t>(taps.ksize));
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (static_cast<double>(xx) + 0.5) * scale;
    // C-style truncation toward zero of "+ 0.5"-rounded edges, then clamping, as PIL does.
    int64_t xmin = static_cast<int64_t>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int64_t xmax = static_cast<int64_t>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    TGPT_CHECK(xmax >= 1 && xmax <= taps.ksize, "bicubic_taps: internal error: ", xmax,
               " taps for output ", xx, " (ksize ", taps.ksize, ")");
    double ww = 0.0;
    for (int64_t x = 0; x < xmax; ++x) {
      const double v = bicubic_kernel((static_cast<double>(x + xmin) - center + 0.5) * ss);
      w[static_cast<size_t>(x)] = v;
      ww += v;
    }
    int32_t* k = &taps.weights[static_cast<size_t>(xx * taps.ksize)];
    for (int64_t x = 0; x < xmax; ++x) {
      double v = w[static_cast<size_t>(x)];
      if (ww != 0.0) v /= ww;
      // Round half away from zero to 22-bit fixed point (|v| <= ~1.1, so no overflow).
      k[x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                   : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    taps.first[static_cast<size_t>(xx)] = xmin;
    taps.count[static_cast<size_t>(xx)] = xmax;
  }
  return taps;
}

namespace {

// Output samples [start, start + len) of a set of taps.
ResampleTaps slice_taps(const ResampleTaps& t, int64_t start, int64_t len) {
  ResampleTaps s;
  s.ksize = t.ksize;
  s.first.assign(t.first.begin() + start, t.first.begin() + start + len);
  s.count.assign(t.count.begin() + start, t.count.begin() + start + len);
  s.weights.assign(t.weights.begin() + start * t.ksize,
                   t.weights.begin() + (start + len) * t.ksize);
  return s;
}

}  // namespace

Image resize_bicubic_crop(const Image& src, int64_t out_h, int64_t out_w, const CropBox& box) {
  TGPT_CHECK(!src.empty(), "resize_bicubic: empty source image (", src.height, "x", src.width, ")");
  TGPT_CHECK(out_h >= 1 && out_w >= 1, "resize_bicubic: target size must be >= 1, got ", out_h, "x",
             out_w);
  TGPT_CHECK(out_w <= kMaxImagePixels / out_h, "resize_bicubic: target ", out_h, "x", out_w,
             " exceeds the limit of ", kMaxImagePixels, " pixels");
  TGPT_CHECK(box.top >= 0 && box.left >= 0 && box.height >= 1 && box.width >= 1 &&
                 box.top <= out_h - box.height && box.left <= out_w - box.width,
             "resize_bicubic: crop box (top ", box.top, ", left ", box.left, ", ", box.height, "x",
             box.width, ") outside the resized image ", out_h, "x", out_w);
  // PIL skips a pass whose size does not change (it would be the identity anyway).
  const bool need_horizontal = out_w != src.width;
  const bool need_vertical = out_h != src.height;

  Image out(box.height, box.width);
  if (!need_horizontal) {
    // Columns pass through unchanged: take the box's columns (and, without a vertical pass, rows).
    Image cols(need_vertical ? src.height : box.height, box.width);
    const int64_t row0 = need_vertical ? 0 : box.top;
    for (int64_t y = 0; y < cols.height; ++y)
      std::memcpy(cols.row(y), src.at(row0 + y, box.left), static_cast<size_t>(box.width * 3));
    if (!need_vertical) return cols;
    resample_vertical(cols, 0, slice_taps(bicubic_taps(src.height, out_h), box.top, box.height),
                      out);
    return out;
  }
  const ResampleTaps htaps = slice_taps(bicubic_taps(src.width, out_w), box.left, box.width);
  if (!need_vertical) {
    resample_horizontal(src, box.top, box.top + box.height, htaps, out);
    return out;
  }
  const ResampleTaps vtaps = slice_taps(bicubic_taps(src.height, out_h), box.top, box.height);
  // Only the source rows that the vertical pass reads go through the horizontal pass.
  const int64_t y_first = vtaps.first.front();
  const int64_t y_last = vtaps.first.back() + vtaps.count.back();
  Image tmp(y_last - y_first, box.width);
  resample_horizontal(src, y_first, y_last, htaps, tmp);
  resample_vertical(tmp, y_first, vtaps, out);
  return out;
}

Image resize_bicubic(const Image& src, int64_t out_h, int64_t out_w) {
  return resize_bicubic_crop(src, out_h, out_w, CropBox{0, 0, out_h, out_w});
}

}  // namespace tgpt

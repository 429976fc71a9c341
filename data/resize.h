/*
 * resize.h — bicubic image resizing that reproduces PIL's Image.resize(size, Image.BICUBIC)
 * bit-for-bit on 8-bit RGB images (Pillow's libImaging/Resample.c algorithm, ../shared/spec/clip.md
 * §5), implemented from the algorithm's description.
 *
 * Algorithm:
 *   - Separable, horizontal pass first, into a uint8 intermediate (rounded and clamped), over only
 *     the source rows that the vertical pass reads; then the vertical pass. A pass whose size does
 *     not change is skipped (PIL skips it too); same size in both dims returns a copy.
 *   - Kernel: Keys cubic with a = -0.5, support 2, widened by the downscale factor (antialiasing):
 *     scale = in/out, filterscale = max(scale, 1), support = 2 * filterscale. For output index i:
 *     center = (i + 0.5) * scale, first tap xmin = max(int(center - support + 0.5), 0), end
 *     xmax = min(int(center + support + 0.5), in), weight of tap x = K((x - center + 0.5) / fs)
 *     (computed as a multiplication by 1 / fs, as PIL does), normalised to sum 1 in double.
 *   - Weights in fixed point with 22 fractional bits (round half away from zero); accumulation
 *     starts at 2^21, result = clamp(acc >> 22, 0, 255).
 */
#pragma once

#include <cstdint>
#include <vector>

#include "data/image.h"

namespace tgpt {

// Fixed-point bicubic taps for resizing one dimension from in_size to out_size samples.
struct ResampleTaps {
  int64_t ksize = 0;             // taps stored per output sample
  std::vector<int64_t> first;    // [out] first source index
  std::vector<int64_t> count;    // [out] number of taps used (<= ksize)
  std::vector<int32_t> weights;  // [out, ksize] weights in 2^-22 units, zero past count
};

// PIL's coefficient computation for the bicubic filter (see the header comment).
ResampleTaps bicubic_taps(int64_t in_size, int64_t out_size);

// PIL Image.resize((out_w, out_h), BICUBIC) of an RGB image. Sizes must be >= 1.
Image resize_bicubic(const Image& src, int64_t out_h, int64_t out_w);

// The `box` part of resize_bicubic(src, out_h, out_w), computing only those output pixels (each
// output pixel depends only on its own taps, so this equals resizing everything then cropping).
Image resize_bicubic_crop(const Image& src, int64_t out_h, int64_t out_w, const CropBox& box);

}  // namespace tgpt

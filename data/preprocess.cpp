/*
 * preprocess.cpp — CLIP evaluation preprocessing, RandomResizedCrop + flip augmentation, and
 * parallel batch preprocessing of image files (see preprocess.h).
 */
#include "data/preprocess.h"

#include <cmath>
#include <cstring>
#include <exception>
#include <limits>

#include "base/parallel.h"
#include "data/resize.h"

namespace tgpt {

namespace {

// Our own uniform draws from the raw 64-bit stream, so a seed gives the same numbers with any
// C++ standard library (std:: distributions are implementation-defined).
double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

double uniform(std::mt19937_64& rng, double lo, double hi) {
  return lo + (hi - lo) * uniform01(rng);
}

// Integer uniform in [lo, hi] (unbiased, by rejection).
int64_t uniform_int(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  const uint64_t range = static_cast<uint64_t>(hi - lo) + 1;
  const uint64_t limit = std::numeric_limits<uint64_t>::max() -
                         std::numeric_limits<uint64_t>::max() % range;  // multiple of range
  uint64_t r;
  do r = rng();
  while (r >= limit);
  return lo + static_cast<int64_t>(r % range);
}

// Python's int(round(x)) for a non-negative finite x of moderate size (round half to even).
int64_t round_half_even(double x) {
  return static_cast<int64_t>(std::nearbyint(x));
}

// A 64-bit mix (splitmix64 finaliser) to derive per-image seeds.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void check_target_size(const char* op, int64_t n) {
  TGPT_CHECK(n >= 1 && n <= 16384, op, ": target size must be in [1, 16384], got ", n);
}

}  // namespace

void shorter_side_resize_size(int64_t h, int64_t w, int64_t size, int64_t* out_h, int64_t* out_w) {
  TGPT_CHECK(h >= 1 && w >= 1, "shorter_side_resize_size: empty image ", h, "x", w);
  check_target_size("shorter_side_resize_size", size);
  TGPT_CHECK(h <= kMaxImagePixels && w <= kMaxImagePixels, "shorter_side_resize_size: image ", h,
             "x", w, " too large");
  const int64_t shorter = w <= h ? w : h, longer = w <= h ? h : w;
  // Python: int(size * long / short), an exact integer product, a correctly rounded true
  // division (the same as IEEE double division here, both operands being exact), truncation.
  const int64_t new_long =
      static_cast<int64_t>(static_cast<double>(size * longer) / static_cast<double>(shorter));
  *out_w = w <= h ? size : new_long;
  *out_h = w <= h ? new_long : size;
}

CropBox center_crop_box(int64_t h, int64_t w, int64_t crop_h, int64_t crop_w) {
  TGPT_CHECK(crop_h >= 1 && crop_w >= 1 && crop_h <= h && crop_w <= w, "center_crop: crop ", crop_h,
             "x", crop_w, " does not fit in the image ", h, "x", w);
  // int(round(d / 2.0)): d even -> d/2; d odd -> the even one of d/2 and d/2 + 1.
  auto offset = [](int64_t d) {
    const int64_t q = d / 2;
    return (d % 2 == 0 || q % 2 == 0) ? q : q + 1;
  };
  return CropBox{offset(h - crop_h), offset(w - crop_w), crop_h, crop_w};
}

Image crop_image(const Image& img, const CropBox& box) {
  TGPT_CHECK(box.top >= 0 && box.left >= 0 && box.height >= 1 && box.width >= 1 &&
                 box.top <= img.height - box.height && box.left <= img.width - box.width,
             "crop_image: box (top ", box.top, ", left ", box.left, ", ", box.height, "x",
             box.width, ") outside the image ", img.height, "x", img.width);
  Image out(box.height, box.width);
  for (int64_t y = 0; y < box.height; ++y)
    std::memcpy(out.row(y), img.at(box.top + y, box.left), static_cast<size_t>(box.width * 3));
  return out;
}

Image hflip_image(const Image& img) {
  Image out(img.height, img.width);
  for (int64_t y = 0; y < img.height; ++y)
    for (int64_t x = 0; x < img.width; ++x)
      std::memcpy(out.at(y, img.width - 1 - x), img.at(y, x), 3);
  return out;
}

void normalize_image_into(const Image& img, float* dst) {
  const int64_t hw = img.height * img.width;
  for (int c = 0; c < 3; ++c) {
    float* out = dst + c * hw;
    for (int64_t i = 0; i < hw; ++i) {
      // torchvision: to(float32).div(255), then sub_(mean).div_(std), each rounded to f32.
      const float v = static_cast<float>(img.pixels[static_cast<size_t>(3 * i + c)]) / 255.0f;
      out[i] = (v - kClipMean[c]) / kClipStd[c];
    }
  }
}

Tensor normalize_image(const Image& img) {
  Tensor t = Tensor::empty({3, img.height, img.width}, DType::f32);
  normalize_image_into(img, t.data<float>());
  return t;
}

Image clip_resize_center_crop(const Image& img, int64_t n) {
  check_target_size("clip_preprocess", n);
  TGPT_CHECK(!img.empty(), "clip_preprocess: empty image ", img.height, "x", img.width);
  int64_t rh = 0, rw = 0;
  shorter_side_resize_size(img.height, img.width, n, &rh, &rw);
  // Only the cropped part of the resized image is computed (identical to resize-then-crop).
  return resize_bicubic_crop(img, rh, rw, center_crop_box(rh, rw, n, n));
}

Tensor clip_preprocess(const Image& img, int64_t n) {
  return normalize_image(clip_resize_center_crop(img, n));
}

CropBox random_resized_crop_box(int64_t h, int64_t w, std::mt19937_64& rng, double scale_min,
                                double scale_max, double ratio_min, double ratio_max) {
  TGPT_CHECK(h >= 1 && w >= 1, "random_resized_crop: empty image ", h, "x", w);
  TGPT_CHECK(0 < scale_min && scale_min <= scale_max && scale_max <= 1.0,
             "random_resized_crop: bad scale range (", scale_min, ", ", scale_max, ")");
  TGPT_CHECK(0 < ratio_min && ratio_min <= ratio_max && std::isfinite(ratio_max),
             "random_resized_crop: bad ratio range (", ratio_min, ", ", ratio_max, ")");
  const double area = static_cast<double>(h) * static_cast<double>(w);
  const double log_rmin = std::log(ratio_min), log_rmax = std::log(ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * uniform(rng, scale_min, scale_max);
    const double aspect = std::exp(uniform(rng, log_rmin, log_rmax));
    const int64_t cw = round_half_even(std::sqrt(target_area * aspect));
    const int64_t ch = round_half_even(std::sqrt(target_area / aspect));
    if (0 < cw && cw <= w && 0 < ch && ch <= h) {
      const int64_t top = uniform_int(rng, 0, h - ch);
      const int64_t left = uniform_int(rng, 0, w - cw);
      return CropBox{top, left, ch, cw};
    }
  }
  // Fallback: the whole image, or its central part clamped to the ratio range.
  const double in_ratio = static_cast<double>(w) / static_cast<double>(h);
  int64_t cw = w, ch = h;
  if (in_ratio < ratio_min) {
    ch = round_half_even(static_cast<double>(cw) / ratio_min);
  } else if (in_ratio > ratio_max) {
    cw = round_half_even(static_cast<double>(ch) * ratio_max);
  }
  return CropBox{(h - ch) / 2, (w - cw) / 2, ch, cw};
}

Image random_resized_crop_flip(const Image& img, int64_t n, std::mt19937_64& rng) {
  return random_train_view(img, n, TrainTransform{}, rng);
}

Tensor clip_train_preprocess(const Image& img, int64_t n, std::mt19937_64& rng) {
  return normalize_image(random_resized_crop_flip(img, n, rng));
}

TrainTransform train_transform_from_names(const std::vector<std::string>& names,
                                          const std::vector<double>& crop_scale) {
  TrainTransform t;
  t.random_resized_crop = false;
  t.random_flip = false;
  for (const std::string& name : names) {
    if (name == "random_resized_crop") {
      t.random_resized_crop = true;
    } else if (name == "random_flip") {
      t.random_flip = true;
    } else {
      TGPT_CHECK(name == "normalize", "INPUT.TRANSFORMS: '", name,
                 "' is not supported (supported: random_resized_crop, random_flip, normalize)");
    }
  }
  TGPT_CHECK(crop_scale.size() == 2, "INPUT.RRCROP_SCALE must hold two numbers, got ",
             crop_scale.size());
  TGPT_CHECK(crop_scale[0] > 0 && crop_scale[0] <= crop_scale[1] && crop_scale[1] <= 1.0,
             "INPUT.RRCROP_SCALE must satisfy 0 < min <= max <= 1, got (", crop_scale[0], ", ",
             crop_scale[1], ")");
  t.crop_scale_min = crop_scale[0];
  t.crop_scale_max = crop_scale[1];
  return t;
}

Image random_train_view(const Image& img, int64_t n, const TrainTransform& t,
                        std::mt19937_64& rng) {
  check_target_size("random_train_view", n);
  TGPT_CHECK(!img.empty(), "random_train_view: empty image ", img.height, "x", img.width);
  Image out;
  if (t.random_resized_crop) {
    const CropBox box =
        random_resized_crop_box(img.height, img.width, rng, t.crop_scale_min, t.crop_scale_max);
    out = resize_bicubic(crop_image(img, box), n, n);
  } else {
    out = resize_bicubic(img, n, n);
  }
  if (t.random_flip && uniform01(rng) < 0.5) out = hflip_image(out);
  return out;
}

void preprocess_batch_image_into(const std::string& path, int64_t i, int64_t n, bool train,
                                 uint64_t seed, const TrainTransform& transform, float* dst) {
  check_target_size("preprocess_batch_image_into", n);
  const Image img = decode_image_file(path);
  Image crop;
  if (train) {
    std::mt19937_64 rng(mix64(seed ^ mix64(static_cast<uint64_t>(i) + 0x9e3779b97f4a7c15ULL)));
    crop = random_train_view(img, n, transform, rng);
  } else {
    crop = clip_resize_center_crop(img, n);
  }
  normalize_image_into(crop, dst);
}

std::string image_error_message(const std::string& path, const std::string& error) {
  if (error.find(path) != std::string::npos) return error;
  return str_cat(path, ": ", error.empty() ? "unknown error" : error);
}

std::string batch_failure_message(const std::string& what, const std::vector<std::string>& errors,
                                  size_t max_listed) {
  std::string msg;
  size_t failed = 0;
  for (const std::string& e : errors) {
    if (e.empty()) continue;
    if (failed++ < max_listed) msg += "\n  " + e;
  }
  if (failed == 0) return "";
  if (failed > max_listed) msg += str_cat("\n  ... and ", failed - max_listed, " more");
  return str_cat(what, ": ", failed, " of ", errors.size(), " images failed:", msg);
}

Tensor preprocess_image_files(const std::vector<std::string>& paths, int64_t n, bool train,
                              uint64_t seed, const TrainTransform& transform) {
  check_target_size("preprocess_image_files", n);
  const int64_t count = static_cast<int64_t>(paths.size());
  Tensor out = Tensor::empty({count, 3, n, n}, DType::f32);
  float* base = count > 0 ? out.data<float>() : nullptr;
  const int64_t per_image = 3 * n * n;
  std::vector<std::string> errors(paths.size());
  // Exceptions must not leave the OpenMP region: each image's failure is recorded and rethrown
  // below.
  parallel_for(count, [&](int64_t i) {
    const std::string& path = paths[static_cast<size_t>(i)];
    try {
      preprocess_batch_image_into(path, i, n, train, seed, transform, base + i * per_image);
    } catch (const std::exception& e) {
      errors[static_cast<size_t>(i)] = image_error_message(path, e.what());
    } catch (...) {
      errors[static_cast<size_t>(i)] = str_cat(path, ": unknown error");
    }
  });
  const std::string msg = batch_failure_message("preprocess_image_files", errors);
  TGPT_CHECK(msg.empty(), msg);
  return out;
}

}  // namespace tgpt

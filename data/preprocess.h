/*
 * preprocess.h — CLIP image preprocessing (../shared/spec/clip.md §5) and training augmentation.
 *
 * Evaluation, clip._transform(n) = torchvision Resize(n, BICUBIC) → CenterCrop(n) → ToTensor →
 * Normalize(CLIP mean, std), reproduced exactly on decoded RGB images:
 *   - resize: shorter side -> n, longer side -> int(n * long / short) (truncation, computed in
 *     double as Python does), PIL-exact bicubic (resize.h);
 *   - center crop offsets: top = int(round((H - n) / 2.0)) with round half to even;
 *   - normalise: x = (float(u8) / 255 - mean[c]) / std[c] in f32, CHW.
 * CLIP converts to RGB after resize/crop; we decode to RGB first (image.h), which only differs
 * for RGBA/LA (PIL resizes those premultiplied) and palette images (PIL resizes P with NEAREST).
 *
 * Training, torchvision RandomResizedCrop(n, scale=(0.08, 1), ratio=(3/4, 4/3), BICUBIC) then
 * RandomHorizontalFlip(0.5): torchvision's get_params algorithm (10 tries of a uniform area
 * fraction and log-uniform aspect ratio, then the center-crop fallback), crop, PIL-bicubic resize
 * of the crop to n x n, flip. Randomness comes from std::mt19937_64: reproducible for a given
 * seed, but NOT the same random numbers as torch's generator.
 * TrainTransform chooses the parts as Dassl's INPUT.TRANSFORMS does: random_resized_crop (scale
 * range INPUT.RRCROP_SCALE) or, without it, Resize((n, n)) bicubic; random_flip or not; the CLIP
 * normalisation always.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "data/image.h"
#include "engine/tensor.h"

namespace tgpt {

// CLIP's normalisation constants (as the f32 values torchvision uses).
inline const float kClipMean[3] = {static_cast<float>(0.48145466), static_cast<float>(0.4578275),
                                   static_cast<float>(0.40821073)};
inline const float kClipStd[3] = {static_cast<float>(0.26862954), static_cast<float>(0.26130258),
                                  static_cast<float>(0.27577711)};

// torchvision Resize(size) with an int size: the {height, width} the image is resized to.
void shorter_side_resize_size(int64_t h, int64_t w, int64_t size, int64_t* out_h, int64_t* out_w);

// torchvision CenterCrop offsets (round half to even). crop_h <= h and crop_w <= w required.
CropBox center_crop_box(int64_t h, int64_t w, int64_t crop_h, int64_t crop_w);

// Copies the box out of img (must lie inside the image).
Image crop_image(const Image& img, const CropBox& box);
// Mirrors left-right.
Image hflip_image(const Image& img);

// ToTensor + Normalize(CLIP mean/std): writes f32 [3, H, W] into dst.
void normalize_image_into(const Image& img, float* dst);
// Same, into a new tensor f32 [3, H, W].
Tensor normalize_image(const Image& img);

// Resize(n, BICUBIC) + CenterCrop(n) -> uint8 [n, n, 3] (the exact-comparison stage).
Image clip_resize_center_crop(const Image& img, int64_t n);
// Full evaluation preprocessing -> f32 [3, n, n].
Tensor clip_preprocess(const Image& img, int64_t n = 224);

// RandomResizedCrop.get_params with our generator. scale = (smin, smax), ratio = (rmin, rmax).
CropBox random_resized_crop_box(int64_t h, int64_t w, std::mt19937_64& rng, double scale_min = 0.08,
                                double scale_max = 1.0, double ratio_min = 3.0 / 4.0,
                                double ratio_max = 4.0 / 3.0);
// RandomResizedCrop(n, BICUBIC) + RandomHorizontalFlip(0.5) -> uint8 [n, n, 3].
Image random_resized_crop_flip(const Image& img, int64_t n, std::mt19937_64& rng);
// Full training preprocessing -> f32 [3, n, n].
Tensor clip_train_preprocess(const Image& img, int64_t n, std::mt19937_64& rng);

// The training augmentation, as Dassl builds it from INPUT.TRANSFORMS (the default is the
// official TGP-T/CoOp one: random_resized_crop with scale (0.08, 1), random_flip, normalize).
struct TrainTransform {
  bool random_resized_crop = true;  // else Resize((n, n)), bicubic
  double crop_scale_min = 0.08, crop_scale_max = 1.0;
  bool random_flip = true;
};
// From Dassl's transform names (random_resized_crop, random_flip, normalize; any other name is
// a tgpt::Error listing the supported ones) and INPUT.RRCROP_SCALE (two numbers,
// 0 < min <= max <= 1). The CLIP normalisation is applied whether or not "normalize" is named.
TrainTransform train_transform_from_names(const std::vector<std::string>& names,
                                          const std::vector<double>& crop_scale);
// One training view -> uint8 [n, n, 3].
Image random_train_view(const Image& img, int64_t n, const TrainTransform& t, std::mt19937_64& rng);

// Image i of preprocess_image_files(paths, n, train, seed, transform) (paths[i] = path), into
// dst f32 [3, n, n]: decode, then the evaluation transform, or with `train` the training view
// from image i's own generator seeded from (seed, i). Single-threaded; any failure throws.
void preprocess_batch_image_into(const std::string& path, int64_t i, int64_t n, bool train,
                                 uint64_t seed, const TrainTransform& transform, float* dst);

// An image's error that names its file: `error` when it already holds `path`, else
// "<path>: <error>".
std::string image_error_message(const std::string& path, const std::string& error);

// "<what>: K of N images failed:\n  <error>..." over the non-empty entries of `errors` (one per
// image of a batch, "" for those that worked), the first max_listed of them then "... and M
// more"; "" when none failed.
std::string batch_failure_message(const std::string& what, const std::vector<std::string>& errors,
                                  size_t max_listed = SIZE_MAX);

// Decodes and preprocesses N files in parallel (one image per thread) -> f32 [N, 3, n, n].
// Evaluation transform when `train` is false. With `train`, image i uses its own generator
// seeded from (seed, i), so the batch is reproducible whatever the thread count. Any failure is
// rethrown after the parallel loop as one tgpt::Error listing every failing path.
Tensor preprocess_image_files(const std::vector<std::string>& paths, int64_t n = 224,
                              bool train = false, uint64_t seed = 0,
                              const TrainTransform& transform = TrainTransform{});

}  // namespace tgpt

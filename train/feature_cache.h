/*
 * feature_cache.h — an on-disk cache of frozen image features, shared by runs: the val and test
 * images of a few-shot run go through the frozen image encoder once per (weights, images,
 * preprocessing), not once per run (a paper's table is 5 shot counts × 3 seeds on the same test
 * set).
 *
 * Key: SHA-256 of a text that names everything the features depend on —
 *   "tgpt image features v1", the SHA-256 of the weight file's bytes, the input resolution (the
 *   evaluation transform, data/preprocess.h), the compute dtype and device kind, whether the
 *   patch tokens are kept, and every image as "path<TAB>size<TAB>mtime (ns)" in order.
 * A changed weight file, image file (size or time), order, resolution or precision gives another
 * key, so an entry is never stale; entries are never deleted by tgpt (delete the folder to free
 * the space).
 * Entry: DIR/<key>.safetensors, written atomically: "cls" f32 [N,E] (CLIP's encode_image,
 * unnormalised) and, with tokens, "tokens" f32 [N,T,E] (the projected patch tokens of
 * encode_image_with_tokens), so runs of every method (TGP-T, CoOp, the linear probe) share them;
 * metadata "tgpt.format" = "image-features", "tgpt.count" = N. Reading checks the format, the count
 * and the shapes against what the caller expects; an entry that fails (a damaged or truncated file)
 * is reported through the warning callback and treated as missing, then overwritten by the new
 * features.
 */
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/device.h"
#include "base/dtype.h"
#include "engine/tensor.h"

namespace tgpt {

struct CachedImageFeatures {
  Tensor cls;     // f32 CPU [N,E]
  Tensor tokens;  // f32 CPU [N,T,E], or undefined when the entry keeps no tokens
};

class ImageFeatureCache {
 public:
  // dir: created when missing. weights: the CLIP weight file (hashed once, here).
  ImageFeatureCache(std::string dir, const std::string& weights_path);

  // The key of these images' features (the files are stat'ed; a missing one is a tgpt::Error).
  std::string key(const std::vector<std::string>& image_paths, int64_t resolution,
                  DType compute_dtype, Device device, bool tokens) const;

  // The entry's features when it holds N rows of the expected shapes (T = 0: no tokens), else
  // nullopt; a present but unreadable entry is reported through `warn` first.
  std::optional<CachedImageFeatures> load(
      const std::string& key, int64_t n, int64_t embed_dim, int64_t tokens,
      const std::function<void(const std::string&)>& warn) const;
  // Writes the entry atomically.
  void store(const std::string& key, const CachedImageFeatures& features) const;
  // The entry's features when load finds them, else encode()'s, then stored under key. `log`
  // gets one line naming the entry: "Image features of the <what> set from the cache (...)" or
  // "... stored in the cache (...)" (and load's warning first, for a damaged entry).
  CachedImageFeatures load_or_encode(const std::string& key, int64_t n, int64_t embed_dim,
                                     int64_t tokens,
                                     const std::function<CachedImageFeatures()>& encode,
                                     const std::function<void(const std::string&)>& log,
                                     const std::string& what) const;

  std::string entry_path(const std::string& key) const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string weights_sha256_;
};

}  // namespace tgpt

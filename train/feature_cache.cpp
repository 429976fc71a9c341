// feature_cache.cpp — the on-disk image feature cache (feature_cache.h).
#include "train/feature_cache.h"

#include <filesystem>
#include <map>
#include <sstream>
#include <system_error>

#include "base/error.h"
#include "convert/sha256.h"
#include "engine/safetensors.h"

namespace fs = std::filesystem;

namespace tgpt {

ImageFeatureCache::ImageFeatureCache(std::string dir, const std::string& weights_path)
    : dir_(std::move(dir)) {
  TGPT_CHECK(!dir_.empty(), "feature cache: empty folder name");
  std::error_code ec;
  fs::create_directories(dir_, ec);
  TGPT_CHECK(!ec && fs::is_directory(dir_), "feature cache: cannot create folder '", dir_,
             "': ", ec.message());
  weights_sha256_ = sha256_file_hex(weights_path);
}

std::string ImageFeatureCache::key(const std::vector<std::string>& image_paths, int64_t resolution,
                                   DType compute_dtype, Device device, bool tokens) const {
  std::ostringstream text;
  text << "tgpt image features v1\nweights " << weights_sha256_ << "\nresolution " << resolution
       << "\ndtype " << dtype_name(compute_dtype) << "\ndevice " << device_name(device)
       << "\ntokens " << (tokens ? 1 : 0) << "\nimages " << image_paths.size() << '\n';
  for (const std::string& p : image_paths) {
    std::error_code ec;
    const auto size = fs::file_size(p, ec);
    TGPT_CHECK(!ec, "feature cache: cannot stat image '", p, "': ", ec.message());
    const auto mtime = fs::last_write_time(p, ec);
    TGPT_CHECK(!ec, "feature cache: cannot stat image '", p, "': ", ec.message());
    text << p << '\t' << size << '\t' << mtime.time_since_epoch().count() << '\n';
  }
  const std::string s = text.str();
  return sha256_hex(s.data(), s.size());
}

CachedImageFeatures ImageFeatureCache::load_or_encode(
    const std::string& key, int64_t n, int64_t embed_dim, int64_t tokens,
    const std::function<CachedImageFeatures()>& encode,
    const std::function<void(const std::string&)>& log, const std::string& what) const {
  if (std::optional<CachedImageFeatures> hit = load(key, n, embed_dim, tokens, log)) {
    log("Image features of the " + what + " set from the cache (" + entry_path(key) + ")");
    return *std::move(hit);
  }
  CachedImageFeatures f = encode();
  store(key, f);
  log("Image features of the " + what + " set stored in the cache (" + entry_path(key) + ")");
  return f;
}

std::string ImageFeatureCache::entry_path(const std::string& key) const {
  return (fs::path(dir_) / (key + ".safetensors")).string();
}

std::optional<CachedImageFeatures> ImageFeatureCache::load(
    const std::string& key, int64_t n, int64_t embed_dim, int64_t tokens,
    const std::function<void(const std::string&)>& warn) const {
  const std::string path = entry_path(key);
  if (!fs::exists(path)) return std::nullopt;
  try {
    const SafetensorsFile f = SafetensorsFile::open(path);
    const auto& meta = f.metadata();
    const auto format = meta.find("tgpt.format");
    const auto count = meta.find("tgpt.count");
    TGPT_CHECK(format != meta.end() && format->second == "image-features",
               "not an image feature file");
    TGPT_CHECK(count != meta.end() && count->second == std::to_string(n), "holds ",
               count == meta.end() ? std::string("?") : count->second, " images, expected ", n);
    CachedImageFeatures out;
    const Tensor cls = f.get("cls");
    TGPT_CHECK(cls.dtype() == DType::f32 && cls.shape() == Shape({n, embed_dim}),
               "\"cls\" has the wrong dtype or shape");
    out.cls = cls.clone();
    if (tokens > 0) {
      const Tensor t = f.get("tokens");
      TGPT_CHECK(t.dtype() == DType::f32 && t.shape() == Shape({n, tokens, embed_dim}),
                 "\"tokens\" has the wrong dtype or shape");
      out.tokens = t.clone();
    }
    return out;
  } catch (const std::exception& e) {
    if (warn) warn("feature cache: ignoring the damaged entry " + path + ": " + e.what());
    return std::nullopt;
  }
}

void ImageFeatureCache::store(const std::string& key, const CachedImageFeatures& features) const {
  TGPT_CHECK(features.cls.defined() && features.cls.dim() == 2, "feature cache: no features");
  std::vector<std::pair<std::string, Tensor>> tensors = {{"cls", features.cls.contiguous()}};
  if (features.tokens.defined()) tensors.emplace_back("tokens", features.tokens.contiguous());
  save_safetensors(
      entry_path(key), tensors,
      {{"tgpt.format", "image-features"}, {"tgpt.count", std::to_string(features.cls.size(0))}});
}

}  // namespace tgpt

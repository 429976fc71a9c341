/*
 * safetensors.h — reading and writing safetensors files (format: ../shared/spec/clip.md §3).
 *
 * The reader memory-maps the file and validates everything before any tensor is touched: header
 * length bounds, well-formed UTF-8 JSON, known dtypes, shapes, `end - begin == numel * itemsize`,
 * offsets sorted, contiguous from 0, in bounds and non-overlapping, the last one ending at EOF,
 * no duplicate names, metadata strings only. Any problem throws tgpt::Error naming the file and
 * the problem. The writer writes a temporary file in the same directory, fsyncs it and renames
 * it over the destination, so a crash never leaves a half-written file under the final name.
 */
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace tgpt {

struct SafetensorsEntry {
  std::string name;
  DType dtype;
  Shape shape;
  size_t begin = 0;  // byte offsets into the data buffer (end exclusive)
  size_t end = 0;
};

class SafetensorsFile {
 public:
  // Opens, maps and validates `path`; throws tgpt::Error on any problem.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }  // file order
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const;
  const SafetensorsEntry& entry(const std::string& name) const;  // throws if absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The named tensor as a contiguous CPU tensor. Zero-copy (sharing the mapping) when the data
  // are suitably aligned, otherwise a copy. Throws if absent. The mapping is private and
  // copy-on-write, so writing to a zero-copy tensor is allowed and never changes the file; the
  // mapping stays alive while this object or any tensor from it does.
  Tensor get(const std::string& name) const;

 private:
  std::string path_;
  std::shared_ptr<const void> mapping_;  // keeps the mmap alive (shared with zero-copy tensors)
  const char* data_ = nullptr;           // start of the data buffer
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Writes `tensors` (any device, any layout; stored contiguous, little-endian) with string
// metadata, atomically. Names must be unique, non-empty, valid UTF-8 and not "__metadata__";
// dtypes are written as F32, F64, F16, BF16, I32, I64, U8. Data are written in the given order
// with no padding between tensors: order them by decreasing element size to keep every tensor
// aligned (and so zero-copy when read back).
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Maps DType <-> safetensors dtype string ("F32", ...). parse throws on an unknown string.
const char* safetensors_dtype_name(DType t);
DType parse_safetensors_dtype(const std::string& s);

}  // namespace tgpt

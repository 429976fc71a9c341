/*
 * zip_reader.h — a read-only ZIP archive reader over a memory-mapped file, enough for PyTorch's
 * checkpoint archives (clip.md §2.1): finds the end-of-central-directory record (ZIP64 records
 * included), reads the central directory, re-reads each local header to locate the file data, and
 * gives zero-copy access to stored (method 0) entries; deflated (method 8) entries are inflated
 * with zlib on request. Every offset and length is bounds-checked against the file, so truncated
 * or corrupt archives give a tgpt::Error naming the file and the problem, never an out-of-bounds
 * read.
 */
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tgpt {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 stored, 8 deflated
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t uncompressed_size = 0;
  uint64_t local_header_offset = 0;
  uint64_t data_offset = 0;  // first byte of the (possibly compressed) data in the file
};

class ZipArchive {
 public:
  // Maps and indexes `path`; throws tgpt::Error on a malformed archive.
  static ZipArchive open(const std::string& path);
  // True when the file starts with the local-header magic "PK\3\4" (no other checks).
  static bool has_zip_magic(const void* data, size_t n);

  const std::string& path() const { return path_; }
  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(const std::string& name) const;  // null when absent
  // The bytes of a stored entry, zero-copy (valid while this archive or mapping() lives).
  // Throws for compressed entries. Verifies the CRC-32 when verify_crc is set.
  std::string_view stored_data(const ZipEntry& e, bool verify_crc = true) const;
  // The uncompressed bytes of a stored or deflated entry (copied), CRC verified.
  std::string read(const ZipEntry& e) const;
  // Keeps the mapping alive (for tensors that point into it).
  const std::shared_ptr<const void>& mapping() const { return mapping_; }
  const uint8_t* file_data() const { return base_; }
  size_t file_size() const { return size_; }

 private:
  std::string path_;
  std::shared_ptr<const void> mapping_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace tgpt

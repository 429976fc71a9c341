/*
 * sha256.h — SHA-256 (FIPS 180-4), incremental, for recording the hash of converted source files.
 */
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace tgpt {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  std::array<uint8_t, 32> finish();  // the object must not be updated afterwards
  std::string finish_hex();          // lowercase hex

 private:
  void compress(const uint8_t* block);  // one 64-byte block
  uint32_t h_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
  bool finished_ = false;
};

std::string sha256_hex(const void* data, size_t n);
// Hash of a whole file (streamed); throws tgpt::Error when it cannot be read.
std::string sha256_file_hex(const std::string& path);

}  // namespace tgpt

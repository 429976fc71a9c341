/*
 * test_files.h — file helpers for the tests: JSON fixtures from the golden directory, whole-file
 * read and write, little-endian writers, a minimal ZIP writer (stored entries, real CRC-32) for
 * hand-made archives, and seeded random mutations of a byte string for the malformed-input tests.
 */
#pragma once

#include <zlib.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tests/test_util.h"

namespace tgpt::test {

// A JSON fixture from the golden directory ($TGPT_GOLDEN_DIR); null when it is not there.
inline nlohmann::json load_golden_json(const std::string& name) {
  const std::string dir = golden_dir();
  if (dir.empty()) return nullptr;
  std::ifstream f(dir + "/" + name);
  if (!f) return nullptr;
  return nlohmann::json::parse(f);
}

inline std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

inline void write_file(const std::string& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << bytes;
}

inline void put16(std::string& s, uint16_t v) {
  s += char(v & 0xff);
  s += char(v >> 8);
}
inline void put32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s += char((v >> (8 * i)) & 0xff);
}

// A minimal ZIP writer (stored entries only) for hand-made archives.
inline std::string make_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out, cd;
  for (const auto& [name, data] : entries) {
    uint32_t crc = static_cast<uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
    uint32_t offset = static_cast<uint32_t>(out.size());
    put32(out, 0x04034b50);
    put16(out, 20), put16(out, 0), put16(out, 0), put16(out, 0), put16(out, 0);
    put32(out, crc), put32(out, uint32_t(data.size())), put32(out, uint32_t(data.size()));
    put16(out, uint16_t(name.size())), put16(out, 0);
    out += name + data;
    put32(cd, 0x02014b50);
    put16(cd, 20), put16(cd, 20), put16(cd, 0), put16(cd, 0), put16(cd, 0), put16(cd, 0);
    put32(cd, crc), put32(cd, uint32_t(data.size())), put32(cd, uint32_t(data.size()));
    put16(cd, uint16_t(name.size())), put16(cd, 0), put16(cd, 0), put16(cd, 0), put16(cd, 0);
    put32(cd, 0), put32(cd, offset);
    cd += name;
  }
  uint32_t cd_offset = static_cast<uint32_t>(out.size());
  out += cd;
  put32(out, 0x06054b50);
  put16(out, 0), put16(out, 0), put16(out, uint16_t(entries.size())),
      put16(out, uint16_t(entries.size()));
  put32(out, uint32_t(cd.size())), put32(out, cd_offset), put16(out, 0);
  return out;
}

// One random damage to `s`, positions drawn from [lo, hi) (clamped to the string): overwrite 1-4
// bytes with random or boundary values, write a boundary 32-bit integer (0, 1, 0x7fffffff,
// 0x80000000, 0xffffffff), truncate, delete or duplicate a slice, or insert random bytes.
inline std::string mutate_bytes(std::string s, std::mt19937_64& rng, size_t lo = 0,
                                size_t hi = std::string::npos) {
  if (s.empty()) return std::string(1, char(rng() & 0xff));
  hi = std::min(hi, s.size());
  lo = std::min(lo, hi - 1);
  auto pos = [&] { return lo + static_cast<size_t>(rng() % (hi - lo)); };
  static const uint32_t kBoundary[] = {0u, 1u, 0x7fffffffu, 0x80000000u, 0xffffffffu, 0xffffu};
  switch (rng() % 6) {
    case 0: {
      const int n = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < n; ++i) s[pos()] = char(rng() & 0xff);
      break;
    }
    case 1: {
      const size_t p = pos();
      const uint32_t v = kBoundary[rng() % std::size(kBoundary)];
      for (int i = 0; i < 4 && p + i < s.size(); ++i) s[p + i] = char((v >> (8 * i)) & 0xff);
      break;
    }
    case 2: s.resize(pos()); break;
    case 3: {
      const size_t p = pos();
      s.erase(p, 1 + static_cast<size_t>(rng() % 16));
      break;
    }
    case 4: {
      const size_t p = pos(), n = std::min<size_t>(1 + rng() % 32, s.size() - p);
      s.insert(p, s.substr(p, n));
      break;
    }
    default: {
      const size_t p = pos();
      std::string ins(1 + static_cast<size_t>(rng() % 8), '\0');
      for (char& c : ins) c = char(rng() & 0xff);
      s.insert(p, ins);
      break;
    }
  }
  return s;
}

}  // namespace tgpt::test

/*
 * safetensors.cpp — safetensors reader (mmap + full validation) and atomic writer.
 *
 * Reader: the file is mapped MAP_PRIVATE with PROT_READ|PROT_WRITE, i.e. copy-on-write. Zero-copy
 * tensors returned by get() may therefore be written: the first write to a page gives this process
 * a private copy and the file on disk never changes. The mapping lives as long as the
 * SafetensorsFile or any tensor from it. As with any mmap, another process truncating the file
 * while it is mapped makes later reads fault (SIGBUS); files are assumed not to change under us.
 * Writer: temp file in the destination directory, fsync, rename over the destination, fsync the
 * directory. Little-endian host only (as the format).
 */
#include "engine/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/autograd.h"

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes little-endian");

namespace tgpt {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // as the reference reader

template <typename... Args>
[[noreturn]] void fail(const std::string& path, const Args&... parts) {
  TGPT_FAIL(path, ": ", parts...);
}

std::string errno_text() {
  return std::strerror(errno);
}

// Closes a file descriptor on scope exit.
struct FileDescriptor {
  int fd = -1;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

// Offset of the first byte that is not part of a well-formed UTF-8 sequence, or n when valid.
// Rejects overlong forms, surrogates and code points above U+10FFFF.
size_t invalid_utf8_at(const unsigned char* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return i;
    }
    if (n - i < len) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return n;
}

bool is_valid_utf8(const std::string& s) {
  return invalid_utf8_at(reinterpret_cast<const unsigned char*>(s.data()), s.size()) == s.size();
}

// Dtypes of the format that tgpt has no tensor type for.
bool is_unsupported_dtype(const std::string& s) {
  static const std::set<std::string> names = {
      "BOOL",    "I8",          "I16", "U16",     "U32",     "U64", "F8_E5M2",    "F8_E4M3",
      "F8_E8M0", "F8_E4M3FNUZ", "F4",  "F6_E2M3", "F6_E3M2", "C64", "F8_E5M2FNUZ"};
  return names.count(s) > 0;
}

bool dtype_from_string(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> table[] = {
      {"F32", DType::f32}, {"F64", DType::f64}, {"F16", DType::f16}, {"BF16", DType::bf16},
      {"I32", DType::i32}, {"I64", DType::i64}, {"U8", DType::u8}};
  for (const auto& [name, t] : table)
    if (s == name) return *out = t, true;
  return false;
}

// A JSON integer >= 0 (nlohmann parses "-0" as a signed zero, so check the value, not the type).
bool get_non_negative(const nlohmann::json& v, uint64_t* out) {
  if (v.is_number_unsigned()) return *out = v.get<uint64_t>(), true;
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return *out = v.get<uint64_t>(), true;
  return false;
}

// Parses the header, rejecting duplicate keys at any depth (nlohmann would keep the last one).
nlohmann::json parse_header(const std::string& path, const char* begin, const char* end) {
  std::vector<std::set<std::string>> keys_per_object;
  auto on_event = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) keys_per_object.emplace_back();
    if (event == E::object_end) keys_per_object.pop_back();
    if (event == E::key && !keys_per_object.back().insert(parsed.get<std::string>()).second)
      fail(path, "duplicate key '", parsed.get<std::string>(), "' in header");
    return true;
  };
  try {
    return nlohmann::json::parse(begin, end, on_event);
  } catch (const nlohmann::json::exception& e) {
    fail(path, "header is not valid JSON: ", e.what());
  }
}

std::string offsets_str(const SafetensorsEntry& e) {
  return str_cat("data_offsets [", e.begin, ", ", e.end, "]");
}

// Checks one tensor entry of the header and returns it.
SafetensorsEntry parse_entry(const std::string& path, const std::string& name,
                             const nlohmann::json& v) {
  const std::string where = str_cat("tensor '", name, "'");
  if (!v.is_object()) fail(path, where, " is not a JSON object");
  for (const auto& [key, unused] : v.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      fail(path, where, " has unexpected field '", key, "'");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) fail(path, where, " lacks the field '", key, "'");

  SafetensorsEntry e;
  e.name = name;
  const auto& dt = v["dtype"];
  if (!dt.is_string()) fail(path, where, " dtype is not a string");
  const std::string dts = dt.get<std::string>();
  if (!dtype_from_string(dts, &e.dtype)) {
    if (is_unsupported_dtype(dts)) fail(path, where, " has unsupported dtype ", dts);
    fail(path, where, " has unknown dtype '", dts, "'");
  }

  const auto& shape = v["shape"];
  if (!shape.is_array()) fail(path, where, " shape is not an array");
  if (shape.size() > static_cast<size_t>(kMaxDims))
    fail(path, where, " has ", shape.size(), " dims; at most ", kMaxDims, " are supported");
  uint64_t numel = 1;
  bool any_zero = false;
  for (const auto& d : shape) {
    uint64_t n;
    if (!get_non_negative(d, &n) || n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(path, where, " shape ", shape.dump(),
           " has an extent that is not a non-negative integer");
    e.shape.push_back(static_cast<int64_t>(n));
    any_zero |= n == 0;
    if (!any_zero && __builtin_mul_overflow(numel, n, &numel))
      fail(path, where, " shape ", shape.dump(), " has too many elements");
  }
  if (any_zero) numel = 0;
  uint64_t nbytes;
  if (numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
      __builtin_mul_overflow(numel, dtype_size(e.dtype), &nbytes))
    fail(path, where, " shape ", shape.dump(), " has too many elements");

  const auto& offs = v["data_offsets"];
  uint64_t begin, end;
  if (!offs.is_array() || offs.size() != 2 || !get_non_negative(offs[0], &begin) ||
      !get_non_negative(offs[1], &end))
    fail(path, where, " data_offsets ", offs.dump(),
         " is not [begin, end] (non-negative integers)");
  if (begin > end) fail(path, where, " data_offsets ", offs.dump(), " has begin > end");
  e.begin = begin;
  e.end = end;
  if (end - begin != nbytes)
    fail(path, where, " ", offsets_str(e), " span ", end - begin, " bytes but shape ", shape.dump(),
         " of ", dts, " needs ", nbytes);
  return e;
}

}  // namespace

const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::u8: return "U8";
  }
  TGPT_FAIL("safetensors: invalid dtype ", static_cast<int>(t));
}

DType parse_safetensors_dtype(const std::string& s) {
  DType t;
  if (dtype_from_string(s, &t)) return t;
  if (is_unsupported_dtype(s)) TGPT_FAIL("safetensors: unsupported dtype ", s);
  TGPT_FAIL("safetensors: unknown dtype '", s, "'");
}

// ---------------------------------------------------------------------------------------------
// reader

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  FileDescriptor fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) fail(path, "cannot open: ", errno_text());
  struct stat st;
  if (::fstat(fd.fd, &st) != 0) fail(path, "cannot stat: ", errno_text());
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8)
    fail(path, "file is ", file_size, " bytes, too short for the 8-byte header length");

  // Copy-on-write: zero-copy tensors may be written without touching the file.
  void* base =
      ::mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd.fd, 0);
  if (base == MAP_FAILED) fail(path, "cannot mmap: ", errno_text());
  std::shared_ptr<const void> mapping(
      base, [file_size](const void* p) { ::munmap(const_cast<void*>(p), file_size); });
  const char* bytes = static_cast<const char*>(base);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i)
    header_len = (header_len << 8) | static_cast<unsigned char>(bytes[i]);
  if (header_len > kMaxHeaderBytes)
    fail(path, "header length ", header_len, " exceeds the limit of ", kMaxHeaderBytes, " bytes");
  if (8 + header_len > file_size)
    fail(path, "header length ", header_len, " runs past the end of the file (", file_size,
         " bytes)");
  const char* header = bytes + 8;
  size_t bad = invalid_utf8_at(reinterpret_cast<const unsigned char*>(header), header_len);
  if (bad != header_len)
    fail(path, "header is not valid UTF-8 (byte ",
         static_cast<unsigned>(static_cast<unsigned char>(header[bad])), " at header offset ", bad,
         ")");
  nlohmann::json j = parse_header(path, header, header + header_len);
  if (!j.is_object()) fail(path, "header is not a JSON object");
  if (header[0] != '{') fail(path, "header must start with '{'");

  SafetensorsFile f;
  f.path_ = path;
  for (const auto& [key, value] : j.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) fail(path, "__metadata__ is not a JSON object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) fail(path, "__metadata__ value of '", mk, "' is not a string");
        f.metadata_[mk] = mv.get<std::string>();
      }
    } else {
      f.entries_.push_back(parse_entry(path, key, value));
    }
  }

  // Sorted by offset, the entries must tile the data buffer exactly.
  std::stable_sort(f.entries_.begin(), f.entries_.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const uint64_t data_len = file_size - 8 - header_len;
  uint64_t expected = 0;
  for (size_t i = 0; i < f.entries_.size(); ++i) {
    const SafetensorsEntry& e = f.entries_[i];
    const std::string where = str_cat("tensor '", e.name, "' ", offsets_str(e));
    if (i == 0 && e.begin != 0) fail(path, where, ": the first tensor must begin at 0");
    if (e.begin < expected)
      fail(path, where, " overlap the previous tensor (ends at ", expected, ")");
    if (e.begin > expected)
      fail(path, where, " leave a gap after the previous tensor (ends at ", expected, ")");
    expected = e.end;
  }
  if (expected != data_len)
    fail(path, "data buffer is ", data_len, " bytes but the tensors cover ", expected);

  f.mapping_ = std::move(mapping);
  f.data_ = bytes + 8 + header_len;
  return f;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.push_back(e.name);
  return out;
}

bool SafetensorsFile::contains(const std::string& name) const {
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const auto& e) { return e.name == name; });
}

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.name == name) return e;
  fail(path_, "no tensor named '", name, "'");
}

Tensor SafetensorsFile::get(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  const size_t nbytes = e.end - e.begin;
  // The mapping is writable copy-on-write (see open), so handing out a non-const pointer is safe.
  char* src = const_cast<char*>(data_ + e.begin);
  if (reinterpret_cast<uintptr_t>(src) % dtype_size(e.dtype) == 0) {
    auto storage = std::make_shared<Storage>(src, nbytes, Device::CPU, mapping_);
    return Tensor::from_storage(std::move(storage), e.shape, e.dtype);
  }
  Tensor t = Tensor::empty(e.shape, e.dtype);  // unaligned: copy
  if (nbytes > 0) std::memcpy(t.data_ptr(), src, nbytes);
  return t;
}

// ---------------------------------------------------------------------------------------------
// writer

namespace {

// The temporary file of an atomic save; removed on destruction unless committed.
struct TempFile {
  std::string path;
  int fd = -1;
  bool committed = false;
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    if (!path.empty() && !committed) ::unlink(path.c_str());
  }
};

void write_all(const std::string& path, const TempFile& tmp, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(tmp.fd, c, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail(path, "cannot write temporary file '", tmp.path, "': ", errno_text());
    c += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  NoGradGuard no_grad;
  std::set<std::string> seen;
  std::vector<Tensor> host;  // contiguous CPU copies (or the tensors themselves), in order
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    for (const auto& [k, v] : metadata)
      if (!is_valid_utf8(k) || !is_valid_utf8(v))
        fail(path, "metadata entry '", k, "' is not valid UTF-8");
    header["__metadata__"] = metadata;
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name.empty()) fail(path, "empty tensor name");
    if (name == "__metadata__") fail(path, "'__metadata__' is reserved and cannot name a tensor");
    if (!is_valid_utf8(name)) fail(path, "tensor name '", name, "' is not valid UTF-8");
    if (!seen.insert(name).second) fail(path, "duplicate tensor name '", name, "'");
    if (!t.defined()) fail(path, "tensor '", name, "' is undefined");
    Tensor h = t.detach().to(Device::CPU).contiguous();
    header[name] = {{"dtype", safetensors_dtype_name(h.dtype())},
                    {"shape", h.shape().vec()},
                    {"data_offsets", {offset, offset + h.nbytes()}}};
    offset += h.nbytes();
    host.push_back(std::move(h));
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(json.size() >> (8 * i));

  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  TempFile tmp;
  std::string templ = path + ".tmp.XXXXXX";
  tmp.fd = ::mkstemp(templ.data());
  if (tmp.fd < 0)
    fail(path, "cannot create a temporary file in '", dir.string(), "': ", errno_text());
  tmp.path = templ;
  if (::fchmod(tmp.fd, 0644) != 0) fail(path, "cannot chmod '", tmp.path, "': ", errno_text());
  write_all(path, tmp, len_bytes, 8);
  write_all(path, tmp, json.data(), json.size());
  for (const Tensor& h : host)
    if (h.nbytes() > 0) write_all(path, tmp, h.data_ptr(), h.nbytes());
  if (::fsync(tmp.fd) != 0) fail(path, "cannot fsync '", tmp.path, "': ", errno_text());
  int fd = tmp.fd;
  tmp.fd = -1;
  if (::close(fd) != 0) fail(path, "cannot close '", tmp.path, "': ", errno_text());
  if (::rename(tmp.path.c_str(), path.c_str()) != 0)
    fail(path, "cannot rename '", tmp.path, "' over it: ", errno_text());
  tmp.committed = true;

  // Make the rename durable. Filesystems that cannot fsync a directory report EINVAL: ignore that.
  FileDescriptor dfd{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dfd.fd < 0)
    fail(path, "cannot open directory '", dir.string(), "' to sync it: ", errno_text());
  if (::fsync(dfd.fd) != 0 && errno != EINVAL)
    fail(path, "cannot fsync directory '", dir.string(), "': ", errno_text());
}

}  // namespace tgpt

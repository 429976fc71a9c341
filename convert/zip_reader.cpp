/*
 * zip_reader.cpp — ZIP central-directory reader (APPNOTE 6.3: EOCD 0x06054b50, ZIP64 locator
 * 0x07064b50 and record 0x06064b50, central header 0x02014b50, local header 0x04034b50, ZIP64
 * extra field 0x0001). Single-disk archives only. All reads go through a bounds-checked cursor.
 */
#include "convert/zip_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>

#include "base/error.h"

namespace tgpt {

namespace {

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEocdSig = 0x06054b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint32_t kZip64EocdSig = 0x06064b50;
constexpr size_t kEocdSize = 22;
constexpr size_t kMaxEntries = 10'000'000;

template <typename... Args>
[[noreturn]] void fail(const std::string& path, const Args&... parts) {
  TGPT_FAIL(path, ": ", parts...);
}

// Little-endian reads at an offset, checked against the file size.
struct Cursor {
  const std::string& path;
  const uint8_t* base;
  size_t size;

  void need(uint64_t off, uint64_t n, const char* what) const {
    if (off > size || n > size - off)
      fail(path, "truncated or corrupt ZIP archive: ", what, " at offset ", off, " (", n,
           " bytes) runs past the end of the file (", size, " bytes)");
  }
  uint16_t u16(uint64_t off, const char* what) const {
    need(off, 2, what);
    return uint16_t(base[off] | (base[off + 1] << 8));
  }
  uint32_t u32(uint64_t off, const char* what) const {
    need(off, 4, what);
    return uint32_t(base[off]) | (uint32_t(base[off + 1]) << 8) | (uint32_t(base[off + 2]) << 16) |
           (uint32_t(base[off + 3]) << 24);
  }
  uint64_t u64(uint64_t off, const char* what) const {
    return uint64_t(u32(off, what)) | (uint64_t(u32(off + 4, what)) << 32);
  }
};

// Finds the ZIP64 extended-information values for the fields that are saturated in the central
// header, in the order the specification fixes: uncompressed, compressed, local header offset.
void apply_zip64_extra(const Cursor& c, uint64_t extra, uint16_t extra_len, const std::string& name,
                       ZipEntry& e, bool need_usize, bool need_csize, bool need_offset) {
  uint64_t p = extra, end = extra + extra_len;
  while (p + 4 <= end) {
    uint16_t id = c.u16(p, "extra field"), len = c.u16(p + 2, "extra field");
    if (p + 4 + len > end)
      fail(c.path, "corrupt extra field in the central header of '", name, "'");
    if (id == 0x0001) {
      uint64_t q = p + 4, qend = p + 4 + len;
      auto take = [&](uint64_t* field) {
        if (q + 8 > qend) fail(c.path, "corrupt ZIP64 extra field of '", name, "'");
        *field = c.u64(q, "ZIP64 extra field");
        q += 8;
      };
      if (need_usize) take(&e.uncompressed_size);
      if (need_csize) take(&e.compressed_size);
      if (need_offset) take(&e.local_header_offset);
      return;
    }
    p += 4 + len;
  }
  fail(c.path, "entry '", name, "' has ZIP64 sizes but no ZIP64 extra field");
}

}  // namespace

bool ZipArchive::has_zip_magic(const void* data, size_t n) {
  static const uint8_t magic[4] = {'P', 'K', 3, 4};
  return n >= 4 && std::memcmp(data, magic, 4) == 0;
}

ZipArchive ZipArchive::open(const std::string& path) {
  ZipArchive z;
  z.path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot open: ", std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail(path, "cannot stat: ", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  z.size_ = static_cast<size_t>(st.st_size);
  if (z.size_ < kEocdSize) {
    ::close(fd);
    fail(path, "not a ZIP archive: ", z.size_, " bytes is too small");
  }
  void* p = ::mmap(nullptr, z.size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (p == MAP_FAILED) fail(path, "cannot map: ", std::strerror(map_err));
  size_t len = z.size_;
  z.mapping_ =
      std::shared_ptr<const void>(p, [len](const void* q) { ::munmap(const_cast<void*>(q), len); });
  z.base_ = static_cast<const uint8_t*>(p);
  Cursor c{path, z.base_, z.size_};

  // End of central directory: the last signature within the final 22 + 65535 bytes whose
  // comment length reaches exactly to the end of the file.
  uint64_t eocd = UINT64_MAX;
  uint64_t lowest = z.size_ > kEocdSize + 0xFFFF ? z.size_ - kEocdSize - 0xFFFF : 0;
  for (uint64_t off = z.size_ - kEocdSize + 1; off-- > lowest;) {
    if (c.u32(off, "EOCD") == kEocdSig && off + kEocdSize + c.u16(off + 20, "EOCD") == z.size_) {
      eocd = off;
      break;
    }
  }
  if (eocd == UINT64_MAX)
    fail(path, "not a ZIP archive or truncated: no end-of-central-directory record");
  uint16_t disk = c.u16(eocd + 4, "EOCD"), cd_disk = c.u16(eocd + 6, "EOCD");
  uint64_t count = c.u16(eocd + 10, "EOCD");
  uint64_t cd_size = c.u32(eocd + 12, "EOCD");
  uint64_t cd_offset = c.u32(eocd + 16, "EOCD");
  if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    // ZIP64: the locator sits right before the EOCD and points at the ZIP64 EOCD record.
    if (eocd < 20 || c.u32(eocd - 20, "ZIP64 locator") != kZip64LocatorSig)
      fail(path, "ZIP64 archive without a ZIP64 end-of-central-directory locator");
    uint64_t rec = c.u64(eocd - 20 + 8, "ZIP64 locator");
    if (c.u32(rec, "ZIP64 EOCD record") != kZip64EocdSig)
      fail(path, "corrupt ZIP64 end-of-central-directory record at offset ", rec);
    disk = uint16_t(c.u32(rec + 16, "ZIP64 EOCD record"));
    cd_disk = uint16_t(c.u32(rec + 20, "ZIP64 EOCD record"));
    count = c.u64(rec + 32, "ZIP64 EOCD record");
    cd_size = c.u64(rec + 40, "ZIP64 EOCD record");
    cd_offset = c.u64(rec + 48, "ZIP64 EOCD record");
  }
  if (disk != 0 || cd_disk != 0) fail(path, "multi-disk ZIP archives are not supported");
  c.need(cd_offset, cd_size, "central directory");
  if (count > kMaxEntries || count > cd_size / 46)
    fail(path, "corrupt central directory: ", count, " entries cannot fit in ", cd_size, " bytes");

  z.entries_.reserve(count);
  uint64_t p_cd = cd_offset, cd_end = cd_offset + cd_size;
  for (uint64_t i = 0; i < count; ++i) {
    if (p_cd + 46 > cd_end || c.u32(p_cd, "central header") != kCentralHeaderSig)
      fail(path, "corrupt central directory: entry ", i, " at offset ", p_cd,
           " is not a central file header");
    ZipEntry e;
    uint16_t flags = c.u16(p_cd + 8, "central header");
    e.method = c.u16(p_cd + 10, "central header");
    e.crc32 = c.u32(p_cd + 16, "central header");
    e.compressed_size = c.u32(p_cd + 20, "central header");
    e.uncompressed_size = c.u32(p_cd + 24, "central header");
    uint16_t name_len = c.u16(p_cd + 28, "central header");
    uint16_t extra_len = c.u16(p_cd + 30, "central header");
    uint16_t comment_len = c.u16(p_cd + 32, "central header");
    e.local_header_offset = c.u32(p_cd + 42, "central header");
    uint64_t rec_len = 46ull + name_len + extra_len + comment_len;
    if (p_cd + rec_len > cd_end) fail(path, "corrupt central directory: entry ", i, " overruns it");
    e.name.assign(reinterpret_cast<const char*>(z.base_ + p_cd + 46), name_len);
    if (flags & 1) fail(path, "entry '", e.name, "' is encrypted");
    bool need_u = e.uncompressed_size == 0xFFFFFFFF, need_c = e.compressed_size == 0xFFFFFFFF,
         need_o = e.local_header_offset == 0xFFFFFFFF;
    if (need_u || need_c || need_o)
      apply_zip64_extra(c, p_cd + 46 + name_len, extra_len, e.name, e, need_u, need_c, need_o);
    p_cd += rec_len;

    // The local header's name/extra lengths decide where the data start (they differ from the
    // central header's: PyTorch pads the local extra field to align the data to 64 bytes).
    uint64_t lh = e.local_header_offset;
    if (lh >= cd_offset || c.u32(lh, "local header") != kLocalHeaderSig)
      fail(path, "corrupt archive: entry '", e.name, "' has no local header at offset ", lh);
    uint64_t lname = c.u16(lh + 26, "local header"), lextra = c.u16(lh + 28, "local header");
    e.data_offset = lh + 30 + lname + lextra;
    if (e.data_offset > cd_offset || e.compressed_size > cd_offset - e.data_offset)
      fail(path, "truncated or corrupt archive: data of '", e.name, "' (", e.compressed_size,
           " bytes at offset ", e.data_offset,
           ") overlap the central directory or run past the end");
    if (e.method == 0 && e.compressed_size != e.uncompressed_size)
      fail(path, "corrupt archive: stored entry '", e.name, "' has different sizes");
    if (!z.index_.emplace(e.name, z.entries_.size()).second)
      fail(path, "duplicate entry '", e.name, "'");
    z.entries_.push_back(std::move(e));
  }
  return z;
}

const ZipEntry* ZipArchive::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

std::string_view ZipArchive::stored_data(const ZipEntry& e, bool verify_crc) const {
  if (e.method != 0)
    fail(path_, "entry '", e.name, "' is compressed (method ", e.method,
         "); tensor data must be stored uncompressed");
  const char* p = reinterpret_cast<const char*>(base_ + e.data_offset);
  if (verify_crc) {
    uLong crc = crc32_z(0L, Z_NULL, 0);
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(p), static_cast<z_size_t>(e.compressed_size));
    if (crc != e.crc32) fail(path_, "CRC-32 mismatch in entry '", e.name, "': corrupt archive");
  }
  return std::string_view(p, e.compressed_size);
}

std::string ZipArchive::read(const ZipEntry& e) const {
  if (e.method == 0) return std::string(stored_data(e, true));
  if (e.method != 8)
    fail(path_, "entry '", e.name, "' uses unsupported compression method ", e.method);
  if (e.uncompressed_size >= 0xFFFFFFFFull || e.compressed_size >= 0xFFFFFFFFull)
    fail(path_, "entry '", e.name, "' is too large to inflate (", e.uncompressed_size, " bytes)");
  std::string out(e.uncompressed_size, '\0');
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) fail(path_, "zlib inflateInit failed");
  zs.next_in = const_cast<Bytef*>(base_ + e.data_offset);
  zs.avail_in = static_cast<uInt>(e.compressed_size);
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = inflate(&zs, Z_FINISH);
  uint64_t produced = zs.total_out;
  inflateEnd(&zs);
  if (rc != Z_STREAM_END || produced != e.uncompressed_size)
    fail(path_, "corrupt deflate data in entry '", e.name, "'");
  uLong crc =
      crc32_z(crc32_z(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(out.data()), out.size());
  if (crc != e.crc32) fail(path_, "CRC-32 mismatch in entry '", e.name, "': corrupt archive");
  return out;
}

}  // namespace tgpt

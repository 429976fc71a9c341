/*
 * png_write.cpp — PNG encoding (stb_image_write, compiled here with static linkage so that test
 * files compiling their own copy do not clash) and replace-by-rename file writes.
 */
#include "data/synth/png_write.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/error.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace tgpt::synth {

namespace {
void append_bytes(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data),
                                             static_cast<size_t>(size));
}
}  // namespace

std::string encode_png(const Image& img) {
  TGPT_CHECK(!img.empty(), "encode_png: empty image");
  TGPT_CHECK(img.width <= 65535 && img.height <= 65535, "encode_png: image too large");
  std::string out;
  // stb's defaults (compression level 8, adaptive filters) are global; we never change them.
  const int ok = stbi_write_png_to_func(append_bytes, &out, static_cast<int>(img.width),
                                        static_cast<int>(img.height), 3, img.pixels.data(),
                                        static_cast<int>(img.width * 3));
  TGPT_CHECK(ok != 0 && !out.empty(), "encode_png: stb_image_write failed");
  return out;
}

void write_png_file_replace(const std::string& path, const Image& img) {
  const std::string bytes = encode_png(img);
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  TGPT_CHECK(fd >= 0, "cannot create '", tmp, "': ", std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const std::string reason = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      TGPT_FAIL("cannot write '", tmp, "': ", reason);
    }
    done += static_cast<size_t>(w);
  }
  if (::close(fd) != 0) {
    const std::string reason = std::strerror(errno);
    ::unlink(tmp.c_str());
    TGPT_FAIL("cannot close '", tmp, "': ", reason);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    ::unlink(tmp.c_str());
    TGPT_FAIL("cannot rename '", tmp, "' to '", path, "': ", reason);
  }
}

void sync_folder_filesystem(const std::string& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  TGPT_CHECK(fd >= 0, "cannot open folder '", folder, "': ", std::strerror(errno));
  const int rc = ::syncfs(fd);
  const std::string reason = rc != 0 ? std::strerror(errno) : "";
  ::close(fd);
  TGPT_CHECK(rc == 0, "cannot sync the file system of '", folder, "': ", reason);
}

}  // namespace tgpt::synth

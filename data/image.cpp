/*
 * image.cpp — image decoding: JPEG with libjpeg-turbo (data/jpeg_decode.cpp), WebP with libwebp
 * (data/webp_decode.cpp), TIFF with libtiff (data/tiff_decode.cpp), PPM/PGM with our own reader
 * (data/pnm_decode.cpp), each chosen by the file's magic bytes; PNG, BMP and GIF
 * with stb_image (compiled in data/stb_image_impl.cpp) after our own structural checks; and
 * conversions between Image and u8 tensors. See image.h for the
 * conversion rules and how they relate to PIL.
 */
#include "data/image.h"

#include <stb_image.h>  // implementation: data/stb_image_impl.cpp

#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <memory>

#include "data/jpeg_decode.h"
#include "data/pnm_decode.h"
#include "data/tiff_decode.h"
#include "data/webp_decode.h"

namespace tgpt {

namespace {

uint32_t read_le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
uint16_t read_le16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | p[1] << 8);
}

// stb_image pads missing BMP and GIF data with zeros instead of failing; PIL reports such files
// as truncated. These checks find truncation from the container structure before decoding.

// Uncompressed BMP (BI_RGB / BI_BITFIELDS): the pixel array must be complete.
void check_bmp_complete(const uint8_t* d, size_t n, const std::string& name) {
  if (n < 30 || d[0] != 'B' || d[1] != 'M') return;  // stb reports malformed headers itself
  const uint64_t data_offset = read_le32(d + 10);
  const uint32_t dib_size = read_le32(d + 14);
  int64_t w = 0, h = 0;
  uint32_t bpp = 0, compression = 0;
  if (dib_size == 12) {  // BITMAPCOREHEADER
    w = read_le16(d + 18);
    h = read_le16(d + 20);
    bpp = read_le16(d + 24);
  } else {
    if (n < 34) return;
    w = static_cast<int32_t>(read_le32(d + 18));
    h = static_cast<int32_t>(read_le32(d + 22));
    bpp = read_le16(d + 28);
    compression = read_le32(d + 30);
  }
  if (compression != 0 && compression != 3 && compression != 6) return;  // RLE etc.: stb checks
  if (w <= 0 || h == 0 || h == INT32_MIN || bpp == 0 || bpp > 32) return;
  if (h < 0) h = -h;
  if (w * h > kMaxImagePixels) return;  // refused later with a clearer message
  const uint64_t stride = (static_cast<uint64_t>(w) * bpp + 31) / 32 * 4;
  const uint64_t need = data_offset + stride * static_cast<uint64_t>(h);
  TGPT_CHECK(n >= need, "decode_image: ", name, ": truncated BMP (", n, " bytes, the pixel data ",
             "needs ", need, ")");
}

// GIF: every data sub-block up to the end of the first image must be present.
void check_gif_complete(const uint8_t* d, size_t n, const std::string& name) {
  if (n < 13 || std::memcmp(d, "GIF8", 4) != 0) return;
  auto truncated = [&]() {
    TGPT_FAIL("decode_image: ", name, ": truncated GIF (the first frame's data is incomplete)");
  };
  size_t pos = 13;
  if (d[10] & 0x80) pos += 3u * (2u << (d[10] & 7));  // global colour table
  // Image data may end right after its last sub-block without the 0 terminator and trailer (the
  // LZW stream has its own end code; PIL accepts that too). A sub-block cut short is truncation.
  auto skip_sub_blocks = [&](bool end_ok) {
    for (;;) {
      if (pos == n && end_ok) return;
      if (pos >= n) truncated();
      const size_t len = d[pos++];
      if (len == 0) return;
      pos += len;
    }
  };
  for (;;) {
    if (pos >= n) truncated();
    const uint8_t tag = d[pos++];
    if (tag == 0x21) {  // extension: label, sub-blocks
      if (pos >= n) truncated();
      ++pos;
      skip_sub_blocks(false);
    } else if (tag == 0x2C) {  // image descriptor, local colour table, LZW code size, data
      if (pos + 9 > n) truncated();
      const uint8_t packed = d[pos + 8];
      pos += 9;
      if (packed & 0x80) pos += 3u * (2u << (packed & 7));
      if (pos >= n) truncated();
      ++pos;
      skip_sub_blocks(true);
      return;
    } else {
      return;  // trailer or garbage: stb reports what it finds
    }
  }
}

}  // namespace

Image::Image(int64_t h, int64_t w) {
  TGPT_CHECK(h >= 0 && w >= 0, "Image: negative size ", h, "x", w);
  TGPT_CHECK(w == 0 || h <= kMaxImagePixels / w, "Image: ", h, "x", w, " exceeds the limit of ",
             kMaxImagePixels, " pixels");
  height = h;
  width = w;
  pixels.assign(static_cast<size_t>(h * w * 3), 0);
}

Image decode_image_memory(const uint8_t* data, size_t size, const std::string& name) {
  TGPT_CHECK(size > 0, "decode_image: ", name, ": empty file");
  TGPT_CHECK(data != nullptr, "decode_image: ", name, ": null buffer");
  TGPT_CHECK(size <= static_cast<size_t>(INT_MAX), "decode_image: ", name, ": ", size,
             " bytes is too large for the decoder (limit ", INT_MAX, ")");
  const int len = static_cast<int>(size);

  if (is_jpeg(data, size)) return decode_jpeg(data, size, name, kMaxImagePixels);
  if (is_webp(data, size)) return decode_webp(data, size, name, kMaxImagePixels);
  if (is_tiff(data, size)) return decode_tiff(data, size, name, kMaxImagePixels);
  if (is_pnm(data, size)) return decode_pnm(data, size, name, kMaxImagePixels);

  // Read the header first so that absurd dimensions are refused before allocating anything.
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(data, len, &w, &h, &comp)) {
    const char* why = stbi_failure_reason();
    TGPT_FAIL("decode_image: ", name, ": not a readable JPEG/PNG/BMP/GIF/WebP/TIFF/PPM/PGM image (",
              why ? why : "unknown reason", ")");
  }
  TGPT_CHECK(w > 0 && h > 0, "decode_image: ", name, ": zero-size image (", w, "x", h, ")");
  TGPT_CHECK(static_cast<int64_t>(w) * h <= kMaxImagePixels, "decode_image: ", name, ": ", w, "x",
             h, " pixels exceeds the limit of ", kMaxImagePixels, " (possible decompression bomb)");

  check_bmp_complete(data, size, name);
  check_gif_complete(data, size, name);

  int dw = 0, dh = 0, dcomp = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> px(
      stbi_load_from_memory(data, len, &dw, &dh, &dcomp, 3), stbi_image_free);
  if (!px) {
    const char* why = stbi_failure_reason();
    TGPT_FAIL("decode_image: ", name, ": corrupt or truncated image (",
              why ? why : "unknown reason", ")");
  }
  TGPT_CHECK(dw == w && dh == h, "decode_image: ", name, ": header says ", w, "x", h,
             " but decoded ", dw, "x", dh);
  Image img(h, w);
  std::memcpy(img.pixels.data(), px.get(), img.pixels.size());
  return img;
}

Image decode_image_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  TGPT_CHECK(f.good(), "decode_image: cannot open ", path, " (", std::strerror(errno), ")");
  std::streamoff end = f.tellg();
  TGPT_CHECK(end >= 0, "decode_image: cannot determine the size of ", path);
  TGPT_CHECK(end > 0, "decode_image: ", path, ": empty file");
  TGPT_CHECK(end <= INT_MAX, "decode_image: ", path, ": ", end,
             " bytes is too large for the decoder (limit ", INT_MAX, ")");
  std::vector<uint8_t> bytes(static_cast<size_t>(end));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(bytes.data()), end);
  TGPT_CHECK(f.gcount() == end, "decode_image: ", path, ": read ", f.gcount(), " of ", end,
             " bytes");
  return decode_image_memory(bytes.data(), bytes.size(), path);
}

Tensor image_to_tensor(const Image& img) {
  Tensor t = Tensor::empty({img.height, img.width, 3}, DType::u8);
  if (!img.pixels.empty()) std::memcpy(t.data_ptr(), img.pixels.data(), img.pixels.size());
  return t;
}

Image image_from_tensor(const Tensor& t) {
  TGPT_CHECK(t.dtype() == DType::u8 && t.dim() == 3 && t.size(2) == 3,
             "image_from_tensor: expected u8 [H, W, 3], got ", t.str());
  TGPT_CHECK(t.device() == Device::CPU, "image_from_tensor: expected a CPU tensor, got ", t.str());
  Image img(t.size(0), t.size(1));
  Tensor c = t.contiguous();
  if (!img.pixels.empty()) std::memcpy(img.pixels.data(), c.data_ptr(), img.pixels.size());
  return img;
}

}  // namespace tgpt

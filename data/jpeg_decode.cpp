/*
 * jpeg_decode.cpp — JPEG decoding with libjpeg-turbo, the library PIL decodes JPEG with, using
 * PIL's settings (libjpeg's defaults: integer slow IDCT, fancy upsampling, no scaling), so that
 * decoded pixels equal PIL's Image.open(f).convert("RGB") exactly when both use the same
 * libjpeg-turbo (Debian 12: 2.1.5 for tgpt and python3-pil).
 *
 * Colour: YCbCr / RGB JPEGs are decoded to RGB by libjpeg; greyscale ones are decoded to grey and
 * replicated (PIL: mode "L", then convert("RGB")); CMYK / YCCK ones are decoded to CMYK, inverted
 * when an Adobe marker is present (PIL's "CMYK;I" raw mode), then converted as PIL's cmyk2rgb
 * does: channel = 255 - k' with k' = k + c·(255 - k) / 255, rounded like PIL.
 * Errors: libjpeg's fatal errors, and a premature end of the data (PIL: "image file is
 * truncated"), throw tgpt::Error with libjpeg's message; other warnings (e.g. extraneous bytes
 * before a marker) are ignored, as PIL ignores them. The decompression-bomb limit is checked
 * after the header, before any pixel is decoded.
 */
#include "data/jpeg_decode.h"

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>
// clang-format off
#include <jerror.h>
// clang-format on

#include "base/error.h"

namespace tgpt {

namespace {

struct ErrorManager {
  jpeg_error_mgr pub;  // first: libjpeg casts cinfo->err to this
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {};
  bool truncated = false;
};

extern "C" void jpeg_on_fatal_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings (msg_level -1) are counted by libjpeg; a premature end of data is remembered, the
// rest is ignored. Trace messages (msg_level >= 0) are dropped.
extern "C" void jpeg_on_message(j_common_ptr cinfo, int msg_level) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  if (msg_level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF && !err->truncated) {
    err->truncated = true;
    (*cinfo->err->format_message)(cinfo, err->message);
  }
}

// PIL's MULDIV255: a * b / 255 rounded, in integers.
inline int muldiv255(int a, int b) {
  const int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

// The libjpeg part, kept free of C++ objects with destructors between setjmp and longjmp.
// Returns false with err.message set on a fatal error. Once the header is read, `allocate` is
// called with (height, width, output components) and returns the height*width*3 output; `row`
// must then hold width*components bytes when the output is not RGB (grey, CMYK).
template <typename Allocate>
bool run_decompress(jpeg_decompress_struct& cinfo, ErrorManager& err, const uint8_t* data,
                    size_t size, int64_t max_pixels, Allocate allocate, uint8_t*& pixels,
                    uint8_t*& row, bool& too_large, int& width, int& height) {
  if (setjmp(err.jump)) return false;
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_save_markers(&cinfo, JPEG_APP0 + 14, 0xFFFF);  // Adobe marker (CMYK inversion)
  jpeg_read_header(&cinfo, TRUE);
  width = static_cast<int>(cinfo.image_width);
  height = static_cast<int>(cinfo.image_height);
  if (width <= 0 || height <= 0 || static_cast<int64_t>(width) * height > max_pixels) {
    too_large = width > 0 && height > 0;
    return true;
  }
  const J_COLOR_SPACE in = cinfo.jpeg_color_space;
  cinfo.out_color_space = in == JCS_GRAYSCALE                  ? JCS_GRAYSCALE
                          : (in == JCS_CMYK || in == JCS_YCCK) ? JCS_CMYK
                                                               : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  const int comps = cinfo.output_components;
  pixels = allocate(height, width, comps);
  const bool adobe_inverted = cinfo.saw_Adobe_marker;
  while (cinfo.output_scanline < cinfo.output_height) {
    uint8_t* out = pixels + static_cast<size_t>(cinfo.output_scanline) * width * 3;
    JSAMPROW dest = comps == 3 ? out : row;
    jpeg_read_scanlines(&cinfo, &dest, 1);
    if (comps == 1) {
      for (int x = 0; x < width; ++x) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = row[x];
    } else if (comps == 4) {
      for (int x = 0; x < width; ++x) {
        int c[4];
        for (int i = 0; i < 4; ++i) c[i] = adobe_inverted ? 255 - row[4 * x + i] : row[4 * x + i];
        const int nk = 255 - c[3];
        for (int i = 0; i < 3; ++i) {
          const int v = nk - muldiv255(c[i], nk);
          out[3 * x + i] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
        }
      }
    }
  }
  jpeg_finish_decompress(&cinfo);
  return true;
}

}  // namespace

bool is_jpeg(const uint8_t* data, size_t size) {
  return size >= 2 && data[0] == 0xFF && data[1] == 0xD8;
}

Image decode_jpeg(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_on_fatal_error;
  err.pub.emit_message = jpeg_on_message;
  jpeg_create_decompress(&cinfo);

  Image img;
  std::vector<uint8_t> row_buffer;  // one decoded row of grey / CMYK output
  uint8_t* pixels = nullptr;
  uint8_t* row = nullptr;
  bool too_large = false;
  int width = 0, height = 0;
  const bool ok = run_decompress(
      cinfo, err, data, size, max_pixels,
      [&](int h, int w, int comps) {
        img = Image(h, w);
        if (comps != 3) row_buffer.resize(static_cast<size_t>(w) * comps);
        row = row_buffer.data();
        return img.pixels.data();
      },
      pixels, row, too_large, width, height);
  jpeg_destroy_decompress(&cinfo);
  if (!ok) TGPT_FAIL("decode_image: ", name, ": corrupt JPEG (", err.message, ")");
  TGPT_CHECK(!too_large, "decode_image: ", name, ": ", width, "x", height,
             " pixels exceeds the limit of ", max_pixels, " (possible decompression bomb)");
  TGPT_CHECK(width > 0 && height > 0, "decode_image: ", name, ": zero-size image (", width, "x",
             height, ")");
  TGPT_CHECK(pixels != nullptr, "decode_image: ", name, ": unsupported JPEG layout");
  TGPT_CHECK(!err.truncated, "decode_image: ", name, ": truncated JPEG (", err.message, ")");
  return img;
}

}  // namespace tgpt

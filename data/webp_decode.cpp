/*
 * webp_decode.cpp — WebP decoding with libwebp (Debian's libwebp-dev), the library PIL decodes
 * WebP with, along PIL 9.4's path: every WebP file, still or animated, goes through libwebp's
 * WebPAnimDecoder (libwebpdemux) with its default options (non-premultiplied RGBA, no threads),
 * and the first frame is taken. Still images therefore come out as WebPDecodeRGBA gives them;
 * for an animated file the first frame is drawn onto a transparent black canvas of the
 * animation's size (the background colour is ignored, as libwebp and PIL do). convert("RGB")
 * then drops the alpha channel without compositing, so pixels equal PIL's exactly when both use
 * the same libwebp (Debian 12: 1.2.4).
 *
 * Errors: libwebp's header check (WebPGetFeatures) names the problem (e.g. NOT_ENOUGH_DATA for a
 * cut header); a file the demuxer cannot take whole (truncated or corrupt chunks) or a frame that
 * does not decode is "corrupt or truncated". Dimensions are checked against the pixel limit from
 * the header before the decoder allocates its canvas.
 */
#include "data/webp_decode.h"

#include <webp/decode.h>
#include <webp/demux.h>

#include <cstring>
#include <memory>

#include "base/error.h"

namespace tgpt {

namespace {

const char* vp8_status_name(VP8StatusCode s) {
  switch (s) {
    case VP8_STATUS_OK: return "OK";
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "user abort";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "not enough data: truncated";
  }
  return "unknown status";
}

struct AnimDecoderDeleter {
  void operator()(WebPAnimDecoder* d) const { WebPAnimDecoderDelete(d); }
};

}  // namespace

bool is_webp(const uint8_t* data, size_t size) {
  return size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0;
}

Image decode_webp(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  WebPBitstreamFeatures features;
  const VP8StatusCode status = WebPGetFeatures(data, size, &features);
  TGPT_CHECK(status == VP8_STATUS_OK, "decode_image: ", name, ": not a readable WebP image (",
             vp8_status_name(status), ")");
  const int64_t w = features.width, h = features.height;
  TGPT_CHECK(w > 0 && h > 0, "decode_image: ", name, ": zero-size image (", w, "x", h, ")");
  TGPT_CHECK(w * h <= max_pixels, "decode_image: ", name, ": ", w, "x", h,
             " pixels exceeds the limit of ", max_pixels, " (possible decompression bomb)");

  WebPAnimDecoderOptions options;
  TGPT_CHECK(WebPAnimDecoderOptionsInit(&options), "decode_image: ", name,
             ": libwebp's animation decoder has an incompatible version");
  options.color_mode = MODE_RGBA;
  options.use_threads = 0;
  const WebPData webp_data{data, size};
  std::unique_ptr<WebPAnimDecoder, AnimDecoderDeleter> decoder(
      WebPAnimDecoderNew(&webp_data, &options));
  TGPT_CHECK(decoder != nullptr, "decode_image: ", name,
             ": corrupt or truncated WebP (libwebp cannot parse its chunks)");
  WebPAnimInfo info;
  TGPT_CHECK(WebPAnimDecoderGetInfo(decoder.get(), &info), "decode_image: ", name,
             ": corrupt WebP (no animation info)");
  TGPT_CHECK(info.canvas_width == w && info.canvas_height == h, "decode_image: ", name,
             ": header says ", w, "x", h, " but the canvas is ", info.canvas_width, "x",
             info.canvas_height);
  TGPT_CHECK(info.frame_count >= 1, "decode_image: ", name, ": WebP has no frames");
  uint8_t* rgba = nullptr;  // [h, w, 4], owned by the decoder
  int timestamp = 0;
  TGPT_CHECK(WebPAnimDecoderGetNext(decoder.get(), &rgba, &timestamp) && rgba != nullptr,
             "decode_image: ", name,
             ": corrupt or truncated WebP (the first frame does not decode)");

  Image img(h, w);
  for (int64_t i = 0; i < w * h; ++i) {
    img.pixels[3 * i] = rgba[4 * i];
    img.pixels[3 * i + 1] = rgba[4 * i + 1];
    img.pixels[3 * i + 2] = rgba[4 * i + 2];
  }
  return img;
}

}  // namespace tgpt

/*
 * tiff_decode.cpp — TIFF decoding with libtiff (Debian's libtiff-dev), the library PIL decodes
 * compressed TIFFs with, following PIL 9.4's TiffImagePlugin so that pixels equal
 * Image.open(f).convert("RGB"):
 *
 *   supported   the first image (IFD) of the file; 8 bits per sample, unsigned integer samples;
 *               photometric MinIsBlack / MinIsWhite (grey, inverted for MinIsWhite as PIL's
 *               "L;I"), RGB, or Palette; 1 sample (grey, palette), 2 (grey or palette + alpha),
 *               3 (RGB) or 4 (RGB + alpha or extra sample); strips or tiles; planar
 *               configuration contiguous or separate; compression none, LZW, Deflate (both tag
 *               values) or PackBits, with or without a predictor (libtiff undoes it).
 *   conversion  as PIL's convert("RGB"): grey replicated; alpha / extra samples dropped without
 *               compositing, except associated (premultiplied) alpha, ExtraSamples = 1, which PIL
 *               unpremultiplies when it reads the file ("RGBa": c = min(255, c * 255 / a) in
 *               integers, 0 where a = 0); palette entries are the 16-bit colormap values / 256
 *               (PIL's b // 256).
 *   orientation the Orientation tag (2..8) IS applied, because PIL's TIFF reader applies it
 *               (TiffImageFile.load_end transposes the image) — unlike EXIF in JPEG.
 *   refused     other bit depths (1, 4, 16, 32...), signed or floating-point samples, other
 *               photometric interpretations (CMYK, YCbCr, CIELab...), more than 4 samples per
 *               pixel, and other compressions (JPEG, CCITT, LZMA, ZSTD...): a tgpt::Error naming
 *               what is unsupported.
 *   errors      libtiff's error messages (truncated strips, corrupt IFDs, codec errors) go into
 *               the tgpt::Error; nothing is printed. libtiff's handlers are process-wide: on
 *               first use we replace them with ours (errors are collected per decoding thread;
 *               warnings are dropped, as PIL drops them). The pixel limit is checked from the
 *               header before any strip or tile is read.
 */
#include "data/tiff_decode.h"

#include <tiffio.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "base/error.h"

namespace tgpt {

namespace {

// ---- libtiff I/O from memory and message handlers ----------------------------------------------

struct MemorySource {
  const uint8_t* data;
  uint64_t size;
  uint64_t pos = 0;
};

extern "C" tmsize_t tiff_read(thandle_t h, void* buf, tmsize_t n) {
  auto* s = static_cast<MemorySource*>(h);
  if (n <= 0 || s->pos >= s->size) return 0;
  const uint64_t count = std::min<uint64_t>(static_cast<uint64_t>(n), s->size - s->pos);
  std::memcpy(buf, s->data + s->pos, count);
  s->pos += count;
  return static_cast<tmsize_t>(count);
}
extern "C" tmsize_t tiff_write(thandle_t, void*, tmsize_t) {
  return 0;
}
extern "C" toff_t tiff_seek(thandle_t h, toff_t off, int whence) {
  auto* s = static_cast<MemorySource*>(h);
  uint64_t base = whence == SEEK_CUR ? s->pos : whence == SEEK_END ? s->size : 0;
  if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END)
    return static_cast<toff_t>(-1);
  // toff_t is unsigned; libtiff passes negative relative offsets as wrapped values.
  s->pos = base + off;
  return s->pos;
}
extern "C" int tiff_close(thandle_t) {
  return 0;
}
extern "C" toff_t tiff_size(thandle_t h) {
  return static_cast<MemorySource*>(h)->size;
}
extern "C" int tiff_map(thandle_t, void**, toff_t*) {
  return 0;
}
extern "C" void tiff_unmap(thandle_t, void*, toff_t) {}

// Errors of the decoding running on this thread (libtiff reports through global handlers).
thread_local std::string* tls_tiff_errors = nullptr;

extern "C" void tiff_on_error(thandle_t, const char* module, const char* fmt, va_list ap) {
  if (tls_tiff_errors == nullptr || tls_tiff_errors->size() > 1000) return;
  char msg[512];
  std::vsnprintf(msg, sizeof msg, fmt, ap);
  if (!tls_tiff_errors->empty()) *tls_tiff_errors += "; ";
  if (module != nullptr && *module != '\0') *tls_tiff_errors += std::string(module) + ": ";
  *tls_tiff_errors += msg;
}

void install_tiff_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    TIFFSetErrorHandler(nullptr);  // the defaults print to stderr
    TIFFSetWarningHandler(nullptr);
    TIFFSetWarningHandlerExt(nullptr);
    TIFFSetErrorHandlerExt(tiff_on_error);
  });
}

// Collects libtiff's errors while alive; message() gives them for an exception.
class ErrorCapture {
 public:
  ErrorCapture() : previous_(tls_tiff_errors) { tls_tiff_errors = &errors_; }
  ~ErrorCapture() { tls_tiff_errors = previous_; }
  ErrorCapture(const ErrorCapture&) = delete;
  ErrorCapture& operator=(const ErrorCapture&) = delete;
  std::string message() const { return errors_.empty() ? "no details from libtiff" : errors_; }

 private:
  std::string errors_;
  std::string* previous_;
};

struct TiffCloser {
  void operator()(TIFF* t) const { TIFFClose(t); }
};
struct OptionsFreer {
  void operator()(TIFFOpenOptions* o) const { TIFFOpenOptionsFree(o); }
};

const char* photometric_name(uint16_t p) {
  switch (p) {
    case PHOTOMETRIC_MINISWHITE: return "MinIsWhite";
    case PHOTOMETRIC_MINISBLACK: return "MinIsBlack";
    case PHOTOMETRIC_RGB: return "RGB";
    case PHOTOMETRIC_PALETTE: return "Palette";
    case PHOTOMETRIC_MASK: return "transparency mask";
    case PHOTOMETRIC_SEPARATED: return "Separated (CMYK)";
    case PHOTOMETRIC_YCBCR: return "YCbCr";
    case PHOTOMETRIC_CIELAB: return "CIELab";
    case PHOTOMETRIC_ICCLAB: return "ICCLab";
    case PHOTOMETRIC_ITULAB: return "ITULab";
    case PHOTOMETRIC_LOGL: return "LogL";
    case PHOTOMETRIC_LOGLUV: return "LogLuv";
  }
  return "unknown";
}

const char* compression_name(uint16_t c) {
  switch (c) {
    case COMPRESSION_NONE: return "none";
    case COMPRESSION_CCITTRLE: return "CCITT RLE";
    case COMPRESSION_CCITTFAX3: return "CCITT Group 3";
    case COMPRESSION_CCITTFAX4: return "CCITT Group 4";
    case COMPRESSION_LZW: return "LZW";
    case COMPRESSION_OJPEG: return "old-style JPEG";
    case COMPRESSION_JPEG: return "JPEG";
    case COMPRESSION_ADOBE_DEFLATE: return "Adobe Deflate";
    case COMPRESSION_DEFLATE: return "Deflate";
    case COMPRESSION_PACKBITS: return "PackBits";
    case COMPRESSION_LZMA: return "LZMA";
    case COMPRESSION_ZSTD: return "ZSTD";
    case COMPRESSION_WEBP: return "WebP";
    case COMPRESSION_JBIG: return "JBIG";
    case COMPRESSION_LERC: return "LERC";
  }
  return "unknown";
}

// PIL's transposes for the TIFF Orientation tag (TiffImageFile.load_end).
Image apply_orientation(const Image& in, uint16_t orientation) {
  const int64_t h = in.height, w = in.width;
  const bool swap = orientation >= 5;
  Image out(swap ? w : h, swap ? h : w);
  for (int64_t y = 0; y < out.height; ++y)
    for (int64_t x = 0; x < out.width; ++x) {
      int64_t sy = y, sx = x;
      switch (orientation) {
        case 2: sx = w - 1 - x; break;  // FLIP_LEFT_RIGHT
        case 3:
          sy = h - 1 - y;
          sx = w - 1 - x;
          break;                        // ROTATE_180
        case 4: sy = h - 1 - y; break;  // FLIP_TOP_BOTTOM
        case 5:
          sy = x;
          sx = y;
          break;  // TRANSPOSE
        case 6:
          sy = h - 1 - x;
          sx = y;
          break;  // ROTATE_270 (clockwise 90)
        case 7:
          sy = h - 1 - x;
          sx = w - 1 - y;
          break;  // TRANSVERSE
        case 8:
          sy = x;
          sx = w - 1 - y;
          break;  // ROTATE_90 (counter-clockwise)
        default: break;
      }
      std::memcpy(out.at(y, x), in.at(sy, sx), 3);
    }
  return out;
}

// The value of a SHORT / LONG tag of the first IFD, read from the file itself; -1 when the tag is
// absent or the IFD cannot be read. libtiff rewrites some tags while reading the directory (a
// palette image whose colormap cannot be read becomes MinIsBlack; a missing photometric tag is
// guessed), where PIL uses the file's values.
int64_t first_ifd_tag(const uint8_t* d, size_t n, uint16_t wanted) {
  if (n < 8) return -1;
  const bool le = d[0] == 'I';
  auto get = [&](uint64_t pos, int bytes) -> uint64_t {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t{d[pos + (le ? i : bytes - 1 - i)]} << (8 * i);
    return v;
  };
  const bool big = get(2, 2) == 43;  // BigTIFF: 8-byte offsets and counts
  if (big && n < 16) return -1;
  const uint64_t ifd = big ? get(8, 8) : get(4, 4);
  const uint64_t count_bytes = big ? 8 : 2, entry_bytes = big ? 20 : 12;
  if (ifd > n || n - ifd < count_bytes) return -1;
  const uint64_t count = get(ifd, static_cast<int>(count_bytes));
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t e = ifd + count_bytes + i * entry_bytes;
    if (e > n || n - e < entry_bytes) return -1;
    if (get(e, 2) != wanted) continue;
    const uint64_t type = get(e + 2, 2), value = e + (big ? 12 : 8);
    if (type == 3) return static_cast<int64_t>(get(value, 2));  // SHORT
    if (type == 4) return static_cast<int64_t>(get(value, 4));  // LONG
    return -1;
  }
  return -1;
}

}  // namespace

bool is_tiff(const uint8_t* data, size_t size) {
  if (size < 4) return false;
  const bool le =
      data[0] == 'I' && data[1] == 'I' && data[3] == 0 && (data[2] == 42 || data[2] == 43);
  const bool be =
      data[0] == 'M' && data[1] == 'M' && data[2] == 0 && (data[3] == 42 || data[3] == 43);
  return le || be;
}

Image decode_tiff(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  install_tiff_handlers();
  ErrorCapture errors;
  MemorySource source{data, size};
  std::unique_ptr<TIFFOpenOptions, OptionsFreer> options(TIFFOpenOptionsAlloc());
  TGPT_CHECK(options != nullptr, "decode_image: ", name, ": out of memory");
  // No single allocation inside libtiff beyond what the largest allowed image needs.
  TIFFOpenOptionsSetMaxSingleMemAlloc(options.get(),
                                      static_cast<tmsize_t>(max_pixels * 4 + (int64_t{1} << 26)));
  // "m": read through tiff_read (bounds-checked), never map the buffer.
  std::unique_ptr<TIFF, TiffCloser> tif(
      TIFFClientOpenExt(name.c_str(), "rm", &source, tiff_read, tiff_write, tiff_seek, tiff_close,
                        tiff_size, tiff_map, tiff_unmap, options.get()));
  TGPT_CHECK(tif != nullptr, "decode_image: ", name, ": not a readable TIFF (", errors.message(),
             ")");
  TIFF* t = tif.get();

  uint32_t w32 = 0, h32 = 0;
  TGPT_CHECK(
      TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w32) && TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h32),
      "decode_image: ", name, ": TIFF without image width or length");
  const int64_t w = w32, h = h32;
  TGPT_CHECK(w > 0 && h > 0, "decode_image: ", name, ": zero-size image (", w, "x", h, ")");
  TGPT_CHECK(w * h <= max_pixels, "decode_image: ", name, ": ", w, "x", h,
             " pixels exceeds the limit of ", max_pixels, " (possible decompression bomb)");

  uint16_t bps = 1, spp = 1, sample_format = SAMPLEFORMAT_UINT, planar = PLANARCONFIG_CONTIG;
  uint16_t compression = COMPRESSION_NONE, photometric = 0, orientation = ORIENTATION_TOPLEFT;
  TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bps);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &sample_format);
  TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted(t, TIFFTAG_COMPRESSION, &compression);
  TIFFGetFieldDefaulted(t, TIFFTAG_ORIENTATION, &orientation);
  // The file's own value, MinIsWhite (0) when absent, as PIL reads it.
  const int64_t raw_photometric = first_ifd_tag(data, size, TIFFTAG_PHOTOMETRIC);
  photometric =
      raw_photometric < 0 ? PHOTOMETRIC_MINISWHITE : static_cast<uint16_t>(raw_photometric);
  uint16_t n_extra = 0;
  uint16_t* extra = nullptr;
  TIFFGetFieldDefaulted(t, TIFFTAG_EXTRASAMPLES, &n_extra, &extra);

  TGPT_CHECK(bps == 8, "decode_image: ", name, ": TIFF with ", bps,
             " bits per sample is not supported (only 8)");
  TGPT_CHECK(sample_format == SAMPLEFORMAT_UINT, "decode_image: ", name, ": TIFF sample format ",
             sample_format,
             sample_format == SAMPLEFORMAT_INT      ? " (signed integer)"
             : sample_format == SAMPLEFORMAT_IEEEFP ? " (floating point)"
                                                    : "",
             " is not supported (only unsigned integers)");
  const bool grey = photometric == PHOTOMETRIC_MINISBLACK || photometric == PHOTOMETRIC_MINISWHITE;
  const bool palette = photometric == PHOTOMETRIC_PALETTE;
  const bool rgb = photometric == PHOTOMETRIC_RGB;
  TGPT_CHECK(grey || palette || rgb, "decode_image: ", name, ": TIFF photometric interpretation ",
             photometric, " (", photometric_name(photometric),
             ") is not supported (only MinIsBlack, MinIsWhite, RGB and Palette)");
  TGPT_CHECK(((grey || palette) && (spp == 1 || spp == 2)) || (rgb && (spp == 3 || spp == 4)),
             "decode_image: ", name, ": TIFF with ", spp, " samples per pixel and photometric ",
             photometric_name(photometric), " is not supported");
  TGPT_CHECK(planar == PLANARCONFIG_CONTIG || planar == PLANARCONFIG_SEPARATE,
             "decode_image: ", name, ": TIFF planar configuration ", planar, " is invalid");
  const bool codec_ok = compression == COMPRESSION_NONE || compression == COMPRESSION_LZW ||
                        compression == COMPRESSION_ADOBE_DEFLATE ||
                        compression == COMPRESSION_DEFLATE || compression == COMPRESSION_PACKBITS;
  TGPT_CHECK(codec_ok, "decode_image: ", name, ": TIFF compression ", compression, " (",
             compression_name(compression),
             ") is not supported (only none, LZW, Deflate and PackBits)");
  TGPT_CHECK(TIFFIsCODECConfigured(compression), "decode_image: ", name, ": this libtiff cannot ",
             "decode ", compression_name(compression), " compression");
  const bool premultiplied =
      rgb && spp == 4 && n_extra >= 1 && extra != nullptr && extra[0] == EXTRASAMPLE_ASSOCALPHA;

  uint16_t *cmap_r = nullptr, *cmap_g = nullptr, *cmap_b = nullptr;
  if (palette)
    TGPT_CHECK(
        TIFFGetField(t, TIFFTAG_COLORMAP, &cmap_r, &cmap_g, &cmap_b) && cmap_r && cmap_g && cmap_b,
        "decode_image: ", name, ": palette TIFF without a colormap");

  // Samples of the whole image, [h, w, spp], filled plane by plane from strips or tiles.
  const int64_t n_planes = planar == PLANARCONFIG_SEPARATE ? spp : 1;
  const int64_t chunk_spp =
      planar == PLANARCONFIG_SEPARATE ? 1 : spp;  // samples per pixel in a chunk
  std::vector<uint8_t> samples(static_cast<size_t>(h * w * spp));
  auto read_failed = [&](const char* what, uint64_t index) {
    TGPT_FAIL("decode_image: ", name, ": corrupt or truncated TIFF (", what, " ", index,
              " does not decode: ", errors.message(), ")");
  };
  // Copies a decoded chunk [rows, cols, chunk_spp] (row stride chunk_w) to (y0, x0) of plane s.
  auto place = [&](const uint8_t* chunk, int64_t chunk_w, int64_t y0, int64_t x0, int64_t rows,
                   int64_t cols, int64_t s) {
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* src = chunk + r * chunk_w * chunk_spp;
      uint8_t* dst = samples.data() + ((y0 + r) * w + x0) * spp;
      if (chunk_spp == spp) {
        std::memcpy(dst, src, static_cast<size_t>(cols * spp));
      } else {
        for (int64_t c = 0; c < cols; ++c) dst[c * spp + s] = src[c];
      }
    }
  };

  if (TIFFIsTiled(t)) {
    uint32_t tw = 0, th = 0;
    TGPT_CHECK(TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw) &&
                   TIFFGetField(t, TIFFTAG_TILELENGTH, &th) && tw > 0 && th > 0,
               "decode_image: ", name, ": tiled TIFF without a valid tile size");
    const uint64_t tile_bytes = TIFFTileSize64(t);
    const uint64_t need = uint64_t{tw} * th * static_cast<uint64_t>(chunk_spp);
    TGPT_CHECK(tile_bytes >= need && need <= static_cast<uint64_t>(max_pixels) * 4,
               "decode_image: ", name, ": TIFF tile size ", tw, "x", th, " is invalid");
    std::vector<uint8_t> buf(tile_bytes);
    for (int64_t s = 0; s < n_planes; ++s)
      for (int64_t y = 0; y < h; y += th)
        for (int64_t x = 0; x < w; x += tw) {
          const uint32_t tile = TIFFComputeTile(
              t, static_cast<uint32_t>(x), static_cast<uint32_t>(y), 0, static_cast<uint16_t>(s));
          const tmsize_t got =
              TIFFReadEncodedTile(t, tile, buf.data(), static_cast<tmsize_t>(buf.size()));
          if (got < 0 || static_cast<uint64_t>(got) < need) read_failed("tile", tile);
          place(buf.data(), tw, y, x, std::min<int64_t>(th, h - y), std::min<int64_t>(tw, w - x),
                s);
        }
  } else {
    uint32_t rows_per_strip = 0;
    TIFFGetFieldDefaulted(t, TIFFTAG_ROWSPERSTRIP, &rows_per_strip);
    const int64_t rps = std::min<int64_t>(rows_per_strip == 0 ? h : rows_per_strip, h);
    const uint64_t strip_bytes = TIFFStripSize64(t);
    TGPT_CHECK(strip_bytes >= static_cast<uint64_t>(rps * w * chunk_spp), "decode_image: ", name,
               ": TIFF strip size is inconsistent with its rows per strip");
    std::vector<uint8_t> buf(strip_bytes);
    for (int64_t s = 0; s < n_planes; ++s)
      for (int64_t y = 0; y < h; y += rps) {
        const uint32_t strip =
            TIFFComputeStrip(t, static_cast<uint32_t>(y), static_cast<uint16_t>(s));
        const int64_t rows = std::min<int64_t>(rps, h - y);
        const tmsize_t got =
            TIFFReadEncodedStrip(t, strip, buf.data(), static_cast<tmsize_t>(buf.size()));
        if (got < 0 || got < rows * w * chunk_spp) read_failed("strip", strip);
        place(buf.data(), w, y, 0, rows, w, s);
      }
  }

  Image img(h, w);
  for (int64_t i = 0; i < h * w; ++i) {
    const uint8_t* p = samples.data() + i * spp;
    uint8_t* o = img.pixels.data() + i * 3;
    if (rgb) {
      if (premultiplied) {  // PIL's unpackRGBa
        const int a = p[3];
        for (int c = 0; c < 3; ++c)
          o[c] = a == 0 ? 0 : a == 255 ? p[c] : static_cast<uint8_t>(std::min(255, p[c] * 255 / a));
      } else {
        o[0] = p[0];
        o[1] = p[1];
        o[2] = p[2];
      }
    } else if (palette) {
      o[0] = static_cast<uint8_t>(cmap_r[p[0]] >> 8);
      o[1] = static_cast<uint8_t>(cmap_g[p[0]] >> 8);
      o[2] = static_cast<uint8_t>(cmap_b[p[0]] >> 8);
    } else {
      const uint8_t v = photometric == PHOTOMETRIC_MINISWHITE ? 255 - p[0] : p[0];
      o[0] = o[1] = o[2] = v;
    }
  }
  if (orientation >= 2 && orientation <= 8) return apply_orientation(img, orientation);
  return img;
}

}  // namespace tgpt

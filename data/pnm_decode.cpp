/*
 * pnm_decode.cpp — PGM / PPM decoding with PIL 9.4's rules (PpmImagePlugin.py), so that pixels
 * equal Image.open(f).convert("RGB"):
 *
 *   header    magic, width, height, maxval: tokens of at most 10 characters separated by
 *             whitespace; '#' starts a comment that runs to CR or LF and is removed together with
 *             that CR / LF (so a comment inside a token joins its two halves, as in PIL). Binary
 *             pixel data starts right after the single whitespace byte that ends maxval.
 *   maxval    1..65535. Samples are 1 byte when maxval < 256, else 2 bytes big-endian.
 *   scaling   PIL's round(v / maxval * out_max) in doubles with Python's round (half to even):
 *             - PPM (P6 / P3): out_max = 255; binary samples are clamped to 255 (a value above
 *               maxval is allowed in binary data), ASCII values above maxval are an error.
 *               maxval 255 is taken as is.
 *             - PGM (P5 / P2), maxval <= 255: as PPM, then grey is replicated into R, G, B.
 *             - PGM, maxval 256..65535: PIL opens it as a 32-bit integer image (mode "I") with
 *               out_max = 65535 (maxval 65535 binary: the raw 16-bit values), and convert("RGB")
 *               then CLIPS each value to 0..255 — a 16-bit PGM comes out almost white. We match
 *               PIL (CLIP is fed what the reference pipeline feeds it); convert such files to
 *               8 bits first if that is not what you want.
 *   errors    a short header, bad tokens, zero sizes, maxval out of range, missing pixel data
 *             (PIL: "image file is truncated" / "not enough image data") and ASCII values above
 *             maxval throw tgpt::Error naming the file. Bytes after the pixel data are ignored.
 */
#include "data/pnm_decode.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "base/error.h"

namespace tgpt {

namespace {

bool is_pnm_space(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// Reads tokens as PIL's PpmImageFile._read_token / PpmPlainDecoder do.
class TokenReader {
 public:
  TokenReader(const uint8_t* data, size_t size, size_t pos, const std::string& name)
      : d_(data), n_(size), pos_(pos), name_(name) {}

  // The next token as a non-negative integer; `what` names it in errors. At the end of the data
  // returns false when `eof_ok`, else throws.
  bool next(const char* what, bool eof_ok, int64_t* value) {
    std::string token;
    while (pos_ < n_) {
      const uint8_t c = d_[pos_++];
      if (is_pnm_space(c)) {
        if (token.empty()) continue;
        break;  // the whitespace that ends a token is consumed
      }
      if (c == '#') {  // comment: up to and including CR or LF
        while (pos_ < n_ && d_[pos_] != '\r' && d_[pos_] != '\n') ++pos_;
        if (pos_ < n_) ++pos_;
        continue;
      }
      token.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');  // printable in errors
      TGPT_CHECK(token.size() <= 10, "decode_image: ", name_, ": PPM/PGM ", what,
                 " token is longer than 10 characters ('", token, "...')");
    }
    if (token.empty()) {
      if (eof_ok) return false;
      TGPT_FAIL("decode_image: ", name_, ": truncated PPM/PGM (the data ends before the ", what,
                ")");
    }
    int64_t v = 0;
    for (char ch : token) {
      TGPT_CHECK(ch >= '0' && ch <= '9', "decode_image: ", name_, ": PPM/PGM ", what,
                 " is not a non-negative integer ('", token, "')");
      v = v * 10 + (ch - '0');
    }
    *value = v;
    return true;
  }

  size_t pos() const { return pos_; }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t pos_;
  const std::string& name_;
};

// Python's round(value / maxval * out_max): IEEE double ops, ties to even (the default rounding
// mode, which nearbyint uses).
inline int64_t pil_scale(int64_t value, int64_t maxval, int64_t out_max) {
  return static_cast<int64_t>(std::nearbyint(
      static_cast<double>(value) / static_cast<double>(maxval) * static_cast<double>(out_max)));
}

}  // namespace

bool is_pnm(const uint8_t* data, size_t size) {
  return size >= 3 && data[0] == 'P' && data[1] >= '1' && data[1] <= '7' && is_pnm_space(data[2]);
}

Image decode_pnm(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  TGPT_CHECK(is_pnm(data, size), "decode_image: ", name, ": not a PPM/PGM file");
  const char kind = static_cast<char>(data[1]);
  TGPT_CHECK(kind != '1' && kind != '4', "decode_image: ", name, ": PBM bitmaps (P", kind,
             ") are not supported (only PGM P2/P5 and PPM P3/P6)");
  TGPT_CHECK(kind != '7', "decode_image: ", name,
             ": PAM (P7) is not supported (only PGM P2/P5 and PPM P3/P6)");
  const bool plain = kind == '2' || kind == '3';
  const int bands = (kind == '3' || kind == '6') ? 3 : 1;

  TokenReader tokens(data, size, 3, name);
  int64_t width = 0, height = 0, maxval = 0;
  tokens.next("width", false, &width);
  tokens.next("height", false, &height);
  tokens.next("maxval", false, &maxval);
  TGPT_CHECK(width > 0 && height > 0, "decode_image: ", name, ": zero-size image (", width, "x",
             height, ")");
  TGPT_CHECK(width <= max_pixels && height <= max_pixels / width, "decode_image: ", name, ": ",
             width, "x", height, " pixels exceeds the limit of ", max_pixels,
             " (possible decompression bomb)");
  TGPT_CHECK(maxval > 0 && maxval < 65536, "decode_image: ", name, ": PPM/PGM maxval ", maxval,
             " is out of range (1..65535)");

  // PIL's mode "I" for PGM with maxval > 255: values scaled to 0..65535, then clipped to 255.
  const bool wide_grey = bands == 1 && maxval > 255;
  const int64_t out_max = wide_grey ? 65535 : 255;
  const int64_t n_samples = width * height * bands;
  std::vector<uint8_t> samples(static_cast<size_t>(n_samples));
  auto store = [&](int64_t i, int64_t v) {  // v in 0..out_max
    samples[static_cast<size_t>(i)] = static_cast<uint8_t>(std::min<int64_t>(v, 255));
  };

  if (plain) {
    int64_t v = 0;
    for (int64_t i = 0; i < n_samples; ++i) {
      if (!tokens.next("pixel data", true, &v))
        TGPT_FAIL("decode_image: ", name, ": truncated PPM/PGM (", i, " of ", n_samples,
                  " values present)");
      TGPT_CHECK(v <= maxval, "decode_image: ", name, ": PPM/PGM value ", v, " exceeds maxval ",
                 maxval);
      store(i, pil_scale(v, maxval, out_max));
    }
  } else {
    const int in_bytes = maxval < 256 ? 1 : 2;
    const size_t pos = tokens.pos();
    const uint64_t need = static_cast<uint64_t>(n_samples) * static_cast<uint64_t>(in_bytes);
    TGPT_CHECK(size - pos >= need, "decode_image: ", name, ": truncated PPM/PGM (", size - pos,
               " bytes of pixel data, ", need, " needed)");
    const uint8_t* p = data + pos;
    // PIL takes the samples as they are for maxval 255 (8-bit) and for 16-bit grey with maxval
    // 65535; otherwise it scales and clamps to out_max.
    const bool raw = maxval == 255 || (wide_grey && maxval == 65535);
    for (int64_t i = 0; i < n_samples; ++i) {
      const int64_t v = in_bytes == 1 ? p[i] : (int64_t{p[2 * i]} << 8 | p[2 * i + 1]);
      store(i, raw ? v : std::min(out_max, pil_scale(v, maxval, out_max)));
    }
  }

  Image img(height, width);
  if (bands == 3) {
    std::memcpy(img.pixels.data(), samples.data(), samples.size());
  } else {
    for (size_t i = 0; i < samples.size(); ++i)
      img.pixels[3 * i] = img.pixels[3 * i + 1] = img.pixels[3 * i + 2] = samples[i];
  }
  return img;
}

}  // namespace tgpt

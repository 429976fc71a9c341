/*
 * image.h — decoding image files (JPEG, PNG, BMP, GIF, WebP, TIFF, PPM/PGM) into 8-bit RGB images.
 *
 * The format is chosen from the file's magic bytes, never from its name. JPEG is decoded with
 * libjpeg-turbo, as PIL does (data/jpeg_decode.cpp); WebP with libwebp (data/webp_decode.cpp) and
 * TIFF with libtiff (data/tiff_decode.cpp), the libraries PIL uses; PPM/PGM with our own reader
 * of PIL's rules (data/pnm_decode.cpp); PNG, BMP and GIF with stb_image. "PIL" is Debian 12's
 * python3-pil 9.4. Every source layout is converted to RGB the way PIL's convert("RGB") does it:
 * grey is replicated into R, G and B; grey+alpha and RGBA simply drop the alpha channel (no
 * compositing onto a background); palette images are looked up in the palette. GIFs yield their
 * first frame. The result is the pixel data as stored in the file:
 *
 *   - EXIF orientation is NOT applied. CLIP's preprocessing hands the PIL image as opened to
 *     Resize, and PIL's Image.open does not rotate by EXIF either, so a rotated phone photo is
 *     seen by CLIP in its stored orientation. We do the same. (TIFF's own Orientation tag is the
 *     exception: PIL's TIFF reader applies it, so we do too.)
 *   - No colour management (ICC profiles and PNG gamma are ignored, as PIL does by default).
 *   - Decoded pixels equal PIL's (the golden test checks every format; JPEG with the same
 *     libjpeg-turbo build, Debian 12's 2.1.5, including Adobe CMYK JPEGs; WebP with libwebp 1.2.4;
 *     TIFF with libtiff 4.5).
 *   - 16-bit PNGs are reduced to 8 bits by keeping the high byte (PIL does the same for RGB(A);
 *     PIL opens 16-bit greyscale as mode "I" and clips it when converting, which differs).
 *   - Transparent GIF pixels: stb gives black where PIL gives the palette colour of the
 *     transparent index. Opaque GIFs match.
 *   - WebP: lossy and lossless, with or without alpha (dropped); animated WebP yields its first
 *     frame (through libwebp's animation decoder, as PIL does — not an error).
 *   - TIFF: the first image; 8-bit grey (MinIsBlack / MinIsWhite), palette, RGB and RGBA (and
 *     grey / palette + alpha), strips or tiles, contiguous or separate planes, compression none,
 *     LZW, Deflate or PackBits. Premultiplied alpha is unpremultiplied as PIL does. Other bit
 *     depths, signed / float samples, CMYK / YCbCr / Lab and other compressions (JPEG, CCITT...)
 *     are refused with an error naming what is unsupported.
 *   - PPM / PGM: P6 / P5 binary and P3 / P2 ASCII, any maxval 1..65535, scaled to 8 bits with
 *     PIL's rounding. 16-bit PPM scales to 0..255 as PIL does; 16-bit PGM (maxval > 255) is, like
 *     PIL's, scaled to 0..65535 and then CLIPPED to 255 (PIL's mode "I" -> "RGB"), which saturates
 *     most pixels — matched on purpose, convert such files to 8 bits first. PBM (P1 / P4) and PAM
 *     (P7) are refused.
 *
 * Errors (unreadable or empty file, unknown format, corrupt or truncated data, zero or absurd
 * dimensions, unsupported variants) throw tgpt::Error naming the file and the decoder's reason;
 * libtiff's messages go into the error, never to stderr. Images with more than kMaxImagePixels
 * pixels are refused from their header, before decoding (decompression-bomb guard).
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace tgpt {

// 2^28 pixels (16384 x 16384): more than that is refused before any pixel is decoded.
inline constexpr int64_t kMaxImagePixels = int64_t{1} << 28;

// An 8-bit RGB image, row-major [height, width, 3].
struct Image {
  int64_t height = 0;
  int64_t width = 0;
  std::vector<uint8_t> pixels;  // [height, width, 3]

  Image() = default;
  Image(int64_t h, int64_t w);  // zero-filled; h, w >= 0 and h * w <= kMaxImagePixels

  uint8_t* row(int64_t y) { return pixels.data() + y * width * 3; }
  const uint8_t* row(int64_t y) const { return pixels.data() + y * width * 3; }
  uint8_t* at(int64_t y, int64_t x) { return row(y) + x * 3; }
  const uint8_t* at(int64_t y, int64_t x) const { return row(y) + x * 3; }
  bool empty() const { return height == 0 || width == 0; }
};

// A rectangle inside an image: rows [top, top + height), columns [left, left + width).
struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

// Decodes an image file. `path` is only used for reading and in error messages.
Image decode_image_file(const std::string& path);

// Decodes an encoded image held in memory; `name` identifies it in error messages.
Image decode_image_memory(const uint8_t* data, size_t size, const std::string& name = "<memory>");

// Image <-> u8 tensor [H, W, 3] (copies).
Tensor image_to_tensor(const Image& img);
Image image_from_tensor(const Tensor& t);

}  // namespace tgpt

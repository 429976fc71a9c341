/*
 * test_image.cpp — the image pipeline: decoding (stb_image) against PIL, PIL-exact bicubic resize,
 * CLIP center-crop preprocessing against torchvision, RandomResizedCrop + flip, parallel batch
 * preprocessing, and the errors for bad files and bad arguments.
 *
 * Golden fixtures come from tests/golden/gen_resize.py (Pillow; torchvision optional). Tests that
 * need them skip when Pillow was not available. Files for the other tests are written here with
 * stb_image_write.
 */
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "data/image.h"
#include "data/preprocess.h"
#include "data/resize.h"
#include "base/parallel.h"
#include "tests/test_util.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wpedantic"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

using namespace tgpt;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot open " << p;
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

void write_bytes(const fs::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << "cannot write " << p;
}

Image image_from_bytes(const std::vector<uint8_t>& bytes, int64_t h, int64_t w) {
  Image img(h, w);
  EXPECT_EQ(bytes.size(), img.pixels.size());
  std::memcpy(img.pixels.data(), bytes.data(), std::min(bytes.size(), img.pixels.size()));
  return img;
}

Image random_image(int64_t h, int64_t w, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Image img(h, w);
  for (uint8_t& p : img.pixels) p = static_cast<uint8_t>(rng() & 0xff);
  return img;
}

// Encodes with stb_image_write into memory: "png", "bmp" (RGB or 1/2/4 channels as given).
std::vector<uint8_t> encode(const std::string& fmt, const uint8_t* px, int w, int h, int comp) {
  std::vector<uint8_t> out;
  auto sink = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  int ok = fmt == "png" ? stbi_write_png_to_func(sink, &out, w, h, comp, px, w * comp)
                        : stbi_write_bmp_to_func(sink, &out, w, h, comp, px);
  EXPECT_TRUE(ok) << "stb_image_write failed for " << fmt;
  return out;
}

// A scratch directory unique to this process and test.
fs::path scratch_dir(const std::string& test) {
  fs::path d =
      fs::temp_directory_path() / ("tgpt_test_image_" + std::to_string(getpid()) + "_" + test);
  fs::create_directories(d);
  return d;
}

// Runs f, expects a tgpt::Error whose message contains every one of `parts`.
template <typename F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "expected tgpt::Error containing '" << parts.front() << "'";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const std::string& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "message '" << msg << "' lacks '" << p << "'";
  }
}

// A PNG whose IHDR declares w x h 8-bit greyscale, followed by no image data (stb does not check
// chunk CRCs, so a zero CRC is fine for header-level tests).
std::vector<uint8_t> png_header_only(uint32_t w, uint32_t h) {
  std::vector<uint8_t> b = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a,
                            0,    0,   0,   13,  'I',  'H',  'D',  'R'};
  for (uint32_t v : {w, h})
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
  for (uint8_t v : {8, 0, 0, 0, 0})
    b.push_back(v);                            // depth 8, greyscale, deflate, filter, no interlace
  for (int i = 0; i < 4; ++i) b.push_back(0);  // CRC
  return b;
}

// A little-endian TIFF with one strip of `strip_bytes` bytes at offset 8 (zeros) and an IFD of
// single-valued SHORT / LONG entries (tag, value) after it; StripOffsets / StripByteCounts added.
std::vector<uint8_t> tiff_with_tags(std::vector<std::pair<uint16_t, uint32_t>> tags,
                                    uint32_t strip_bytes, uint32_t strip_offset = 8) {
  std::vector<uint8_t> b(8 + strip_bytes + (strip_bytes & 1), 0);
  b[0] = b[1] = 'I';
  b[2] = 42;
  const uint32_t ifd = static_cast<uint32_t>(b.size());
  for (int i = 0; i < 4; ++i) b[4 + i] = static_cast<uint8_t>(ifd >> (8 * i));
  tags.emplace_back(273, strip_offset);
  tags.emplace_back(279, strip_bytes);
  std::sort(tags.begin(), tags.end());
  auto put16 = [&](uint32_t v) {
    b.push_back(static_cast<uint8_t>(v));
    b.push_back(static_cast<uint8_t>(v >> 8));
  };
  auto put32 = [&](uint32_t v) {
    put16(v & 0xffff);
    put16(v >> 16);
  };
  put16(static_cast<uint32_t>(tags.size()));
  for (auto [tag, value] : tags) {
    const bool is_long = tag == 256 || tag == 257 || tag == 273 || tag == 278 || tag == 279;
    put16(tag);
    put16(is_long ? 4 : 3);
    put32(1);
    if (is_long) {
      put32(value);
    } else {
      put16(value);
      put16(0);
    }
  }
  put32(0);
  return b;
}

// 8-bit RGB w x h, uncompressed, one strip holding all pixels; `extra` tags override.
std::vector<uint8_t> tiff_rgb(uint32_t w, uint32_t h,
                              const std::vector<std::pair<uint16_t, uint32_t>>& extra = {},
                              uint32_t strip_bytes = 0) {
  std::vector<std::pair<uint16_t, uint32_t>> tags = {{256, w}, {257, h}, {258, 8}, {259, 1},
                                                     {262, 2}, {277, 3}, {278, h}};
  for (auto [tag, value] : extra) {
    auto it = std::find_if(tags.begin(), tags.end(), [&](auto& t) { return t.first == tag; });
    if (it != tags.end())
      it->second = value;
    else
      tags.emplace_back(tag, value);
  }
  if (strip_bytes == 0) strip_bytes = w * h * 3;
  return tiff_with_tags(tags, strip_bytes);
}

std::vector<uint8_t> bytes_of(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

nlohmann::json load_manifest() {
  fs::path m = fs::path(test::golden_dir()) / "image" / "manifest.json";
  if (test::golden_dir().empty() || !fs::exists(m)) return nullptr;
  std::ifstream f(m);
  return nlohmann::json::parse(f);
}

#define REQUIRE_GOLDEN(manifest)                                                           \
  if ((manifest).is_null())                                                                \
  GTEST_SKIP() << "image fixtures not found in TGPT_GOLDEN_DIR (run ctest; needs Pillow, " \
                  "python3-pil)"

}  // namespace

// ---- golden: resize, crop and the full CLIP transform against PIL / torchvision
// -------------------

TEST(ImageGolden, BicubicResizeIsBitExactWithPIL) {
  nlohmann::json m = load_manifest();
  REQUIRE_GOLDEN(m);
  const fs::path dir = fs::path(test::golden_dir()) / "image";
  int n_cases = 0;
  for (const auto& c : m["cases"]) {
    const std::string name = c["name"];
    const int64_t h = c["h"], w = c["w"], oh = c["out_h"], ow = c["out_w"];
    Image in = image_from_bytes(read_bytes(dir / c["input"].get<std::string>()), h, w);
    std::vector<uint8_t> want = read_bytes(dir / c["resized"].get<std::string>());
    Image got = resize_bicubic(in, oh, ow);
    ASSERT_EQ(got.height, oh) << name;
    ASSERT_EQ(got.width, ow) << name;
    ASSERT_EQ(got.pixels.size(), want.size()) << name;
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < want.size(); ++i)
      if (got.pixels[i] != want[i] && bad++ == 0) first = i;
    EXPECT_EQ(bad, 0u) << name << ": " << bad << " of " << want.size()
                       << " bytes differ from PIL; first at byte " << first << " (got "
                       << int(got.pixels[first]) << ", PIL " << int(want[first]) << ")";
    ++n_cases;
  }
  EXPECT_GE(n_cases, 10);
}

TEST(ImageGolden, ResizeSizeAndCropOffsetsMatchTorchvision) {
  nlohmann::json m = load_manifest();
  REQUIRE_GOLDEN(m);
  int n_cases = 0;
  for (const auto& c : m["cases"]) {
    if (!c.contains("crop")) continue;
    int64_t rh = 0, rw = 0;
    shorter_side_resize_size(c["h"], c["w"], c["crop"], &rh, &rw);
    EXPECT_EQ(rh, c["out_h"].get<int64_t>()) << c["name"];
    EXPECT_EQ(rw, c["out_w"].get<int64_t>()) << c["name"];
    CropBox box = center_crop_box(rh, rw, c["crop"], c["crop"]);
    EXPECT_EQ(box.top, c["crop_top"].get<int64_t>()) << c["name"];
    EXPECT_EQ(box.left, c["crop_left"].get<int64_t>()) << c["name"];
    ++n_cases;
  }
  EXPECT_GE(n_cases, 10);
}

TEST(ImageGolden, ClipPreprocessMatchesTorchvision) {
  nlohmann::json m = load_manifest();
  REQUIRE_GOLDEN(m);
  if (!m["torchvision"].get<bool>()) GTEST_SKIP() << "fixtures were made without torchvision";
  const fs::path dir = fs::path(test::golden_dir()) / "image";
  double worst = 0;
  int n_cases = 0;
  for (const auto& c : m["cases"]) {
    if (!c.contains("clip")) continue;
    const int64_t n = c["crop"];
    Image in = image_from_bytes(read_bytes(dir / c["input"].get<std::string>()), c["h"], c["w"]);
    Tensor got = clip_preprocess(in, n);
    ASSERT_EQ(got.shape(), Shape({3, n, n}));
    std::vector<uint8_t> raw = read_bytes(dir / c["clip"].get<std::string>());
    ASSERT_EQ(raw.size(), static_cast<size_t>(3 * n * n) * sizeof(float));
    const float* want = reinterpret_cast<const float*>(raw.data());
    const float* g = got.data<float>();
    double err = 0;
    for (int64_t i = 0; i < 3 * n * n; ++i) err = std::max(err, double(std::abs(g[i] - want[i])));
    EXPECT_LE(err, 1e-6) << c["name"];
    worst = std::max(worst, err);
    ++n_cases;
  }
  EXPECT_GE(n_cases, 10);
  std::printf("clip preprocess vs torchvision: %d images, max |diff| = %g\n", n_cases, worst);
}

TEST(ImageGolden, DecodeMatchesPIL) {
  nlohmann::json m = load_manifest();
  REQUIRE_GOLDEN(m);
  const fs::path dir = fs::path(test::golden_dir()) / "image";
  // Every file must decode to PIL's pixels exactly: PNG, BMP and GIF through stb_image, JPEG
  // (4:2:0, 4:2:2, 4:4:4, grey, progressive, Adobe CMYK) through the same libjpeg-turbo as PIL,
  // WebP (lossy, lossless, alpha, animated) through the same libwebp, TIFF (strips, tiles, planar,
  // none / LZW / Deflate / PackBits, grey, palette, RGB(A), premultiplied alpha, orientations)
  // through libtiff, PPM / PGM (binary and ASCII, maxval 2..65535) through our reader.
  int n_files = 0;
  for (const auto& d : m["decode"]) {
    const std::string file = d["file"];
    Image got = decode_image_file((dir / file).string());
    ASSERT_EQ(got.height, d["h"].get<int64_t>()) << file;
    ASSERT_EQ(got.width, d["w"].get<int64_t>()) << file;
    std::vector<uint8_t> want = read_bytes(dir / d["decoded"].get<std::string>());
    ASSERT_EQ(got.pixels.size(), want.size()) << file;
    int maxdiff = 0;
    for (size_t i = 0; i < want.size(); ++i)
      maxdiff = std::max(maxdiff, std::abs(int(got.pixels[i]) - int(want[i])));
    EXPECT_TRUE(d["exact"].get<bool>()) << file;
    EXPECT_EQ(maxdiff, 0) << file << " differs from PIL's decode";
    // The in-memory path gives the same pixels; the file cut short is an error (as in PIL).
    std::vector<uint8_t> enc = read_bytes(dir / file);
    EXPECT_EQ(decode_image_memory(enc.data(), enc.size(), file).pixels, got.pixels) << file;
    const size_t cut = enc.size() * 3 / 5;
    expect_error([&] { decode_image_memory(enc.data(), cut, file); }, {file});
    ++n_files;
  }
  EXPECT_GE(n_files, 10);
  // The WebP, TIFF and PPM/PGM variants are all there (WebP only when Pillow has libwebp).
  int n_new = 0;
  for (const auto& d : m["decode"]) {
    const std::string ext = fs::path(d["file"].get<std::string>()).extension().string();
    n_new += ext == ".webp" || ext == ".tif" || ext == ".ppm" || ext == ".pgm";
  }
  EXPECT_GE(n_new, 40);
}

// ---- resize and crop properties (no fixtures needed) --------------------------------------------

TEST(ImageResize, TapsAreNormalisedAndInBounds) {
  for (auto [in, out] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 224}, {7, 224}, {224, 224}, {1000, 224}, {37, 50}, {500, 3}, {1000, 1}}) {
    ResampleTaps t = bicubic_taps(in, out);
    for (int64_t i = 0; i < out; ++i) {
      ASSERT_GE(t.first[i], 0);
      ASSERT_GE(t.count[i], 1);
      ASSERT_LE(t.count[i], t.ksize);
      ASSERT_LE(t.first[i] + t.count[i], in);
      int64_t sum = 0;
      for (int64_t k = 0; k < t.ksize; ++k) sum += t.weights[i * t.ksize + k];
      // each weight is rounded separately: the sum is 2^22 up to half a unit per tap
      EXPECT_LE(std::abs(sum - (int64_t{1} << 22)), t.count[i]) << in << "->" << out << " @" << i;
    }
  }
  EXPECT_THROW(bicubic_taps(0, 5), Error);
  EXPECT_THROW(bicubic_taps(5, 0), Error);
}

TEST(ImageResize, ConstantImageStaysConstantAndIdentityIsExact) {
  Image c(31, 17);
  for (int64_t i = 0; i < c.height * c.width; ++i) {
    c.pixels[3 * i] = 0;
    c.pixels[3 * i + 1] = 200;
    c.pixels[3 * i + 2] = 255;
  }
  for (auto [oh, ow] :
       std::vector<std::pair<int64_t, int64_t>>{{224, 224}, {5, 3}, {31, 300}, {1, 17}}) {
    Image r = resize_bicubic(c, oh, ow);
    ASSERT_EQ(r.height, oh);
    ASSERT_EQ(r.width, ow);
    for (int64_t i = 0; i < oh * ow; ++i) {
      ASSERT_EQ(r.pixels[3 * i], 0);
      ASSERT_EQ(r.pixels[3 * i + 1], 200);
      ASSERT_EQ(r.pixels[3 * i + 2], 255);
    }
  }
  Image x = random_image(13, 29, 7);
  EXPECT_EQ(resize_bicubic(x, 13, 29).pixels, x.pixels);
}

TEST(ImageResize, CroppedResizeEqualsResizeThenCrop) {
  Image x = random_image(41, 67, 17);
  std::mt19937_64 rng(2);
  for (auto [oh, ow] : std::vector<std::pair<int64_t, int64_t>>{
           {224, 300}, {41, 30}, {20, 67}, {41, 67}, {9, 200}, {1, 1}}) {
    Image full = resize_bicubic(x, oh, ow);
    for (int k = 0; k < 6; ++k) {
      CropBox b;
      b.height = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(oh));
      b.width = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(ow));
      b.top = static_cast<int64_t>(rng() % static_cast<uint64_t>(oh - b.height + 1));
      b.left = static_cast<int64_t>(rng() % static_cast<uint64_t>(ow - b.width + 1));
      EXPECT_EQ(resize_bicubic_crop(x, oh, ow, b).pixels, crop_image(full, b).pixels)
          << oh << "x" << ow << " box " << b.top << "," << b.left << " " << b.height << "x"
          << b.width;
    }
  }
  expect_error([&] { resize_bicubic_crop(x, 10, 10, CropBox{5, 0, 6, 10}); }, {"outside"});
}

TEST(ImageResize, ResultDoesNotDependOnThreadCount) {
  Image x = random_image(301, 257, 11);
  const int saved = num_threads();
  set_num_threads(1);
  Image a = resize_bicubic(x, 224, 191);
  set_num_threads(std::max(2, saved));
  Image b = resize_bicubic(x, 224, 191);
  set_num_threads(saved);
  EXPECT_EQ(a.pixels, b.pixels);
}

TEST(ImagePreprocess, SizesAndCenterCropRounding) {
  int64_t h = 0, w = 0;
  shorter_side_resize_size(240, 320, 224, &h, &w);  // int(224 * 320 / 240) = int(298.67)
  EXPECT_EQ(h, 224);
  EXPECT_EQ(w, 298);
  shorter_side_resize_size(320, 240, 224, &h, &w);
  EXPECT_EQ(h, 298);
  EXPECT_EQ(w, 224);
  shorter_side_resize_size(500, 500, 224, &h, &w);
  EXPECT_EQ(h, 224);
  EXPECT_EQ(w, 224);
  // Python round() is half to even: (227-224)/2 = 1.5 -> 2, 0.5 -> 0, 2.5 -> 2, 3.5 -> 4.
  EXPECT_EQ(center_crop_box(224, 227, 224, 224).left, 2);
  EXPECT_EQ(center_crop_box(224, 225, 224, 224).left, 0);
  EXPECT_EQ(center_crop_box(229, 224, 224, 224).top, 2);
  EXPECT_EQ(center_crop_box(231, 224, 224, 224).top, 4);
  EXPECT_EQ(center_crop_box(230, 224, 224, 224).top, 3);
  EXPECT_THROW(center_crop_box(100, 300, 224, 224), Error);
}

TEST(ImagePreprocess, NormalisationAndCrop) {
  Image x = random_image(224, 224, 3);
  Tensor t = clip_preprocess(x, 224);  // resize and crop are the identity here
  ASSERT_EQ(t.shape(), Shape({3, 224, 224}));
  const float* p = t.data<float>();
  for (int c = 0; c < 3; ++c)
    for (int64_t i = 0; i < 224 * 224; i += 97) {
      double v = x.pixels[3 * i + c] / 255.0;
      EXPECT_NEAR(p[c * 224 * 224 + i], (v - kClipMean[c]) / kClipStd[c], 1e-6);
    }
  Image y = random_image(5, 7, 4);
  Image cr = crop_image(y, CropBox{1, 2, 3, 4});
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t col = 0; col < 4; ++col)
      for (int ch = 0; ch < 3; ++ch) EXPECT_EQ(cr.at(r, col)[ch], y.at(r + 1, col + 2)[ch]);
  Image f = hflip_image(y);
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t col = 0; col < 7; ++col)
      for (int ch = 0; ch < 3; ++ch) EXPECT_EQ(f.at(r, col)[ch], y.at(r, 6 - col)[ch]);
}

// ---- training augmentation ----------------------------------------------------------------------

TEST(ImageAugment, RandomResizedCropBoxes) {
  int fallbacks = 0;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    std::mt19937_64 rng(seed);
    const int64_t h = 100 + static_cast<int64_t>(seed % 7) * 50,
                  w = 480 - static_cast<int64_t>(seed % 5) * 60;
    CropBox b = random_resized_crop_box(h, w, rng);
    ASSERT_GE(b.top, 0);
    ASSERT_GE(b.left, 0);
    ASSERT_GE(b.height, 1);
    ASSERT_GE(b.width, 1);
    ASSERT_LE(b.top + b.height, h);
    ASSERT_LE(b.left + b.width, w);
    const double area = double(b.height) * b.width / (double(h) * w);
    const double ratio = double(b.width) / b.height;
    // rounding of w and h to integers loosens the bounds slightly for small crops
    if (area >= 0.07 && area <= 1.0 + 1e-9 && ratio >= 0.7 && ratio <= 1.4) continue;
    ++fallbacks;
  }
  EXPECT_EQ(fallbacks, 0);
  // Same seed, same box; 1000 wide x 7 high can never fit a random crop: center fallback with
  // w = round(7 * 4/3) = 9, left = (1000 - 9) // 2.
  std::mt19937_64 r1(5), r2(5);
  CropBox a = random_resized_crop_box(300, 400, r1), b = random_resized_crop_box(300, 400, r2);
  EXPECT_TRUE(a.top == b.top && a.left == b.left && a.height == b.height && a.width == b.width);
  CropBox f = random_resized_crop_box(7, 1000, r1);
  EXPECT_EQ(f.height, 7);
  EXPECT_EQ(f.width, 9);
  EXPECT_EQ(f.top, 0);
  EXPECT_EQ(f.left, 495);
  CropBox g = random_resized_crop_box(1000, 7, r1);  // tall: h = round(7 / (3/4)) = 9
  EXPECT_EQ(g.width, 7);
  EXPECT_EQ(g.height, 9);
  EXPECT_EQ(g.top, 495);
}

TEST(ImageAugment, CropResizeFlipIsReproducibleAndComposesThePieces) {
  Image x = random_image(150, 210, 9);
  int flips = 0;
  const int n_seeds = 200;
  for (uint64_t seed = 0; seed < n_seeds; ++seed) {
    std::mt19937_64 r1(seed), r2(seed);
    Image out = random_resized_crop_flip(x, 32, r1);
    ASSERT_EQ(out.height, 32);
    ASSERT_EQ(out.width, 32);
    // rebuild it from the pieces with the same random stream
    CropBox box = random_resized_crop_box(x.height, x.width, r2);
    Image plain = resize_bicubic(crop_image(x, box), 32, 32);
    if (out.pixels == plain.pixels) continue;
    EXPECT_EQ(out.pixels, hflip_image(plain).pixels) << "seed " << seed;
    ++flips;
  }
  // p = 0.5: 200 draws land in [60, 140] with overwhelming probability (> 8 sigma).
  EXPECT_GT(flips, 60);
  EXPECT_LT(flips, 140);
  std::mt19937_64 a(42), b(42), c(43);
  Tensor ta = clip_train_preprocess(x, 64, a), tb = clip_train_preprocess(x, 64, b);
  Tensor tc = clip_train_preprocess(x, 64, c);
  EXPECT_EQ(ta.to_float_vector(), tb.to_float_vector());
  EXPECT_NE(ta.to_float_vector(), tc.to_float_vector());
}

// ---- decoding without fixtures ------------------------------------------------------------------

// Dassl's INPUT.TRANSFORMS: which parts run, the crop's scale range, and the errors.
TEST(ImageAugment, TrainTransformFollowsTheConfigNames) {
  const TrainTransform official =
      train_transform_from_names({"random_resized_crop", "random_flip", "normalize"}, {0.08, 1.0});
  EXPECT_TRUE(official.random_resized_crop);
  EXPECT_TRUE(official.random_flip);
  const TrainTransform plain = train_transform_from_names({"normalize"}, {0.5, 0.9});
  EXPECT_FALSE(plain.random_resized_crop);
  EXPECT_FALSE(plain.random_flip);
  const TrainTransform crop = train_transform_from_names({"random_resized_crop"}, {0.5, 0.9});
  EXPECT_TRUE(crop.random_resized_crop);
  EXPECT_FALSE(crop.random_flip);
  EXPECT_EQ(crop.crop_scale_min, 0.5);
  EXPECT_EQ(crop.crop_scale_max, 0.9);
  expect_error([] { train_transform_from_names({"colorjitter"}, {0.08, 1.0}); },
               {"colorjitter", "not supported", "random_resized_crop"});
  expect_error([] { train_transform_from_names({}, {0.9, 0.5}); }, {"RRCROP_SCALE"});
  expect_error([] { train_transform_from_names({}, {0.0, 1.0}); }, {"RRCROP_SCALE"});
  expect_error([] { train_transform_from_names({}, {0.5}); }, {"RRCROP_SCALE", "two"});

  Image x = random_image(40, 56, 11);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    // The default is the official augmentation, draw for draw.
    std::mt19937_64 r1(seed), r2(seed), r3(seed), r4(seed);
    EXPECT_EQ(random_train_view(x, 24, official, r1).pixels,
              random_resized_crop_flip(x, 24, r2).pixels);
    // Neither crop nor flip: Resize((n, n)), whatever the generator.
    EXPECT_EQ(random_train_view(x, 24, plain, r3).pixels, resize_bicubic(x, 24, 24).pixels);
    // A crop with the given scale range and no flip.
    std::mt19937_64 r5(seed);
    const CropBox box = random_resized_crop_box(x.height, x.width, r5, 0.5, 0.9);
    EXPECT_EQ(random_train_view(x, 24, crop, r4).pixels,
              resize_bicubic(crop_image(x, box), 24, 24).pixels);
  }
}

TEST(ImageDecode, LosslessRoundTripAndChannelConversion) {
  Image x = random_image(19, 23, 21);
  std::vector<uint8_t> png = encode("png", x.pixels.data(), 23, 19, 3);
  std::vector<uint8_t> bmp = encode("bmp", x.pixels.data(), 23, 19, 3);
  EXPECT_EQ(decode_image_memory(png.data(), png.size(), "x.png").pixels, x.pixels);
  EXPECT_EQ(decode_image_memory(bmp.data(), bmp.size(), "x.bmp").pixels, x.pixels);
  // grey -> replicated; grey+alpha and RGBA -> alpha dropped (PIL convert("RGB"))
  std::mt19937_64 rng(1);
  std::vector<uint8_t> g(19 * 23), ga(19 * 23 * 2), rgba(19 * 23 * 4);
  for (auto* v : {&g, &ga, &rgba})
    for (uint8_t& p : *v) p = static_cast<uint8_t>(rng() & 0xff);
  for (int comp : {1, 2, 4}) {
    const std::vector<uint8_t>& src = comp == 1 ? g : comp == 2 ? ga : rgba;
    std::vector<uint8_t> enc = encode("png", src.data(), 23, 19, comp);
    Image d = decode_image_memory(enc.data(), enc.size(), "c.png");
    ASSERT_EQ(d.height, 19);
    ASSERT_EQ(d.width, 23);
    for (int64_t i = 0; i < 19 * 23; ++i)
      for (int c = 0; c < 3; ++c) {
        const uint8_t want = comp <= 2 ? src[i * comp] : src[i * 4 + c];
        ASSERT_EQ(d.pixels[3 * i + c], want) << "comp " << comp << " pixel " << i;
      }
  }
  Tensor t = image_to_tensor(x);
  EXPECT_EQ(t.shape(), Shape({19, 23, 3}));
  EXPECT_EQ(image_from_tensor(t).pixels, x.pixels);
  EXPECT_THROW(image_from_tensor(Tensor::zeros({4, 4, 3})), Error);
}

TEST(ImageDecode, BadFilesGiveClearErrors) {
  const fs::path dir = scratch_dir("bad");
  expect_error([&] { decode_image_file((dir / "missing.png").string()); },
               {"missing.png", "cannot open"});
  write_bytes(dir / "empty.jpg", {});
  expect_error([&] { decode_image_file((dir / "empty.jpg").string()); }, {"empty.jpg", "empty"});
  std::vector<uint8_t> junk(300);
  std::mt19937_64 rng(3);
  for (uint8_t& b : junk) b = static_cast<uint8_t>(rng() & 0xff);
  write_bytes(dir / "junk.png", junk);
  expect_error([&] { decode_image_file((dir / "junk.png").string()); },
               {"junk.png", "not a readable"});
  Image x = random_image(40, 50, 5);
  std::vector<uint8_t> png = encode("png", x.pixels.data(), 50, 40, 3);
  std::vector<uint8_t> half(png.begin(), png.begin() + static_cast<long>(png.size() / 2));
  write_bytes(dir / "truncated.png", half);
  expect_error([&] { decode_image_file((dir / "truncated.png").string()); },
               {"truncated.png", "corrupt or truncated"});
  std::vector<uint8_t> bmp = encode("bmp", x.pixels.data(), 50, 40, 3);
  std::vector<uint8_t> bmp_half(bmp.begin(), bmp.begin() + 100);
  expect_error([&] { decode_image_memory(bmp_half.data(), bmp_half.size(), "short.bmp"); },
               {"short.bmp", "truncated BMP"});
  std::vector<uint8_t> zero = png_header_only(0, 10);
  expect_error([&] { decode_image_memory(zero.data(), zero.size(), "zero.png"); }, {"zero.png"});
  std::vector<uint8_t> bomb = png_header_only(20000, 20000);  // 4e8 pixels > 2^28
  expect_error([&] { decode_image_memory(bomb.data(), bomb.size(), "bomb.png"); },
               {"bomb.png", "decompression bomb"});
  expect_error([&] { decode_image_memory(nullptr, 0, "nothing"); }, {"nothing", "empty"});
  expect_error([&] { decode_image_file(dir.string()); }, {dir.filename().string()});
  fs::remove_all(dir);
}

TEST(ImageDecode, TiffWebpPnmBadFilesGiveClearErrors) {
  auto dec = [](const std::vector<uint8_t>& b, const std::string& name) {
    return decode_image_memory(b.data(), b.size(), name);
  };
  // The hand-made TIFF itself decodes (all zeros), and with an orientation that swaps the sides.
  Image ok = dec(tiff_rgb(5, 3), "ok.tif");
  EXPECT_EQ(ok.height, 3);
  EXPECT_EQ(ok.width, 5);
  EXPECT_EQ(std::count(ok.pixels.begin(), ok.pixels.end(), 0), 45);
  EXPECT_EQ(dec(tiff_rgb(5, 3, {{274, 6}}), "rot.tif").width, 3);
  // TIFF: unsupported layouts are named; nothing is printed by libtiff.
  testing::internal::CaptureStderr();
  expect_error(
      [&] {
        dec(tiff_rgb(5, 3, {{258, 16}}, 90), "deep.tif");
      },
      {"deep.tif", "16 bits per sample", "only 8"});
  expect_error(
      [&] {
        dec(tiff_rgb(5, 3, {{339, 3}}), "float.tif");
      },
      {"float.tif", "floating point"});
  expect_error(
      [&] {
        dec(tiff_rgb(5, 3, {{262, 5}, {277, 4}}, 60), "cmyk.tif");
      },
      {"cmyk.tif", "CMYK", "not supported"});
  expect_error([&] { dec(tiff_rgb(5, 3, {{262, 6}}), "ycbcr.tif"); }, {"ycbcr.tif", "YCbCr"});
  expect_error(
      [&] {
        dec(tiff_rgb(5, 3, {{259, 7}}), "jpeg.tif");
      },
      {"jpeg.tif", "compression 7 (JPEG)", "not supported"});
  expect_error(
      [&] {
        dec(tiff_rgb(5, 3, {{258, 1}, {262, 1}, {277, 1}}, 3), "bilevel.tif");
      },
      {"bilevel.tif", "1 bits per sample"});
  expect_error(
      [&] {
        dec(tiff_rgb(5, 3, {{277, 5}}), "five.tif");
      },
      {"five.tif", "5 samples per pixel"});
  // sizes: the limit is checked before any strip is read; zero sizes are refused
  expect_error([&] { dec(tiff_rgb(100000, 100000, {}, 16), "bomb.tif"); },
               {"bomb.tif", "decompression bomb"});
  expect_error([&] { dec(tiff_rgb(0, 3, {}, 16), "zero.tif"); }, {"zero.tif"});
  // truncated strip, strip beyond the end, IFD beyond the end, header only
  std::vector<uint8_t> good = tiff_rgb(5, 3);
  expect_error(
      [&] {
        dec(tiff_with_tags({{256, 5}, {257, 3}, {258, 8}, {259, 1}, {262, 2}, {277, 3}, {278, 3}},
                           45, 4000),
            "far.tif");
      },
      {"far.tif", "corrupt or truncated TIFF"});
  std::vector<uint8_t> bad_ifd = good;
  bad_ifd[4] = 0xf0;
  bad_ifd[5] = 0xff;
  expect_error([&] { dec(bad_ifd, "ifd.tif"); }, {"ifd.tif", "not a readable TIFF"});
  expect_error([&] { dec(std::vector<uint8_t>(good.begin(), good.begin() + 8), "head.tif"); },
               {"head.tif", "TIFF"});
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");

  // WebP: a header cut short, a canvas over the limit (animated VP8X), a corrupt chunk
  std::vector<uint8_t> riff = bytes_of(std::string("RIFF\x04\0\0\0WEBP", 12));
  expect_error([&] { dec(riff, "short.webp"); }, {"short.webp", "not a readable WebP"});
  std::vector<uint8_t> vp8x = bytes_of(std::string("RIFF\x16\0\0\0WEBPVP8X\x0a\0\0\0", 20));
  for (uint8_t v : {0x02, 0, 0, 0}) vp8x.push_back(v);  // flags: animation
  for (uint32_t side : {20000u - 1, 20000u - 1})
    for (int i = 0; i < 3; ++i) vp8x.push_back(static_cast<uint8_t>(side >> (8 * i)));
  expect_error([&] { dec(vp8x, "bomb.webp"); }, {"bomb.webp", "decompression bomb"});
  std::vector<uint8_t> vp8 = bytes_of(std::string("RIFF\x14\0\0\0WEBPVP8 \x08\0\0\0", 20));
  for (int i = 0; i < 8; ++i) vp8.push_back(0xff);
  expect_error([&] { dec(vp8, "junk.webp"); }, {"junk.webp", "WebP"});

  // PPM / PGM
  auto pnm = [&](const std::string& s, const std::string& name) { return dec(bytes_of(s), name); };
  Image p = pnm("P2 3 1 4\n0 2 4\n", "ok.pgm");
  EXPECT_EQ(p.pixels, (std::vector<uint8_t>{0, 0, 0, 128, 128, 128, 255, 255, 255}));
  expect_error([&] { pnm("P6\n100000 100000\n255\n", "bomb.ppm"); },
               {"bomb.ppm", "decompression bomb"});
  expect_error([&] { pnm("P6\n0 5\n255\n", "zero.ppm"); }, {"zero.ppm", "zero-size"});
  expect_error([&] { pnm("P5\n3 2\n0\n", "m0.pgm"); }, {"m0.pgm", "maxval 0"});
  expect_error([&] { pnm("P5\n3 2\n65536\n", "mbig.pgm"); }, {"mbig.pgm", "maxval 65536"});
  expect_error([&] { pnm("P2 2 1 255 1 300\n", "over.pgm"); }, {"over.pgm", "exceeds maxval"});
  expect_error([&] { pnm("P5 x 2 255\n", "token.pgm"); }, {"token.pgm", "width"});
  expect_error([&] { pnm("P5 123456789012 2 255\n", "long.pgm"); }, {"long.pgm", "10 characters"});
  expect_error([&] { pnm(std::string("P6\n2 2\n255\n") + "abcde", "short.ppm"); },
               {"short.ppm", "truncated", "12 needed"});
  expect_error([&] { pnm("P3 2 1 255 1 2 3 4", "short_ascii.ppm"); },
               {"short_ascii.ppm", "truncated", "4 of 6"});
  expect_error([&] { pnm("P6\n", "header.ppm"); }, {"header.ppm", "truncated"});
  expect_error([&] { pnm("P4\n8 1\n\xff", "bits.pbm"); }, {"bits.pbm", "PBM", "not supported"});
}

TEST(ImageDecode, BadArgumentsGiveClearErrors) {
  Image x = random_image(10, 12, 1);
  expect_error([&] { resize_bicubic(x, 0, 5); }, {"resize_bicubic", "target size"});
  expect_error([&] { resize_bicubic(x, 5, -1); }, {"resize_bicubic"});
  expect_error([&] { resize_bicubic(Image(), 5, 5); }, {"resize_bicubic", "empty"});
  expect_error([&] { clip_preprocess(x, 0); }, {"target size"});
  std::mt19937_64 rng(0);
  expect_error([&] { random_resized_crop_flip(x, 0, rng); }, {"target size"});
  expect_error([&] { crop_image(x, CropBox{5, 5, 6, 6}); }, {"crop_image", "outside"});
  expect_error([&] { preprocess_image_files({}, 0); }, {"target size"});
  expect_error([&] { Image(1 << 20, 1 << 20); }, {"exceeds"});
}

// ---- batches ------------------------------------------------------------------------------------

TEST(ImageBatch, ParallelPreprocessingMatchesSerialAndReportsFailures) {
  const fs::path dir = scratch_dir("batch");
  std::vector<std::string> paths;
  std::vector<Image> images;
  for (int i = 0; i < 9; ++i) {
    Image x = random_image(30 + 7 * i, 61 - 3 * i, 100 + i);
    const std::string fmt = i % 2 ? "bmp" : "png";
    fs::path p = dir / ("img" + std::to_string(i) + "." + fmt);
    write_bytes(p, encode(fmt, x.pixels.data(), int(x.width), int(x.height), 3));
    paths.push_back(p.string());
    images.push_back(x);
  }
  const int64_t n = 24;
  Tensor eval = preprocess_image_files(paths, n);
  ASSERT_EQ(eval.shape(), Shape({9, 3, n, n}));
  for (int i = 0; i < 9; ++i) {
    Tensor want = clip_preprocess(images[i], n);
    Tensor got = eval.select(0, i);
    EXPECT_EQ(got.to_float_vector(), want.to_float_vector()) << paths[i];
  }
  const int saved = num_threads();
  set_num_threads(1);
  Tensor t1 = preprocess_image_files(paths, n, true, 77);
  set_num_threads(std::max(3, saved));
  Tensor t3 = preprocess_image_files(paths, n, true, 77);
  set_num_threads(saved);
  EXPECT_EQ(t1.to_float_vector(), t3.to_float_vector());
  EXPECT_NE(t1.to_float_vector(), preprocess_image_files(paths, n, true, 78).to_float_vector());

  std::vector<std::string> with_bad = paths;
  with_bad[2] = (dir / "does_not_exist.png").string();
  write_bytes(dir / "corrupt.bmp", {'B', 'M', 1, 2, 3});
  with_bad[6] = (dir / "corrupt.bmp").string();
  expect_error([&] { preprocess_image_files(with_bad, n); },
               {"2 of 9 images failed", "does_not_exist.png", "corrupt.bmp"});
  EXPECT_EQ(preprocess_image_files({}, n).shape(), Shape({0, 3, n, n}));
  fs::remove_all(dir);
}

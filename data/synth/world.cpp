/*
 * world.cpp — the synthetic world of world.h: attribute draws, the renderer, the caption writer,
 * the downstream dataset specs and the layout writer.
 */
#include "data/synth/world.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "base/error.h"
#include "base/parallel.h"
#include "data/dataset.h"
#include "data/synth/png_write.h"

namespace tgpt::synth {

namespace fs = std::filesystem;

namespace {

constexpr double kPi = 3.14159265358979323846;

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

struct Rgb {
  double r, g, b;
};

// Object colours (index = Colour) and scene base colours (index = Background).
constexpr std::array<Rgb, kNumColours> kColourRgb = {{{220, 38, 38},
                                                      {246, 140, 28},
                                                      {242, 222, 44},
                                                      {52, 184, 72},
                                                      {44, 92, 232},
                                                      {142, 62, 204},
                                                      {246, 126, 184},
                                                      {246, 246, 246}}};
constexpr std::array<Rgb, kNumBackgrounds> kBackgroundRgb = {
    {{72, 138, 56}, {214, 194, 146}, {234, 238, 245}, {44, 96, 170}, {16, 20, 50}, {150, 66, 46}}};
// An object colour closer than this (Euclidean, 0-255 units) to its scene's base colour is
// redrawn: it would hardly be visible.
constexpr double kMinContrast = 100.0;

double colour_distance(Colour c, Background b) {
  const Rgb& x = kColourRgb[static_cast<int>(c)];
  const Rgb& y = kBackgroundRgb[static_cast<int>(b)];
  return std::sqrt((x.r - y.r) * (x.r - y.r) + (x.g - y.g) * (x.g - y.g) +
                   (x.b - y.b) * (x.b - y.b));
}

template <typename T>
const T& pick(const std::vector<T>& v, WorldRng& rng) {
  return v[static_cast<size_t>(rng.below(static_cast<int>(v.size())))];
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Names

const char* shape_name(Shape s) {
  static const char* k[] = {"circle", "square", "triangle", "star",
                            "cross",  "ring",   "crescent", "heart"};
  return k[static_cast<int>(s)];
}
const char* colour_name(Colour c) {
  static const char* k[] = {"red", "orange", "yellow", "green", "blue", "purple", "pink", "white"};
  return k[static_cast<int>(c)];
}
const char* pattern_name(Pattern p) {
  static const char* k[] = {"solid", "striped", "dotted", "checkered"};
  return k[static_cast<int>(p)];
}
const char* size_name(Size s) {
  static const char* k[] = {"small", "medium", "large"};
  return k[static_cast<int>(s)];
}
const char* background_name(Background b) {
  static const char* k[] = {"grass", "sand", "snow", "water", "night sky", "brick wall"};
  return k[static_cast<int>(b)];
}
const char* position_name(int position) {
  static const char* k[] = {"top left", "top",         "top right", "left",        "center",
                            "right",    "bottom left", "bottom",    "bottom right"};
  TGPT_CHECK(position >= 0 && position < kNumPositions, "position ", position, " out of 0..8");
  return k[position];
}
const char* count_word(int count) {
  static const char* k[] = {"one", "two", "three", "four"};
  TGPT_CHECK(count >= 1 && count <= kMaxCount, "count ", count, " out of 1..4");
  return k[count - 1];
}

// ---------------------------------------------------------------------------------------------
// Random numbers

double WorldRng::uniform() {
  return static_cast<double>(engine_() >> 11) * 0x1.0p-53;
}
double WorldRng::uniform(double lo, double hi) {
  return lo + (hi - lo) * uniform();
}
int WorldRng::below(int n) {
  TGPT_CHECK(n > 0, "WorldRng::below(", n, ")");
  const uint64_t un = static_cast<uint64_t>(n);
  const uint64_t limit = UINT64_MAX - UINT64_MAX % un;  // reject the incomplete last block
  uint64_t x;
  do x = engine_();
  while (x >= limit);
  return static_cast<int>(x % un);
}
double WorldRng::normal() {
  const double u1 = 1.0 - uniform();  // (0, 1]
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
}

uint64_t item_seed(uint64_t world_seed, uint64_t stream, uint64_t cls, uint64_t index) {
  uint64_t h = splitmix64(world_seed ^ 0x7467707473796E74ull);  // "tgptsynt"
  h = splitmix64(h ^ stream);
  h = splitmix64(h ^ cls);
  return splitmix64(h ^ index);
}

// ---------------------------------------------------------------------------------------------
// Rendering

namespace {

// Hash of a lattice point -> [0, 1).
double lattice(uint64_t key, int64_t ix, int64_t iy) {
  const uint64_t h = splitmix64(key ^ splitmix64(static_cast<uint64_t>(ix) * 0x9E3779B1ull +
                                                 static_cast<uint64_t>(iy) * 0x85EBCA77ull));
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

// Smooth value noise in [0, 1) with lattice spacing (sx, sy) in the same units as (x, y).
double value_noise(uint64_t key, double x, double y, double sx, double sy) {
  const double fx = x / sx, fy = y / sy;
  const double x0 = std::floor(fx), y0 = std::floor(fy);
  double tx = fx - x0, ty = fy - y0;
  tx = tx * tx * (3 - 2 * tx);
  ty = ty * ty * (3 - 2 * ty);
  const auto ix = static_cast<int64_t>(x0), iy = static_cast<int64_t>(y0);
  const double a = lattice(key, ix, iy), b = lattice(key, ix + 1, iy);
  const double c = lattice(key, ix, iy + 1), d = lattice(key, ix + 1, iy + 1);
  return (a + (b - a) * tx) + ((c + (d - c) * tx) - (a + (b - a) * tx)) * ty;
}

// Paints the scene texture. Coordinates are scaled to a 64-pixel image (u = x * 64 / size), so a
// scene looks the same at every resolution.
void paint_background(std::vector<double>& px, int64_t n, Background bg, WorldRng& rng) {
  const uint64_t key = rng.bits();
  const double phase = rng.uniform(0, 2 * kPi), tone = rng.uniform(0.92, 1.08);
  const Rgb base = kBackgroundRgb[static_cast<int>(bg)];
  const double scale = 64.0 / static_cast<double>(n);
  for (int64_t y = 0; y < n; ++y) {
    for (int64_t x = 0; x < n; ++x) {
      const double u = (static_cast<double>(x) + 0.5) * scale;
      const double v = (static_cast<double>(y) + 0.5) * scale;
      Rgb c = base;
      double k = tone;  // brightness factor
      switch (bg) {
        case Background::Grass:  // vertical blades
          k *= 0.75 + 0.45 * value_noise(key, u, v, 1.3, 7.0) +
               0.12 * (value_noise(key + 1, u, v, 9.0, 9.0) - 0.5);
          break;
        case Background::Sand:  // fine speckle on soft dunes
          k *= 0.94 + 0.10 * value_noise(key, u, v, 14.0, 6.0) +
               0.10 * (lattice(key + 1, static_cast<int64_t>(u * 2), static_cast<int64_t>(v * 2)) -
                       0.5);
          break;
        case Background::Snow:  // soft bluish shading
          k *= 0.95 + 0.06 * value_noise(key, u, v, 16.0, 16.0);
          c.b = std::min(255.0, c.b + 6 * value_noise(key + 1, u, v, 10.0, 10.0));
          break;
        case Background::Water:  // horizontal waves
          k *= 0.88 + 0.16 * (0.5 + 0.5 * std::sin(v * 0.9 + phase +
                                                   3.0 * value_noise(key, u, v, 12.0, 12.0)));
          break;
        case Background::Night: {  // darker towards the top, sparse stars
          k *= 0.7 + 0.5 * v / 64.0;
          const double star = lattice(key, static_cast<int64_t>(u), static_cast<int64_t>(v));
          if (star < 0.012) c = {225, 225, 205}, k = 0.7 + 20.0 * star;
          break;
        }
        case Background::Brick: {  // bricks 8 x 4 (64-px units), offset rows, light mortar
          const double bh = 5.0, bw = 11.0;
          const int64_t row = static_cast<int64_t>(std::floor(v / bh));
          const double shift = (row % 2) ? bw / 2 : 0.0;
          const double bu = u + shift + phase;
          const int64_t col = static_cast<int64_t>(std::floor(bu / bw));
          const double fu = bu - static_cast<double>(col) * bw;
          const double fv = v - static_cast<double>(row) * bh;
          if (fu < 1.0 || fv < 1.0) {
            c = {196, 188, 172};
          } else {
            k *= 0.85 + 0.3 * lattice(key, col, row);
          }
          break;
        }
      }
      double* p = &px[static_cast<size_t>((y * n + x) * 3)];
      p[0] = c.r * k;
      p[1] = c.g * k;
      p[2] = c.b * k;
    }
  }
}

// Inside test in the object's frame: (x, y) in units of its radius, y pointing down.
bool point_in_polygon(const double* vx, const double* vy, int nv, double x, double y) {
  bool inside = false;
  for (int i = 0, j = nv - 1; i < nv; j = i++) {
    if ((vy[i] > y) != (vy[j] > y) && x < (vx[j] - vx[i]) * (y - vy[i]) / (vy[j] - vy[i]) + vx[i])
      inside = !inside;
  }
  return inside;
}

struct ShapeGeometry {
  double tri_x[3], tri_y[3];
  double star_x[10], star_y[10];
  ShapeGeometry() {
    for (int i = 0; i < 3; ++i) {
      const double a = -kPi / 2 + 2 * kPi * i / 3;
      tri_x[i] = std::cos(a) * 1.05;
      tri_y[i] = std::sin(a) * 1.05 + 0.12;
    }
    for (int i = 0; i < 10; ++i) {
      const double a = -kPi / 2 + kPi * i / 5, r = (i % 2) ? 0.45 : 1.0;
      star_x[i] = std::cos(a) * r;
      star_y[i] = std::sin(a) * r + 0.06;
    }
  }
};

bool inside_shape(Shape s, double x, double y) {
  static const ShapeGeometry g;
  switch (s) {
    case Shape::Circle: return x * x + y * y <= 1.0;
    case Shape::Square: return std::fabs(x) <= 0.82 && std::fabs(y) <= 0.82;
    case Shape::Triangle: return point_in_polygon(g.tri_x, g.tri_y, 3, x, y);
    case Shape::Star: return point_in_polygon(g.star_x, g.star_y, 10, x, y);
    case Shape::Cross:
      return (std::fabs(x) <= 0.3 && std::fabs(y) <= 0.95) ||
             (std::fabs(y) <= 0.3 && std::fabs(x) <= 0.95);
    case Shape::Ring: {
      const double r2 = x * x + y * y;
      return r2 <= 1.0 && r2 >= 0.55 * 0.55;
    }
    case Shape::Crescent:
      return x * x + y * y <= 1.0 && (x - 0.45) * (x - 0.45) + y * y > 0.8 * 0.8;
    case Shape::Heart: {
      const double hx = x * 1.2, hy = -y * 1.2 + 0.15;
      const double q = hx * hx + hy * hy - 1.0;
      return q * q * q - hx * hx * hy * hy * hy <= 0.0;
    }
  }
  return false;
}

// Whether the pattern's second colour shows at (x, y) (object frame, units of `period`).
bool pattern_mark(Pattern p, double x, double y, double phase) {
  switch (p) {
    case Pattern::Solid: return false;
    case Pattern::Striped: return (static_cast<int64_t>(std::floor(y + phase + 64.0)) & 1) != 0;
    case Pattern::Dotted: {
      const double fx = x + phase - std::floor(x + phase) - 0.5;
      const double fy = y + phase - std::floor(y + phase) - 0.5;
      return fx * fx + fy * fy <= 0.3 * 0.3;
    }
    case Pattern::Checkered:
      return ((static_cast<int64_t>(std::floor(x + phase + 64.0)) +
               static_cast<int64_t>(std::floor(y + phase + 64.0))) &
              1) != 0;
  }
  return false;
}

struct PlacedObject {
  double cx, cy, radius, cos_a, sin_a, phase, brightness;
};

double base_radius(Size s) {
  static const double k[] = {0.08, 0.12, 0.17};
  return k[static_cast<int>(s)];
}

}  // namespace

Image render_scene(const SceneAttributes& a, int64_t image_size, WorldRng& rng) {
  TGPT_CHECK(image_size >= 16 && image_size <= 512, "image size ", image_size, " out of 16..512");
  TGPT_CHECK(a.count >= 1 && a.count <= kMaxCount, "object count ", a.count, " out of 1..4");
  TGPT_CHECK(a.count > 1 || (a.position >= 0 && a.position < kNumPositions),
             "a single object needs a position 0..8 (got ", a.position, ")");
  const int64_t n = image_size;
  const double size = static_cast<double>(n);
  std::vector<double> px(static_cast<size_t>(n * n * 3));
  paint_background(px, n, a.background, rng);

  // Placement.
  std::vector<PlacedObject> objects;
  for (int i = 0; i < a.count; ++i) {
    PlacedObject o{};
    o.radius = base_radius(a.size) * size * rng.uniform(0.9, 1.1);
    const double angle = rng.uniform(-kPi / 6, kPi / 6);
    o.cos_a = std::cos(angle);
    o.sin_a = std::sin(angle);
    o.phase = rng.uniform(0, 1);
    o.brightness = rng.uniform(0.86, 1.08);
    const double lo = o.radius + 1.0, hi = size - o.radius - 1.0;
    if (a.count == 1) {
      const int row = a.position / 3, col = a.position % 3;
      o.cx = (col + 0.5 + rng.uniform(-0.15, 0.15)) * size / 3;
      o.cy = (row + 0.5 + rng.uniform(-0.15, 0.15)) * size / 3;
    } else {
      // Scattered: the best of several draws (largest gap to the objects placed so far).
      double best_gap = -1e30;
      for (int t = 0; t < 40; ++t) {
        const double cx = rng.uniform(lo, hi), cy = rng.uniform(lo, hi);
        double gap = 1e30;
        for (const PlacedObject& q : objects)
          gap = std::min(gap, std::hypot(cx - q.cx, cy - q.cy) - (o.radius + q.radius));
        if (gap > best_gap) best_gap = gap, o.cx = cx, o.cy = cy;
        if (gap >= 0.15 * o.radius) break;
      }
    }
    o.cx = std::clamp(o.cx, lo, hi);
    o.cy = std::clamp(o.cy, lo, hi);
    objects.push_back(o);
  }

  // Objects, 4 x 4 sub-samples per pixel.
  const Rgb fill = kColourRgb[static_cast<int>(a.colour)];
  const Rgb mark = a.colour == Colour::White ? Rgb{112, 112, 124}
                                             : Rgb{fill.r * 0.35, fill.g * 0.35, fill.b * 0.35};
  constexpr int kSub = 4;
  for (const PlacedObject& o : objects) {
    const double period = std::max(0.45 * o.radius, 3.0 * size / 64.0);
    const int64_t x0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(o.cx - o.radius - 1)));
    const int64_t x1 =
        std::min<int64_t>(n - 1, static_cast<int64_t>(std::ceil(o.cx + o.radius + 1)));
    const int64_t y0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(o.cy - o.radius - 1)));
    const int64_t y1 =
        std::min<int64_t>(n - 1, static_cast<int64_t>(std::ceil(o.cy + o.radius + 1)));
    for (int64_t y = y0; y <= y1; ++y) {
      for (int64_t x = x0; x <= x1; ++x) {
        double sr = 0, sg = 0, sb = 0;
        int hits = 0;
        for (int sy = 0; sy < kSub; ++sy) {
          for (int sx = 0; sx < kSub; ++sx) {
            const double dx = static_cast<double>(x) + (sx + 0.5) / kSub - o.cx;
            const double dy = static_cast<double>(y) + (sy + 0.5) / kSub - o.cy;
            const double lx = o.cos_a * dx + o.sin_a * dy;  // object frame
            const double ly = -o.sin_a * dx + o.cos_a * dy;
            if (!inside_shape(a.shape, lx / o.radius, ly / o.radius)) continue;
            const Rgb& c = pattern_mark(a.pattern, lx / period, ly / period, o.phase) ? mark : fill;
            sr += c.r;
            sg += c.g;
            sb += c.b;
            ++hits;
          }
        }
        if (hits == 0) continue;
        double* p = &px[static_cast<size_t>((y * n + x) * 3)];
        const double cover = static_cast<double>(hits) / (kSub * kSub);
        const double w = o.brightness / (kSub * kSub);
        p[0] = p[0] * (1 - cover) + sr * w;
        p[1] = p[1] * (1 - cover) + sg * w;
        p[2] = p[2] * (1 - cover) + sb * w;
      }
    }
  }

  // Sensor noise, then rounding to u8.
  const double sigma = rng.uniform(0.0, 8.0);
  Image img(n, n);
  for (size_t i = 0; i < px.size(); ++i) {
    const double v = px[i] + sigma * rng.normal();
    img.pixels[i] = static_cast<uint8_t>(std::clamp(std::floor(v + 0.5), 0.0, 255.0));
  }
  return img;
}

// ---------------------------------------------------------------------------------------------
// Captions

namespace {

const std::vector<std::string>& shape_words(Shape s) {
  static const std::vector<std::vector<std::string>> k = {{"circle", "disc"},
                                                          {"square"},
                                                          {"triangle"},
                                                          {"star"},
                                                          {"cross", "plus sign"},
                                                          {"ring", "hoop"},
                                                          {"crescent", "crescent moon"},
                                                          {"heart", "heart shape"}};
  return k[static_cast<size_t>(s)];
}

std::string plural(const std::string& noun) {
  return noun.back() == 's' ? noun + "es" : noun + "s";
}

// Pattern as an adjective ("striped") or as a phrase after the noun ("with stripes").
const std::vector<std::string>& pattern_adjectives(Pattern p) {
  static const std::vector<std::vector<std::string>> k = {{"solid", "plain"},
                                                          {"striped"},
                                                          {"dotted", "spotted", "polka-dot"},
                                                          {"checkered", "chequered"}};
  return k[static_cast<size_t>(p)];
}
const std::vector<std::string>& pattern_phrases(Pattern p) {
  static const std::vector<std::vector<std::string>> k = {
      {"with no pattern", "in a solid fill"},
      {"with stripes", "with a striped pattern"},
      {"with dots", "with polka dots"},
      {"with a checkerboard pattern", "with a checkered pattern"}};
  return k[static_cast<size_t>(p)];
}
const std::vector<std::string>& size_words(Size s) {
  static const std::vector<std::vector<std::string>> k = {
      {"small", "little", "tiny"}, {"medium-sized", "mid-sized"}, {"large", "big"}};
  return k[static_cast<size_t>(s)];
}
const std::vector<std::string>& colour_words(Colour c) {
  static const std::vector<std::vector<std::string>> k = {
      {"red"},  {"orange"},           {"yellow"}, {"green"},
      {"blue"}, {"purple", "violet"}, {"pink"},   {"white"}};
  return k[static_cast<size_t>(c)];
}
// Scene as a place phrase ("on a grass field") and as a noun ("a grass field").
const std::vector<std::string>& background_phrases(Background b) {
  static const std::vector<std::vector<std::string>> k = {
      {"on a grass field", "on a lawn", "on the grass"},
      {"on sand", "on a sandy beach", "on the sand"},
      {"on snow", "on a snowy field", "in the snow"},
      {"on water", "on the water", "floating on water"},
      {"against a night sky", "under a starry night sky", "in the night sky"},
      {"against a brick wall", "in front of a brick wall", "on a brick wall"}};
  return k[static_cast<size_t>(b)];
}
const std::vector<std::string>& background_nouns(Background b) {
  static const std::vector<std::vector<std::string>> k = {
      {"a grass field", "a lawn"},
      {"a sandy beach", "a patch of sand"},
      {"a snowy field", "a snow-covered ground"},
      {"a stretch of water", "a lake"},
      {"a night sky", "a starry night"},
      {"a brick wall"}};
  return k[static_cast<size_t>(b)];
}
const std::vector<std::string>& position_phrases(int p) {
  static const std::vector<std::vector<std::string>> k = {
      {"in the top left corner", "at the top left"},
      {"at the top", "near the top edge", "at the top center"},
      {"in the top right corner", "at the top right"},
      {"on the left", "at the left side", "on the left side"},
      {"in the center", "in the middle", "in the center of the picture"},
      {"on the right", "at the right side", "on the right side"},
      {"in the bottom left corner", "at the bottom left"},
      {"at the bottom", "near the bottom edge", "at the bottom center"},
      {"in the bottom right corner", "at the bottom right"}};
  return k[static_cast<size_t>(p)];
}

bool starts_with_vowel_sound(const std::string& w) {
  return !w.empty() && std::string("aeiou").find(w[0]) != std::string::npos;
}

std::string join_words(const std::vector<std::string>& parts) {
  std::string s;
  for (const std::string& p : parts) {
    if (p.empty()) continue;
    if (!s.empty()) s += ' ';
    s += p;
  }
  return s;
}

std::string capitalised(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

}  // namespace

std::string write_caption(const SceneAttributes& a, unsigned required, WorldRng& rng,
                          unsigned* mentioned) {
  // Which optional attributes are stated. The count is always stated (a noun phrase has a
  // number); the position only exists for a single object.
  auto keep = [&](unsigned bit, double p_omit) { return (required & bit) || !rng.chance(p_omit); };
  unsigned m = kCountBit;
  if (keep(kShapeBit, 0.1)) m |= kShapeBit;
  if (keep(kColourBit, 0.15)) m |= kColourBit;
  if (keep(kPatternBit, 0.3)) m |= kPatternBit;
  if (keep(kSizeBit, 0.35)) m |= kSizeBit;
  if (keep(kBackgroundBit, 0.3)) m |= kBackgroundBit;
  if (a.count == 1 && keep(kPositionBit, 0.3)) m |= kPositionBit;
  TGPT_CHECK(!(required & kPositionBit) || a.count == 1,
             "a caption can only state the position of a single object");

  // Noun phrase: [count] [size] [colour | pattern order varies] noun [pattern phrase] [in colour].
  const bool many = a.count > 1;
  std::string noun =
      (m & kShapeBit) ? pick(shape_words(a.shape), rng) : (rng.chance(0.5) ? "object" : "shape");
  if (many) noun = plural(noun);
  std::vector<std::string> adjectives;
  std::string after;
  if (m & kSizeBit) adjectives.push_back(pick(size_words(a.size), rng));
  const std::string colour = (m & kColourBit) ? pick(colour_words(a.colour), rng) : "";
  const bool colour_after = (m & kColourBit) && rng.chance(0.25);
  const bool pattern_after = (m & kPatternBit) && rng.chance(0.4);
  const std::string pattern =
      (m & kPatternBit)
          ? pick(pattern_after ? pattern_phrases(a.pattern) : pattern_adjectives(a.pattern), rng)
          : "";
  if (!pattern_after && !colour_after && rng.chance(0.3)) {
    adjectives.push_back(pattern);  // "a small striped red circle"
    adjectives.push_back(colour);
  } else {
    if (!colour_after) adjectives.push_back(colour);
    if (!pattern_after) adjectives.push_back(pattern);
  }
  std::vector<std::string> np_words = adjectives;
  np_words.push_back(noun);
  if (pattern_after) np_words.push_back(pattern);
  if (colour_after) np_words.push_back(rng.chance(0.5) ? "in " + colour : "coloured " + colour);
  std::string body = join_words(np_words);
  std::string np;
  if (many) {
    np = (a.count == 2 && rng.chance(0.25)) ? "a pair of " + body
                                            : std::string(count_word(a.count)) + " " + body;
  } else {
    const int article = rng.below(4);
    np = article == 0   ? "one " + body
         : article == 1 ? "a single " + body
                        : (starts_with_vowel_sound(body) ? "an " : "a ") + body;
  }

  const std::string pos = (m & kPositionBit) ? pick(position_phrases(a.position), rng) : "";
  const std::string bg = (m & kBackgroundBit) ? pick(background_phrases(a.background), rng) : "";
  std::string s;
  switch (rng.below(7)) {
    case 0: s = capitalised(join_words({np, pos, bg})) + "."; break;
    case 1: s = "A photo of " + join_words({np, bg, pos}) + "."; break;
    case 2:
      s = std::string(many ? "There are " : "There is ") + join_words({np, pos, bg}) + ".";
      break;
    case 3: s = capitalised(join_words({np, bg})) + (pos.empty() ? "" : ", " + pos) + "."; break;
    case 4: s = "This picture shows " + join_words({np, pos, bg}) + "."; break;
    case 5:
      s = bg.empty() ? "An image of " + join_words({np, pos}) + "."
                     : capitalised(bg) + ", there " + (many ? "are " : "is ") +
                           join_words({np, pos}) + ".";
      break;
    default:
      s = (m & kBackgroundBit) ? capitalised(pick(background_nouns(a.background), rng)) + " with " +
                                     join_words({np, pos}) + "."
                               : "A simple drawing of " + join_words({np, pos}) + ".";
      break;
  }
  if (mentioned) *mentioned = m;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Attribute draws and datasets

namespace {

// Redraws the colour (or, when the colour is fixed, the scene) until they contrast.
void ensure_contrast(SceneAttributes& a, bool colour_fixed, bool background_fixed, WorldRng& rng) {
  TGPT_CHECK(!(colour_fixed && background_fixed) ||
                 colour_distance(a.colour, a.background) >= kMinContrast,
             "class fixes colour ", colour_name(a.colour), " and scene ",
             background_name(a.background), ", which do not contrast");
  while (colour_distance(a.colour, a.background) < kMinContrast) {
    if (!colour_fixed)
      a.colour = static_cast<Colour>(rng.below(kNumColours));
    else
      a.background = static_cast<Background>(rng.below(kNumBackgrounds));
  }
}

SynthClass make_class(std::string name, unsigned fixed, SceneAttributes value) {
  SynthClass c;
  c.folder = name;
  std::replace(c.folder.begin(), c.folder.end(), ' ', '_');
  c.name = std::move(name);
  c.fixed = fixed;
  c.value = value;
  return c;
}

std::vector<SynthDatasetSpec> build_datasets() {
  std::vector<SynthDatasetSpec> out;
  {
    SynthDatasetSpec d{
        "SynthShapes", "synth_shapes", "split_zhou_SynthShapes.json", "shape and pattern", {}, {}};
    for (Shape s : {Shape::Circle, Shape::Triangle, Shape::Star}) {
      for (Pattern p : {Pattern::Solid, Pattern::Striped, Pattern::Dotted}) {
        SceneAttributes v;
        v.shape = s;
        v.pattern = p;
        d.classes.push_back(make_class(std::string(pattern_name(p)) + " " + shape_name(s),
                                       kShapeBit | kPatternBit, v));
      }
    }
    d.templates = {"a photo of a {}.", "a picture of a {}.", "an image showing a {}.",
                   "a drawing of a {}."};
    out.push_back(std::move(d));
  }
  {
    SynthDatasetSpec d{
        "SynthColors", "synth_colors", "split_zhou_SynthColors.json", "colour and count", {}, {}};
    for (Colour c : {Colour::Red, Colour::Blue, Colour::Yellow}) {
      for (int n = 1; n <= 3; ++n) {
        SceneAttributes v;
        v.colour = c;
        v.count = n;
        d.classes.push_back(make_class(
            std::string(count_word(n)) + " " + colour_name(c) + (n == 1 ? " object" : " objects"),
            kColourBit | kCountBit, v));
      }
    }
    d.templates = {"a photo of {}.", "a picture with {}.", "an image showing {}.",
                   "a drawing of {}."};
    out.push_back(std::move(d));
  }
  {
    SynthDatasetSpec d{
        "SynthScenes", "synth_scenes", "split_zhou_SynthScenes.json", "scene and position", {}, {}};
    const std::pair<Background, const char*> scenes[] = {{Background::Grass, "grass field"},
                                                         {Background::Sand, "sandy beach"},
                                                         {Background::Snow, "snowy field"}};
    const char* columns[] = {"on the left", "in the center", "on the right"};
    for (const auto& [bg, scene] : scenes) {
      for (int col = 0; col < 3; ++col) {
        SceneAttributes v;
        v.background = bg;
        v.count = 1;
        v.position = col;  // column; the row is drawn
        d.classes.push_back(make_class(std::string(scene) + " with an object " + columns[col],
                                       kBackgroundBit | kPositionBit | kCountBit, v));
      }
    }
    d.templates = {"a photo of a {}.", "a picture of a {}.", "an image of a {}.",
                   "a drawing of a {}."};
    out.push_back(std::move(d));
  }
  {
    // Made-up species names that no pretraining caption contains, as the flower, aircraft and
    // car model names of fine-grained benchmarks are rare in web captions: the text encoder
    // knows only their sub-word pieces, while the captions of the training images describe
    // the animals in words it knows. Each colour is worn by three species that differ in
    // shape and markings (a Latin square: no two species of one colour share either).
    SynthDatasetSpec d{"SynthSpecies",
                       "synth_species",
                       "split_zhou_SynthSpecies.json",
                       "shape, colour and pattern, under made-up names",
                       {},
                       {}};
    struct Species {
      const char* name;
      Colour colour;
      Shape shape;
      Pattern pattern;
    };
    const Species species[] = {
        {"velmora", Colour::Red, Shape::Circle, Pattern::Striped},
        {"quindle", Colour::Red, Shape::Star, Pattern::Solid},
        {"tarsik", Colour::Red, Shape::Triangle, Pattern::Dotted},
        {"zibbet", Colour::Blue, Shape::Circle, Pattern::Dotted},
        {"morlune", Colour::Blue, Shape::Star, Pattern::Striped},
        {"fendrake", Colour::Blue, Shape::Triangle, Pattern::Solid},
        {"glaucet", Colour::Yellow, Shape::Circle, Pattern::Solid},
        {"prennik", Colour::Yellow, Shape::Star, Pattern::Dotted},
        {"sorvath", Colour::Yellow, Shape::Triangle, Pattern::Striped},
    };
    for (const Species& sp : species) {
      SceneAttributes v;
      v.colour = sp.colour;
      v.shape = sp.shape;
      v.pattern = sp.pattern;
      d.classes.push_back(make_class(sp.name, kColourBit | kShapeBit | kPatternBit, v));
    }
    d.templates = {"a photo of a {}.", "a picture of a {}.", "an image of a {}.",
                   "a drawing of a {}."};
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace

const std::vector<SynthDatasetSpec>& synth_datasets() {
  static const std::vector<SynthDatasetSpec> k = build_datasets();
  return k;
}

SceneAttributes draw_pretrain_attributes(WorldRng& rng) {
  SceneAttributes a;
  a.shape = static_cast<Shape>(rng.below(kNumShapes));
  a.colour = static_cast<Colour>(rng.below(kNumColours));
  a.pattern = static_cast<Pattern>(rng.below(kNumPatterns));
  a.size = static_cast<Size>(rng.below(kNumSizes));
  const int c = rng.below(10);  // 40 % single objects (the only ones with a position)
  a.count = c < 4 ? 1 : 2 + (c - 4) / 2;
  a.position = a.count == 1 ? rng.below(kNumPositions) : -1;
  a.background = static_cast<Background>(rng.below(kNumBackgrounds));
  ensure_contrast(a, false, false, rng);
  return a;
}

SceneAttributes draw_class_attributes(const SynthClass& cls, WorldRng& rng) {
  SceneAttributes a = draw_pretrain_attributes(rng);
  const unsigned f = cls.fixed;
  if (f & kShapeBit) a.shape = cls.value.shape;
  if (f & kColourBit) a.colour = cls.value.colour;
  if (f & kPatternBit) a.pattern = cls.value.pattern;
  if (f & kSizeBit) a.size = cls.value.size;
  if (f & kBackgroundBit) a.background = cls.value.background;
  if (f & kCountBit) {
    a.count = cls.value.count;
    if (a.count == 1 && a.position < 0) a.position = rng.below(kNumPositions);
    if (a.count > 1) a.position = -1;
  }
  if (f & kPositionBit) a.position = rng.below(3) * 3 + cls.value.position;  // fixed column
  // A pattern that names the class must be visible: no small objects (their stripes or dots
  // would be 1-2 pixels wide at 64 px).
  if ((f & kPatternBit) && !(f & kSizeBit) && a.size == Size::Small)
    a.size = rng.chance(0.5) ? Size::Medium : Size::Large;
  ensure_contrast(a, f & kColourBit, f & kBackgroundBit, rng);
  return a;
}

// ---------------------------------------------------------------------------------------------
// Items

void validate_options(const WorldOptions& o) {
  TGPT_CHECK(o.image_size >= 16 && o.image_size <= 512, "synthetic world: image size ",
             o.image_size, " is out of 16..512");
  TGPT_CHECK(o.pretrain_images >= 1 && o.pretrain_images <= 10'000'000,
             "synthetic world: pretraining image count ", o.pretrain_images,
             " is out of 1..10000000");
  TGPT_CHECK(o.train_per_class >= 1 && o.train_per_class <= 100'000,
             "synthetic world: train images per class ", o.train_per_class, " is out of 1..100000");
  TGPT_CHECK(o.val_per_class >= 1 && o.val_per_class <= 100'000,
             "synthetic world: val images per class ", o.val_per_class, " is out of 1..100000");
  TGPT_CHECK(o.test_per_class >= 1 && o.test_per_class <= 100'000,
             "synthetic world: test images per class ", o.test_per_class, " is out of 1..100000");
}

WorldItem make_pretrain_item(const WorldOptions& o, int64_t index) {
  validate_options(o);
  TGPT_CHECK(index >= 0 && index < o.pretrain_images, "pretraining item ", index, " out of range");
  WorldRng rng(item_seed(o.seed, 0, 0, static_cast<uint64_t>(index)));
  WorldItem it;
  it.attributes = draw_pretrain_attributes(rng);
  it.caption = write_caption(it.attributes, 0, rng, &it.mentioned);
  it.image = render_scene(it.attributes, o.image_size, rng);
  return it;
}

WorldItem make_dataset_item(const WorldOptions& o, int dataset, int cls, int64_t index) {
  validate_options(o);
  const auto& ds = synth_datasets();
  TGPT_CHECK(dataset >= 0 && dataset < static_cast<int>(ds.size()), "dataset ", dataset,
             " out of range");
  const SynthDatasetSpec& d = ds[static_cast<size_t>(dataset)];
  TGPT_CHECK(cls >= 0 && cls < static_cast<int>(d.classes.size()), d.name, ": class ", cls,
             " out of range");
  const int64_t per_class = o.train_per_class + o.val_per_class + o.test_per_class;
  TGPT_CHECK(index >= 0 && index < per_class, d.name, ": item ", index, " out of range");
  WorldRng rng(item_seed(o.seed, static_cast<uint64_t>(dataset) + 1, static_cast<uint64_t>(cls),
                         static_cast<uint64_t>(index)));
  const SynthClass& c = d.classes[static_cast<size_t>(cls)];
  WorldItem it;
  it.attributes = draw_class_attributes(c, rng);
  it.caption = write_caption(it.attributes, c.fixed, rng, &it.mentioned);
  it.image = render_scene(it.attributes, o.image_size, rng);
  return it;
}

// ---------------------------------------------------------------------------------------------
// The layout writer

namespace {

constexpr const char* kMarker = ".tgpt-synth-incomplete";
constexpr const char* kGeneratorName = "tgpt-synth";

std::string pretrain_key(int64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%06lld.png", static_cast<long long>(i));
  return buf;
}
std::string dataset_key(const SynthClass& c, int64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04lld.png", static_cast<long long>(i));
  return c.folder + "/" + buf;
}

std::string read_small_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// Renders and writes items [0, total) with make(i) -> (relative path, item), in parallel
// batches; captions[i] receives each item's caption.
template <typename Make>
void write_items(const fs::path& image_root, int64_t total, const std::string& stage,
                 const WorldProgress& progress, std::vector<std::string>& captions, Make&& make) {
  captions.assign(static_cast<size_t>(total), std::string());
  const int64_t batch = 256;
  std::mutex mu;
  std::string first_error;
  for (int64_t start = 0; start < total; start += batch) {
    const int64_t count = std::min(batch, total - start);
    parallel_for(count, [&](int64_t k) {
      const int64_t i = start + k;
      try {
        auto [rel, item] = make(i);
        write_png_file_replace((image_root / rel).string(), item.image);
        captions[static_cast<size_t>(i)] = std::move(item.caption);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.empty()) first_error = e.what();
      }
    });
    if (!first_error.empty()) throw Error(first_error);
    if (progress) progress(stage, start + count, total);
  }
}

nlohmann::ordered_json split_entry(const std::string& rel, int64_t label, const std::string& cls) {
  return nlohmann::ordered_json::array({rel, label, cls});
}

}  // namespace

std::string world_manifest(const WorldOptions& o) {
  validate_options(o);
  nlohmann::ordered_json j;
  j["generator"] = kGeneratorName;
  j["version"] = kWorldGeneratorVersion;
  j["seed"] = o.seed;
  j["options"] = {{"image_size", o.image_size},
                  {"pretrain_images", o.pretrain_images},
                  {"train_per_class", o.train_per_class},
                  {"val_per_class", o.val_per_class},
                  {"test_per_class", o.test_per_class}};
  j["pretrain"] = {{"image_root", "pretrain/images"},
                   {"captions", "pretrain/captions.txt"},
                   {"images", o.pretrain_images}};
  nlohmann::ordered_json datasets = nlohmann::ordered_json::array();
  for (const SynthDatasetSpec& d : synth_datasets()) {
    const auto k = static_cast<int64_t>(d.classes.size());
    nlohmann::ordered_json names = nlohmann::ordered_json::array();
    for (const SynthClass& c : d.classes) names.push_back(c.name);
    datasets.push_back({{"name", d.name},
                        {"dir", d.dir},
                        {"image_root", d.dir + "/images"},
                        {"split_file", d.dir + "/" + d.split_file},
                        {"captions", d.dir + "/captions.txt"},
                        {"classnames", d.dir + "/classnames.txt"},
                        {"attributes", d.attributes},
                        {"classes", names},
                        {"train", k * o.train_per_class},
                        {"val", k * o.val_per_class},
                        {"test", k * o.test_per_class}});
  }
  j["datasets"] = datasets;
  j["templates"] = "templates.json";
  return j.dump(2) + "\n";
}

namespace {

WorldStatus generate_world_impl(const std::string& out, const WorldOptions& o,
                                const WorldProgress& progress) {
  TGPT_CHECK(!out.empty(), "synthetic world: no output folder given");
  const fs::path root(out);
  const std::string manifest = world_manifest(o);
  const auto& datasets = synth_datasets();

  // What is there already.
  WorldStatus status = WorldStatus::Written;
  std::error_code ec;
  if (fs::exists(root, ec)) {
    TGPT_CHECK(fs::is_directory(root, ec), "synthetic world: '", out,
               "' exists and is not a folder");
    std::set<std::string> known = {"world.json", "templates.json", "pretrain", kMarker};
    for (const SynthDatasetSpec& d : datasets) known.insert(d.dir);
    std::vector<std::string> entries, unknown;
    for (const auto& e : fs::directory_iterator(root)) {
      const std::string name = e.path().filename().string();
      entries.push_back(name);
      if (!known.count(name)) unknown.push_back(name);
    }
    std::sort(unknown.begin(), unknown.end());
    if (!entries.empty()) {
      const bool has_manifest = fs::is_regular_file(root / "world.json", ec);
      const bool has_marker = fs::exists(root / kMarker, ec);
      bool ours = has_marker;
      std::string old_manifest;
      if (has_manifest) {
        old_manifest = read_small_file(root / "world.json");
        try {
          ours =
              ours || nlohmann::json::parse(old_manifest).value("generator", "") == kGeneratorName;
        } catch (const nlohmann::json::exception&) {
        }
      }
      TGPT_CHECK(ours, "synthetic world: '", out,
                 "' is not empty and is not a world written by tgpt-synth (no world.json or "
                 "in-progress marker); refusing to write into it. Give a new or empty folder.");
      TGPT_CHECK(unknown.empty(), "synthetic world: '", out, "' holds a previous world but also '",
                 unknown.front(), "' (and ", unknown.size() - 1,
                 " other unknown entries), which tgpt-synth did not write; refusing to replace "
                 "it. Remove those or give a new folder.");
      if (has_manifest && !has_marker && old_manifest == manifest) return WorldStatus::Unchanged;
      // Replace the previous world: first mark it incomplete, then remove what it holds.
      write_text_file_atomic((root / kMarker).string(), manifest);
      fs::remove(root / "world.json");
      for (const std::string& name : entries)
        if (name != kMarker) fs::remove_all(root / name);
      status = WorldStatus::Replaced;
    }
  } else {
    fs::create_directories(root);
  }
  write_text_file_atomic((root / kMarker).string(), manifest);

  // Pretraining set.
  {
    const fs::path images = root / "pretrain" / "images";
    fs::create_directories(images);
    std::vector<std::string> captions;
    write_items(images, o.pretrain_images, "pretrain", progress, captions, [&](int64_t i) {
      return std::make_pair(pretrain_key(i), make_pretrain_item(o, i));
    });
    std::string text;
    for (int64_t i = 0; i < o.pretrain_images; ++i)
      text += pretrain_key(i) + "\t" + captions[static_cast<size_t>(i)] + "\n";
    write_text_file_atomic((root / "pretrain" / "captions.txt").string(), text);
  }

  // Downstream datasets.
  const int64_t per_class = o.train_per_class + o.val_per_class + o.test_per_class;
  nlohmann::ordered_json templates;
  for (size_t di = 0; di < datasets.size(); ++di) {
    const SynthDatasetSpec& d = datasets[di];
    const fs::path dir = root / d.dir;
    const auto k = static_cast<int64_t>(d.classes.size());
    for (const SynthClass& c : d.classes) fs::create_directories(dir / "images" / c.folder);
    std::vector<std::string> captions;
    write_items(dir / "images", k * per_class, d.name, progress, captions, [&](int64_t i) {
      const int cls = static_cast<int>(i / per_class);
      const int64_t idx = i % per_class;
      return std::make_pair(dataset_key(d.classes[static_cast<size_t>(cls)], idx),
                            make_dataset_item(o, static_cast<int>(di), cls, idx));
    });
    nlohmann::ordered_json split;
    split["train"] = nlohmann::ordered_json::array();
    split["val"] = nlohmann::ordered_json::array();
    split["test"] = nlohmann::ordered_json::array();
    std::string caption_text, classnames;
    for (int64_t cls = 0; cls < k; ++cls) {
      const SynthClass& c = d.classes[static_cast<size_t>(cls)];
      classnames += c.name + "\n";
      for (int64_t idx = 0; idx < per_class; ++idx) {
        const std::string rel = dataset_key(c, idx);
        const bool is_test = idx >= o.train_per_class + o.val_per_class;
        const char* subset = idx < o.train_per_class ? "train" : is_test ? "test" : "val";
        split[subset].push_back(split_entry(rel, cls, c.name));
        if (!is_test)  // train and val images carry captions (TGP-T trains on them)
          caption_text += rel + "\t" + captions[static_cast<size_t>(cls * per_class + idx)] + "\n";
      }
    }
    write_text_file_atomic((dir / d.split_file).string(), split.dump(4) + "\n");
    write_text_file_atomic((dir / "captions.txt").string(), caption_text);
    write_text_file_atomic((dir / "classnames.txt").string(), classnames);
    templates[d.name] = d.templates;
  }
  write_text_file_atomic((root / "templates.json").string(), templates.dump(2) + "\n");

  // Everything on disk before the manifest marks the world complete.
  sync_folder_filesystem(root.string());
  write_text_file_atomic((root / "world.json").string(), manifest);
  fs::remove(root / kMarker);
  return status;
}

}  // namespace

WorldStatus generate_world(const std::string& out, const WorldOptions& o,
                           const WorldProgress& progress) {
  validate_options(o);
  try {
    return generate_world_impl(out, o, progress);
  } catch (const fs::filesystem_error& e) {  // folder creation, listing, removal
    TGPT_FAIL("synthetic world in '", out, "': ", e.what());
  }
}

}  // namespace tgpt::synth

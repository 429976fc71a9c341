/*
 * world.h — a deterministic, captioned synthetic image world: the default data of tgpt when
 * nothing can be downloaded (no pretrained CLIP, no benchmark datasets).
 *
 * Attribute model. An image shows 1-4 objects of one kind on a textured scene:
 *   shape      circle, square, triangle, star, cross, ring, crescent, heart
 *   colour     red, orange, yellow, green, blue, purple, pink, white   (object colour)
 *   pattern    solid, striped, dotted, checkered   (in a dark shade of the object colour)
 *   size       small, medium, large   (radius 0.08 / 0.12 / 0.17 of the image side, ±10 %)
 *   count      1-4 objects (all with the same shape, colour, pattern and size)
 *   position   a cell of a 3x3 grid ("top left" ... "bottom right"); single objects only,
 *              several objects are scattered over the whole image
 *   background grass, sand, snow, water, night sky, brick wall (each its own texture)
 * and, never captioned: each object's rotation (±30°, so a square stays a square), a small
 * jitter of position, radius and brightness, and Gaussian pixel noise (σ up to 8 levels).
 * An object colour too close to its scene's base colour (green on grass, white on snow, ...) is
 * redrawn, as is the scene when the colour is fixed by a class.
 *
 * Rendering: RGB u8, image_size × image_size, each pixel the mean of 4×4 sub-samples (objects
 * are anti-aliased). Captions: one sentence in varied wording (several sentence frames,
 * synonyms, attribute order varied) that states attributes truthfully; some attributes are left
 * out at random, as real captions do, except those a caller requires (a downstream dataset's
 * class attributes are always stated, like TGP-T's "Describe the {classname} in this image").
 *
 * Layout written by generate_world under OUT (paths relative to OUT):
 *   pretrain/images/<000000>.png, pretrain/captions.txt   "000000.png<TAB>caption" (keys are
 *       relative to pretrain/images)
 *   <dir>/images/<class_folder>/<0000>.png     per downstream dataset (CoOp layout, data.md §1)
 *   <dir>/split_zhou_<Name>.json   {"train","val","test": [[relpath, label, classname], ...]},
 *       relpath relative to <dir>/images; per class the first train_per_class images are train,
 *       the next val_per_class val, the rest test
 *   <dir>/captions.txt             captions of the train and val images (key = relpath)
 *   <dir>/classnames.txt           one class name per line, in label order
 *   templates.json                 {"SynthShapes": ["a photo of a {}.", ...], ...}
 *   world.json                     manifest: generator and version, seed, options, counts,
 *                                  datasets; written last, so its presence marks a complete world
 *
 * Determinism: every image draws from its own std::mt19937_64 seeded from (seed, dataset,
 * class, index), and uniform/normal variates are computed from raw 64-bit outputs (not the
 * implementation-defined std:: distributions), so the same options give the same bytes
 * whatever the thread count. Across platforms only libm's sin/cos/exp could differ (in the last
 * bit, rarely visible after rounding to u8). Files are written in a fixed order, text through
 * write_text_file_atomic, PNGs (stb_image_write, fixed compression) to a temporary name and
 * renamed; the folder is synced (syncfs) before world.json is written.
 */
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "data/image.h"

namespace tgpt::synth {

// Bumped whenever the bytes a given option set produces change.
inline constexpr int kWorldGeneratorVersion = 2;

enum class Shape { Circle, Square, Triangle, Star, Cross, Ring, Crescent, Heart };
enum class Colour { Red, Orange, Yellow, Green, Blue, Purple, Pink, White };
enum class Pattern { Solid, Striped, Dotted, Checkered };
enum class Size { Small, Medium, Large };
enum class Background { Grass, Sand, Snow, Water, Night, Brick };
inline constexpr int kNumShapes = 8, kNumColours = 8, kNumPatterns = 4, kNumSizes = 3,
                     kNumBackgrounds = 6, kNumPositions = 9, kMaxCount = 4;

// Canonical names ("circle", "red", "striped", "small", "grass", "top left"; position
// 0..8 = row * 3 + column, rows top to bottom, columns left to right).
const char* shape_name(Shape s);
const char* colour_name(Colour c);
const char* pattern_name(Pattern p);
const char* size_name(Size s);
const char* background_name(Background b);
const char* position_name(int position);
const char* count_word(int count);  // "one" .. "four"

// What an image shows (the caption's ground truth).
struct SceneAttributes {
  Shape shape = Shape::Circle;
  Colour colour = Colour::Red;
  Pattern pattern = Pattern::Solid;
  Size size = Size::Medium;
  int count = 1;     // 1..kMaxCount
  int position = 4;  // 0..8 when count == 1; -1 (scattered) when count > 1
  Background background = Background::Grass;
};

// Attributes a caption states (set = mentioned).
enum AttributeBit : unsigned {
  kShapeBit = 1u << 0,
  kColourBit = 1u << 1,
  kPatternBit = 1u << 2,
  kSizeBit = 1u << 3,
  kCountBit = 1u << 4,
  kPositionBit = 1u << 5,
  kBackgroundBit = 1u << 6,
};

// The random source of one image. Uniform and normal variates are computed from the raw 64-bit
// outputs, so they are the same with every standard library.
class WorldRng {
 public:
  explicit WorldRng(uint64_t seed) : engine_(seed) {}
  uint64_t bits() { return engine_(); }
  double uniform();                      // [0, 1)
  double uniform(double lo, double hi);  // [lo, hi)
  int below(int n);                      // 0..n-1, n > 0 (unbiased)
  bool chance(double p) { return uniform() < p; }
  double normal();  // standard normal (Box–Muller)

 private:
  std::mt19937_64 engine_;
};

// Seed of one item: a stateless mix of the world seed and the item's coordinates.
uint64_t item_seed(uint64_t world_seed, uint64_t stream, uint64_t cls, uint64_t index);

// Renders the scene (drawing rotation, jitter, placement of several objects and noise from rng).
Image render_scene(const SceneAttributes& a, int64_t image_size, WorldRng& rng);

// One sentence stating the attributes in `mention` (or more: the count is stated whenever
// the shape is, and a caption always names the objects), in wording drawn from rng. Attributes
// outside `required` are each left out with some probability; `required` ones always appear.
// Returns the caption; *mentioned (if given) receives the bits actually stated.
std::string write_caption(const SceneAttributes& a, unsigned required, WorldRng& rng,
                          unsigned* mentioned = nullptr);

// ---------------------------------------------------------------------------------------------
// Downstream classification datasets.

// Which attributes a dataset's classes fix.
struct SynthClass {
  std::string name;       // prompt-ready class name, e.g. "striped circle"
  std::string folder;     // image sub-folder: name with ' ' -> '_'
  unsigned fixed = 0;     // AttributeBits this class fixes
  SceneAttributes value;  // the fixed attributes' values (others ignored)
};

struct SynthDatasetSpec {
  std::string name;        // DATASET.NAME style, e.g. "SynthShapes"
  std::string dir;         // folder under OUT, e.g. "synth_shapes"
  std::string split_file;  // "split_zhou_SynthShapes.json"
  std::string attributes;  // what the classes need, e.g. "shape and pattern"
  std::vector<SynthClass> classes;
  std::vector<std::string> templates;  // zero-shot templates of our own wording, "{}" once
};

// The downstream datasets, in the order they are generated:
//   SynthShapes  shape × pattern   {circle, triangle, star} × {solid, striped, dotted}  (9)
//   SynthColors  colour × count    {red, blue, yellow} × {one, two, three}             (9)
//   SynthScenes  scene × column    {grass, sand, snow} × {left, center, right}          (9)
//   SynthSpecies shape × colour × pattern under made-up names ("velmora", ...) that no
//                pretraining caption contains (the rare names of fine-grained benchmarks) (9)
const std::vector<SynthDatasetSpec>& synth_datasets();

// Attributes of an item of class `cls`: the class's fixed attributes, the rest drawn as for
// pretraining (then redrawn for contrast; a class that fixes the pattern gets no small objects).
SceneAttributes draw_class_attributes(const SynthClass& cls, WorldRng& rng);
// Attributes of a pretraining image: everything drawn uniformly.
SceneAttributes draw_pretrain_attributes(WorldRng& rng);

// ---------------------------------------------------------------------------------------------
// The world on disk.

struct WorldOptions {
  uint64_t seed = 1;
  int64_t image_size = 64;         // 16..512
  int64_t pretrain_images = 6000;  // 1..10,000,000
  int64_t train_per_class = 24;    // >= 1 (16-shot sampling needs 16)
  int64_t val_per_class = 8;       // >= 1
  int64_t test_per_class = 50;     // >= 1
};

// Throws tgpt::Error naming the first bad option.
void validate_options(const WorldOptions& o);

// One generated item, as generate_world produces it (for tests and inspection).
struct WorldItem {
  SceneAttributes attributes;
  unsigned mentioned = 0;  // AttributeBits the caption states
  std::string caption;
  Image image;
};
// Pretraining item `index` (0-based).
WorldItem make_pretrain_item(const WorldOptions& o, int64_t index);
// Item `index` of class `cls` of downstream dataset `dataset` (indices into synth_datasets());
// index counts train, then val, then test images of that class.
WorldItem make_dataset_item(const WorldOptions& o, int dataset, int cls, int64_t index);

// The manifest world.json for these options (canonical text, ends with '\n').
std::string world_manifest(const WorldOptions& o);

enum class WorldStatus {
  Written,    // OUT was missing or empty: the world was generated
  Replaced,   // OUT held a previous (incomplete or different) world: it was removed, regenerated
  Unchanged,  // OUT already holds the complete world of these options: nothing was written
};

// Progress: stage ("pretrain", "SynthShapes", ...), items done, items in the stage.
using WorldProgress = std::function<void(const std::string& stage, int64_t done, int64_t total)>;

// Writes the world under `out`. Refuses (tgpt::Error) a non-empty folder that is not a previous
// world, i.e. one holding anything besides world.json, templates.json, pretrain/, the dataset
// folders and the in-progress marker; a previous world is only ever removed entry by entry.
WorldStatus generate_world(const std::string& out, const WorldOptions& o,
                           const WorldProgress& progress = {});

}  // namespace tgpt::synth

/*
 * tgpt-data — dataset commands: few-shot split files, dataset checks, the synthetic world.
 *
 *   tgpt-data split DATASET --shots K --seed S -o OUT.json [--no-captions] [--no-check-files]
 *                   [--no-split-cache]
 *   tgpt-data check DATASET [--shots K --seed S [--no-split-cache]] [--deep]
 *   tgpt-data synth --out DIR [--seed S] [--pretrain N] [--size PX] [--train-per-class N]
 *                   [--val-per-class N] [--test-per-class N] [--quiet]
 *
 *   DATASET:  --dataset-dir DIR --split-json FILE --image-root DIR   (the CoOp layout)
 *         or  --dataset NAME --root DATA  (the dataset's own layout from the table of
 *             data/dataset_layout.h, read by data/layout_readers.h: split_zhou files, FGVC's
 *             list files, ImageNet's class folders, the ImageNet variants' folders);
 *             --dataset-dir overrides its folder; --split-json / --image-root read a split
 *             file in the CoOp layout instead
 *   [--caption-rule auto|path|stanford_cars|fgvc|imagenet]  (auto: from --dataset, else path)
 *
 * split: draws the few-shot train (K per class) and val (min(K, 4) per class; ImageNet:
 * max(K, 8) from split_ImageNet.json) as Dassl / TGP-T do with Python's random seeded with S
 * (data/fewshot.h), checks that every listed image exists and that every drawn training image
 * has a caption in DIR/captions.txt (or descriptions.txt; --no-captions skips that), and writes
 * OUT.json atomically in the split_zhou format (paths relative to the image root, draw order;
 * the test subset whole). The test-only ImageNet variants have no few-shot split.
 * When the dataset folder holds the official code's cache of that draw,
 * split_fewshot2/shot_K-seed_S.pkl (TGP-T, looked for first) or split_fewshot/shot_K-seed_S.pkl
 * (CoOp), its train and val win over the draw as in the official code (tools/split_cache.h; its
 * absolute paths rewritten against the dataset folder, TGP-T's captions used where captions.txt
 * has none); --no-split-cache draws instead.
 * check: reads the dataset and reports the subset sizes and classes (against the published
 * sizes with --dataset), missing image files, and how many images of each subset have a caption;
 * every training image needs one (with --shots and --seed: every training image of the few-shot
 * split tgpt-train would use, i.e. the official cache split_fewshot2/ or split_fewshot/
 * shot_K-seed_S.pkl when the dataset folder holds one (its captions standing in where
 * captions.txt has none), else the draw; --no-split-cache: the draw; ImageNet, whose captions
 * cover only the authors' draws: only with --shots and --seed); --deep also decodes
 * every image (in parallel) and lists those that cannot be decoded. Prints "check passed" and exits
 * 0, or lists the problems and exits 1. synth: writes the synthetic captioned image world
 * (data/synth/world.h): a pretraining set (images + captions) and the downstream datasets
 * SynthShapes, SynthColors, SynthScenes and SynthSpecies in the CoOp layout, with templates.json and the
 * world.json manifest; the same options give the same bytes. DIR must be missing, empty, or a world
 * written before: the same options make it a no-op; other options (or an interrupted run) replace
 * it; any other non-empty folder is refused. Errors go to stderr with exit 1.
 */
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "data/captions.h"
#include "data/dataset.h"
#include "data/dataset_layout.h"
#include "data/fewshot.h"
#include "data/layout_readers.h"
#include "data/synth/world.h"
#include "tools/split_cache.h"
#include "tools/tool_options.h"

namespace {

namespace fs = std::filesystem;
using namespace tgpt;

struct DatasetArgs {
  std::string dataset, root, dataset_dir, split_json, image_root, caption_rule = "auto";
};

struct Resolved {
  std::string dataset_dir, split_json, image_root;
  CaptionKeyRule caption_rule = CaptionKeyRule::RelativePath;
  const DatasetLayout* layout = nullptr;
  bool own_layout = false;  // read in the layout's own format (data/layout_readers.h)
};

Resolved resolve(const DatasetArgs& a) {
  Resolved r;
  r.dataset_dir = a.dataset_dir;
  r.split_json = a.split_json;
  r.image_root = a.image_root;
  if (!a.dataset.empty()) {
    r.layout = &find_dataset_layout(a.dataset);
    const DatasetLayout& l = *r.layout;
    if (r.dataset_dir.empty()) {
      TGPT_CHECK(!a.root.empty(), "--dataset ", l.name, " needs --root DATA (the folder holding ",
                 l.dir, "/) or --dataset-dir");
      r.dataset_dir = (fs::path(a.root) / l.dir).string();
    }
    r.caption_rule = l.caption_rule;
    if (r.split_json.empty() && r.image_root.empty()) {
      r.own_layout = true;
      r.image_root = layout_image_root(l, r.dataset_dir);
      r.split_json = l.split_file.empty() ? "" : (fs::path(r.dataset_dir) / l.split_file).string();
    } else {
      TGPT_CHECK(!r.split_json.empty(),
                 "--image-root needs --split-json FILE (a split file in "
                 "the CoOp layout); without both, --dataset ",
                 l.name, " reads its own layout");
      if (r.image_root.empty()) r.image_root = layout_image_root(l, r.dataset_dir);
    }
  }
  TGPT_CHECK(
      !r.dataset_dir.empty() && (r.own_layout || !r.split_json.empty()) && !r.image_root.empty(),
      "give --dataset-dir DIR --split-json FILE --image-root DIR, or --dataset NAME "
      "--root DATA");
  static const std::map<std::string, CaptionKeyRule> kRules = {
      {"path", CaptionKeyRule::RelativePath},
      {"stanford_cars", CaptionKeyRule::StanfordCars},
      {"fgvc", CaptionKeyRule::FGVCAircraft},
      {"imagenet", CaptionKeyRule::ImageNet}};
  if (a.caption_rule != "auto") r.caption_rule = kRules.at(a.caption_rule);
  std::error_code ec;
  TGPT_CHECK(fs::is_directory(r.dataset_dir, ec), "dataset folder '", r.dataset_dir,
             "' does not exist or is not a folder");
  TGPT_CHECK(fs::is_directory(r.image_root, ec), "image root '", r.image_root,
             "' does not exist or is not a folder");
  return r;
}

// The dataset: its own layout, or the split file (with the size warnings under --dataset).
DatasetSplit read_resolved(const Resolved& r, bool check_files) {
  if (r.own_layout) return read_dataset(*r.layout, r.dataset_dir, check_files);
  DatasetSplit d;
  d.split = read_coop_split(r.split_json, r.image_root, check_files);
  d.image_root = r.image_root;
  d.source = r.split_json;
  if (r.layout) d.warnings = dataset_size_warnings(*r.layout, d.split);
  return d;
}

void print_lines(const char* prefix, const std::vector<std::string>& lines) {
  for (const auto& l : lines) std::printf("%s%s\n", prefix, l.c_str());
}

void add_dataset_options(CLI::App& app, DatasetArgs& a) {
  app.add_option("--dataset", a.dataset,
                 "dataset name (DATASET.NAME, config stem or folder), e.g. OxfordPets");
  app.add_option("--root", a.root, "$DATA, the folder holding the dataset folders");
  app.add_option("--dataset-dir", a.dataset_dir, "the dataset folder (holds captions.txt)");
  app.add_option("--split-json", a.split_json, "CoOp split file (split_zhou_<Name>.json)");
  app.add_option("--image-root", a.image_root, "folder the split file's paths are relative to");
  app.add_option("--caption-rule", a.caption_rule,
                 "caption key rule: auto (from --dataset), path, stanford_cars, fgvc, imagenet")
      ->check(CLI::IsMember({"auto", "path", "stanford_cars", "fgvc", "imagenet"}));
}

// Per-class counts of a subset: {min, max, classes with fewer than k}.
struct ClassCounts {
  int64_t min = 0, max = 0, below_k = 0;
};
ClassCounts class_counts(const std::vector<LabeledImage>& items, size_t num_classes, int64_t k) {
  std::vector<int64_t> n(num_classes, 0);
  for (const auto& it : items) ++n[static_cast<size_t>(it.label)];
  ClassCounts c;
  c.min = *std::min_element(n.begin(), n.end());
  c.max = *std::max_element(n.begin(), n.end());
  for (const int64_t v : n) c.below_k += v < k;
  return c;
}

// ---------------------------------------------------------------------------------------------
// split

struct SplitArgs {
  DatasetArgs data;
  int64_t shots = 0, seed = -1;
  std::string output;
  bool no_captions = false, no_check_files = false, no_split_cache = false;
};

int run_split(const SplitArgs& a) {
  const Resolved r = resolve(a.data);
  TGPT_CHECK(a.shots >= 1, "--shots must be >= 1, got ", a.shots);
  TGPT_CHECK(a.seed >= 0, "--seed must be >= 0, got ", a.seed,
             " (Dassl seeds Python's random only when SEED >= 0)");
  CoopFewshotData d;
  std::vector<std::string> warnings, notes;
  if (r.own_layout) {
    DatasetFewshotRequest req;
    req.layout = r.layout;
    req.dataset_dir = r.dataset_dir;
    req.shots = a.shots;
    req.seed = a.seed;
    req.captions = !a.no_captions;
    req.caption_rule = r.caption_rule;
    req.check_files = !a.no_check_files;
    req.import_fewshot = tools::split_cache_importer(r.dataset_dir, a.shots, a.seed, true,
                                                     {r.layout->dir}, !a.no_split_cache);
    DatasetFewshotData ld = load_dataset_fewshot(req);
    d = std::move(ld.fewshot);
    warnings = std::move(ld.warnings);
    notes = std::move(ld.notes);
  } else {
    CoopFewshotRequest req;
    req.dataset_dir = r.dataset_dir;
    req.split_json = r.split_json;
    req.image_root = r.image_root;
    req.shots = a.shots;
    req.seed = a.seed;
    req.caption_rule = r.caption_rule;
    req.captions = !a.no_captions;
    req.check_files = !a.no_check_files;
    req.import_fewshot = tools::split_cache_importer(
        r.dataset_dir, a.shots, a.seed, true,
        r.layout ? std::vector<std::string>{r.layout->dir} : std::vector<std::string>{},
        !a.no_split_cache);
    d = load_coop_fewshot(req);
  }
  const FewshotSplit& s = d.split;
  const size_t k = s.classnames.size();
  const ClassCounts tc = class_counts(s.train, k, a.shots);
  std::printf("%s   %s (image root %s)\n",
              r.split_json.empty() ? "source:    " : "split file:", s.source.c_str(),
              r.image_root.c_str());
  std::printf("classes:      %zu\n", k);
  std::printf("train:        %zu images (%lld shots, seed %lld)", s.train.size(),
              static_cast<long long>(a.shots), static_cast<long long>(a.seed));
  if (tc.below_k > 0)
    std::printf("; %lld class(es) have fewer than %lld images and keep all of them",
                static_cast<long long>(tc.below_k), static_cast<long long>(a.shots));
  std::printf("\nval:          %zu images (%lld per class)\n", s.val.size(),
              static_cast<long long>(s.val_shots));
  std::printf("test:         %zu images\n", s.test.size());
  if (d.captions_file.empty())
    std::printf("captions:     not checked (--no-captions)\n");
  else
    std::printf("captions:     %s (every training image has one)\n", d.captions_file.c_str());
  std::error_code ec;
  const fs::path parent = fs::path(a.output).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  write_fewshot_split(a.output, s);
  std::printf("wrote:        %s\n", a.output.c_str());
  print_lines("warning: ", warnings);
  print_lines("note: ", notes);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// check

struct CheckArgs {
  DatasetArgs data;
  int64_t shots = 0, seed = -1;
  bool deep = false, no_split_cache = false;
};

int run_check(const CheckArgs& a) {
  const Resolved r = resolve(a.data);
  std::vector<std::string> problems;
  std::printf("dataset folder: %s\n%s     %s\nimage root:     %s\n", r.dataset_dir.c_str(),
              r.split_json.empty() ? "source:    " : "split file:",
              r.split_json.empty() ? r.dataset_dir.c_str() : r.split_json.c_str(),
              r.image_root.c_str());
  const DatasetSplit d = read_resolved(r, false);
  const CoopSplit& split = d.split;
  const size_t k = split.classnames.size();
  std::printf("classes:        %zu\n", k);
  const std::pair<const char*, const std::vector<LabeledImage>*> subsets[3] = {
      {"train", &split.train}, {"val", &split.val}, {"test", &split.test}};
  for (int i = 0; i < 3; ++i) {
    const auto& [name, items] = subsets[i];
    std::printf("%-6s          %zu images", name, items->size());
    if (!items->empty()) {
      const ClassCounts c = class_counts(*items, k, 1);
      std::printf(", %lld..%lld per class", static_cast<long long>(c.min),
                  static_cast<long long>(c.max));
    }
    std::printf("\n");
    if (!d.files_listed[i]) {  // else found by listing the class folders
      try {
        ImageDataset ds;
        ds.items = *items;
        check_image_files_exist(ds, std::string(name) + " subset");
      } catch (const Error& e) {
        problems.push_back(e.what());
        continue;
      }
    }
    if (a.deep && !items->empty()) {
      const std::vector<std::string> bad =
          undecodable_images(*items, [name](size_t done, size_t total) {
            std::fprintf(stderr, "\rdecoding the %s images: %zu/%zu", name, done, total);
            std::fflush(stderr);
          });
      std::fprintf(stderr, "\n");
      if (bad.empty()) {
        std::printf("  %-6s        all %zu images decode\n", name, items->size());
      } else {
        std::string msg = std::to_string(bad.size()) + " of " + std::to_string(items->size()) +
                          " " + name + " image(s) cannot be decoded:";
        for (size_t j = 0; j < bad.size() && j < 5; ++j) msg += "\n    " + bad[j];
        if (bad.size() > 5) msg += "\n    ...";
        problems.push_back(msg);
      }
    }
  }
  print_lines("warning: ", d.warnings);
  print_lines("note: ", d.notes);
  const bool test_only = r.own_layout && r.layout->test_only();
  // The few-shot split tgpt-train would use for --shots/--seed: the official cache in the dataset
  // folder when there is one (TGP-T's first, as tgpt-train --method tgpt and tgpt-data split
  // look), else the draw.
  std::optional<FewshotSplit> fewshot;
  std::optional<ImportedFewshot> imported;
  if (a.shots >= 1 && !test_only && !split.train.empty()) {
    const FewshotImporter importer = tools::split_cache_importer(
        r.dataset_dir, a.shots, a.seed, true,
        r.layout ? std::vector<std::string>{r.layout->dir} : std::vector<std::string>{},
        !a.no_split_cache);
    try {
      imported = importer ? importer(split, r.image_root) : std::nullopt;
      fewshot = imported ? imported_fewshot_split(split, *imported, a.shots, a.seed, d.val_rule)
                         : draw_dataset_fewshot(d, a.shots, a.seed);
      std::printf("few-shot:       %lld shots, seed %lld: %zu train, %zu val images (%s)\n",
                  static_cast<long long>(a.shots), static_cast<long long>(a.seed),
                  fewshot->train.size(), fewshot->val.size(),
                  imported ? ("from the official cache " + imported->source).c_str()
                           : "drawn as the official code draws it");
    } catch (const Error& e) {
      problems.push_back(e.what());
    }
  }
  if (test_only) {
    std::printf("test set only: evaluated with a model trained on ImageNet");
    std::string classes;  // the ImageNet classes (classnames.txt lines) of its labels
    for (size_t i = 0; i < d.imagenet_index.size() && i < 8; ++i)
      classes += (i ? ", " : "") + std::to_string(d.imagenet_index[i]);
    if (d.imagenet_index.size() > 8) classes += ", ...";
    std::printf("\nImageNet classes of labels 0..%zu: %s\n", d.imagenet_index.size() - 1,
                classes.c_str());
    TGPT_CHECK(!split.test.empty(), "'", d.source, "': the test set is empty");
  } else {
    TGPT_CHECK(!split.train.empty(), "'", d.source, "': the train subset is empty");
  }

  // Captions (training only: none for the test-only sets).
  const std::string file = test_only ? "" : find_captions_file(r.dataset_dir);
  const bool imagenet = r.own_layout && r.layout->format == DatasetFormat::ImageNet;
  if (test_only) {
    // No captions: nothing is trained on a test set.
  } else if (file.empty()) {
    std::printf(
        "captions:       none (no captions.txt or descriptions.txt in %s): fine for "
        "zero-shot and CoOp, TGP-T training needs them\n",
        r.dataset_dir.c_str());
  } else {
    try {
      const CaptionTable captions = read_captions(file, r.caption_rule);
      std::printf("captions:       %s, %zu captions (key rule: %s)\n", file.c_str(),
                  captions.size(), caption_key_rule_name(r.caption_rule));
      for (const auto& [name, items] : subsets)
        std::printf("  %-6s        %zu of %zu images have a caption\n", name,
                    count_captioned(captions, *items), items->size());
      if (fewshot) {
        const std::string what = "few-shot train (" + std::to_string(a.shots) + " shots, seed " +
                                 std::to_string(a.seed) + ")";
        if (imported)  // captions.txt's, else the cache's own (as tgpt-train takes them)
          (void)imported_fewshot_captions(&captions, fewshot->train, *imported, what);
        else
          check_captions(captions, fewshot->train, what);
        std::printf("  few-shot train (%lld shots, seed %lld): all %zu images have a caption\n",
                    static_cast<long long>(a.shots), static_cast<long long>(a.seed),
                    fewshot->train.size());
      } else if (a.shots >= 1) {
        // The few-shot split could not be made: reported above.
      } else if (imagenet) {
        std::printf(
            "  ImageNet's captions cover the authors' few-shot draws only: give --shots "
            "and --seed to check a draw\n");
      } else {
        check_captions(captions, split.train, "train subset");
      }
    } catch (const Error& e) {
      problems.push_back(e.what());
    }
  }
  if (problems.empty()) {
    std::printf("check passed\n");
    return 0;
  }
  std::printf("check found %zu problem(s):\n", problems.size());
  for (const auto& p : problems) std::printf("- %s\n", p.c_str());
  return 1;
}

struct SynthArgs {
  tgpt::synth::WorldOptions world;
  std::string out;
  bool quiet = false;
};

int run_synth(const SynthArgs& a) {
  namespace synth = tgpt::synth;
  std::string last_stage;  // the stage the progress line shows ("" = none printed)
  const auto t0 = std::chrono::steady_clock::now();
  auto progress = [&](const std::string& stage, int64_t done, int64_t total) {
    if (a.quiet) return;
    if (!last_stage.empty() && stage != last_stage) std::fprintf(stderr, "\n");
    last_stage = stage;
    std::fprintf(stderr, "\r%-12s %lld/%lld images", stage.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total));
    std::fflush(stderr);
  };
  synth::WorldStatus status;
  try {
    status = synth::generate_world(a.out, a.world, progress);
  } catch (...) {
    if (!last_stage.empty()) std::fprintf(stderr, "\n");
    throw;
  }
  if (!last_stage.empty()) std::fprintf(stderr, "\n");
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto seed = static_cast<unsigned long long>(a.world.seed);
  if (status == synth::WorldStatus::Unchanged) {
    std::printf("%s already holds this world (seed %llu, generator version %d): nothing to do\n",
                a.out.c_str(), seed, synth::kWorldGeneratorVersion);
    return 0;
  }
  std::printf("%s world in %s (seed %llu): %lld pretraining images",
              status == synth::WorldStatus::Replaced ? "replaced the" : "wrote the", a.out.c_str(),
              seed, static_cast<long long>(a.world.pretrain_images));
  for (const synth::SynthDatasetSpec& d : synth::synth_datasets())
    std::printf(", %s (%zu classes)", d.name.c_str(), d.classes.size());
  std::printf(" in %.1f s\n", secs);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // first: may re-execute with other BLAS kernels
  CLI::App app{"tgpt dataset tools"};
  tgpt::tools::add_version_flag(app, "tgpt-data");
  app.require_subcommand(1);
  SplitArgs sa;
  CLI::App* split = app.add_subcommand("split", "draw a few-shot split file (Dassl / TGP-T draw)");
  add_dataset_options(*split, sa.data);
  split->add_option("--shots", sa.shots, "images per class in train (K)")->required();
  split->add_option("--seed", sa.seed, "seed of Python's random (>= 0)")->required();
  split->add_option("-o,--output", sa.output, "split file to write (JSON)")->required();
  split->add_flag("--no-captions", sa.no_captions, "do not read or check captions");
  split->add_flag("--no-check-files", sa.no_check_files, "do not check that the images exist");
  split->add_flag("--no-split-cache", sa.no_split_cache,
                  "draw even when the dataset folder holds split_fewshot{,2}/shot_K-seed_S.pkl");
  CheckArgs ca;
  CLI::App* check = app.add_subcommand("check", "check a dataset's files, sizes and captions");
  add_dataset_options(*check, ca.data);
  auto* shots = check->add_option("--shots", ca.shots, "check captions of this few-shot draw");
  auto* seed = check->add_option("--seed", ca.seed, "seed of that draw (>= 0)");
  shots->needs(seed);
  seed->needs(shots);
  check->add_flag("--deep", ca.deep, "also decode every image (slow: reads every file)");
  check->add_flag("--no-split-cache", ca.no_split_cache,
                  "with --shots/--seed: draw even when the dataset folder holds "
                  "split_fewshot{,2}/shot_K-seed_S.pkl");
  SynthArgs ya;
  CLI::App* synth = app.add_subcommand(
      "synth", "write the synthetic captioned image world (pretraining set + CoOp datasets)");
  synth->add_option("--out", ya.out, "output folder (missing, empty, or a previous world)")
      ->required();
  synth->add_option("--seed", ya.world.seed, "world seed")->capture_default_str();
  synth->add_option("--pretrain", ya.world.pretrain_images, "pretraining images")
      ->capture_default_str();
  synth->add_option("--size", ya.world.image_size, "image side in pixels (16..512)")
      ->capture_default_str();
  synth->add_option("--train-per-class", ya.world.train_per_class, "train images per class")
      ->capture_default_str();
  synth->add_option("--val-per-class", ya.world.val_per_class, "val images per class")
      ->capture_default_str();
  synth->add_option("--test-per-class", ya.world.test_per_class, "test images per class")
      ->capture_default_str();
  synth->add_flag("--quiet", ya.quiet, "no progress line");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;
  }
  const std::string name = split->parsed() ? "split" : synth->parsed() ? "synth" : "check";
  try {
    if (split->parsed()) return run_split(sa);
    if (synth->parsed()) return run_synth(ya);
    if (ca.shots != 0 || ca.seed != -1) {
      TGPT_CHECK(ca.shots >= 1, "--shots must be >= 1, got ", ca.shots);
      TGPT_CHECK(ca.seed >= 0, "--seed must be >= 0, got ", ca.seed);
    }
    return run_check(ca);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tgpt-data %s: %s\n", name.c_str(), e.what());
    return 1;
  }
}

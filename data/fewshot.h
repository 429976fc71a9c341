/*
 * fewshot.h — few-shot splits drawn exactly as Dassl's generate_fewshot_dataset and TGP-T's
 * datasets/basic.py draw them (../shared/spec/data.md §1.3, method.md §4.4), the few-shot split
 * file (split_zhou format), and the one call that turns a dataset in the CoOp layout (split JSON
 * + image root + captions.txt) into few-shot train/val with captions.
 *
 * Draw, for a seed S and shots K:
 *   random.seed(S) (CPython's generator, data/python_random.h; Dassl's set_random_seed);
 *   per subset, items are grouped by label, labels in first-appearance order, items in list order;
 *   per label: random.sample(items, K) when it has at least K items, else all of them in list
 *   order (repeat=False); the chosen items of each label follow one another in draw order.
 *   Train first with K = shots, then val from the same stream with K = min(shots, 4)
 *   (FewshotValRule::MinShots4, every dataset but ImageNet) or max(shots, 8)
 *   (FewshotValRule::MaxShots8, TGP-T's ImageNet val, drawn from split_ImageNet.json's "val").
 *   The test subset is kept whole.
 * Seeds: the draw needs S >= 0. Dassl only seeds when SEED >= 0 (a negative seed means an
 *   unseeded, unreproducible draw), so a negative seed is refused here; PythonRandom itself takes
 *   |S| as CPython does.
 * Split file: {"train": [[relpath, label, classname], ...], "val": [...], "test": [...],
 *   "fewshot": {"shots": K, "seed": S, "val_shots": Kv, "source": "<split file>"}} written as
 *   Python's json.dump(indent=4, separators=(",", ": ")) writes the first three keys (non-ASCII
 *   escaped), atomically. Paths are relative to the image root, train/val in draw order. The
 *   extra "fewshot" key is ignored by read_coop_split and by Dassl's read_split, which read it.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "data/captions.h"
#include "data/dataset.h"
#include "data/python_random.h"

namespace tgpt {

// How many val items per class are drawn.
enum class FewshotValRule {
  MinShots4,  // min(shots, 4): CoOp / TGP-T, every dataset but ImageNet
  MaxShots8,  // max(shots, 8): TGP-T's ImageNet val (from split_ImageNet.json)
};
int64_t fewshot_val_shots(int64_t shots, FewshotValRule rule);

// One per-label draw from `rng`: indices into `labels` in draw order (see the header comment).
std::vector<size_t> sample_per_label(const std::vector<int64_t>& labels, int64_t k,
                                     PythonRandom& rng);

// Indices into the train and val pools, in draw order.
struct FewshotIndices {
  std::vector<size_t> train, val;
};
FewshotIndices draw_fewshot_indices(const std::vector<int64_t>& train_labels,
                                    const std::vector<int64_t>& val_labels, int64_t shots,
                                    int64_t seed, FewshotValRule rule = FewshotValRule::MinShots4);

// A few-shot split: train and val are the chosen items in draw order, test the whole test subset.
struct FewshotSplit {
  std::vector<std::string> classnames;  // [num classes], index = label
  std::vector<LabeledImage> train, val, test;
  int64_t shots = 0, seed = 0, val_shots = 0;
  std::string source;  // the split file it was drawn from
};

struct FewshotOptions {
  FewshotValRule val_rule = FewshotValRule::MinShots4;
  // ImageNet: draw val from this list (split_ImageNet.json's "val") instead of split.val.
  const std::vector<LabeledImage>* val_pool = nullptr;
};

// Draws the few-shot train and val of a CoOp split. Errors: shots <= 0, seed < 0, an empty train
// subset, labels out of range of the class list.
FewshotSplit generate_fewshot(const CoopSplit& split, int64_t shots, int64_t seed,
                              const FewshotOptions& options = {});

// The split file text (format in the header comment).
std::string fewshot_split_json(const FewshotSplit& split);
// Writes the split file atomically.
void write_fewshot_split(const std::string& path, const FewshotSplit& split);
// Reads a few-shot split file (read_coop_split, paths joined to image_root) with its "fewshot"
// record; a plain split_zhou file without one reads with shots = seed = val_shots = 0. Errors: a
// "fewshot" record that is not an object of non-negative integers shots, seed, val_shots.
FewshotSplit read_fewshot_split(const std::string& path, const std::string& image_root,
                                bool check_files = false);

// A few-shot train/val imported instead of the draw: the official split caches
// (convert/fewshot_pickle.h), which win over the draw as in the official code.
struct ImportedFewshot {
  std::string source;                    // the file read
  std::vector<LabeledImage> train, val;  // in the file's order
  // [train.size()] or empty: the captions the file carries (used where captions.txt has none).
  std::vector<std::optional<std::string>> train_captions;
};
// Called with the dataset's whole split and its image root; nullopt: draw as usual.
using FewshotImporter = std::function<std::optional<ImportedFewshot>(
    const CoopSplit& split, const std::string& image_root)>;

// Called on the dataset's whole split (train, val, test) after it is read and before the
// few-shot draw or import; may remove items (tgpt-train --skip-bad removes the images that
// cannot be read, so the draw runs on the readable ones).
using SplitFilter = std::function<void(CoopSplit& split)>;

// The few-shot split of an import: its train and val, the test subset and class names of
// `split`; val_shots = fewshot_val_shots(shots, rule), 0 when the import has no val.
FewshotSplit imported_fewshot_split(const CoopSplit& split, const ImportedFewshot& imported,
                                    int64_t shots, int64_t seed, FewshotValRule rule);
// The captions of an imported train list: captions.txt's entry (when `table` is not null and
// has one), else the import's own. Errors: an item with neither (naming `what`, how many and the
// first few).
std::vector<std::string> imported_fewshot_captions(const CaptionTable* table,
                                                   const std::vector<LabeledImage>& train,
                                                   const ImportedFewshot& imported,
                                                   const std::string& what);
// Whether every imported train item carries a caption.
bool imported_fewshot_has_captions(const ImportedFewshot& imported);

// A dataset in the CoOp layout.
struct CoopFewshotRequest {
  std::string dataset_dir;  // holds captions.txt (or descriptions.txt)
  std::string split_json;   // split_zhou_<Name>.json
  std::string image_root;   // what the split's paths are relative to
  int64_t shots = 16, seed = 1;
  CaptionKeyRule caption_rule = CaptionKeyRule::RelativePath;
  bool captions = true;            // read captions; every few-shot training image must have one
  std::string captions_file;       // the captions file ("": dataset_dir's captions.txt)
  bool check_files = true;         // every image of the split file must exist
  FewshotImporter import_fewshot;  // when set and it returns a split, that split wins
  SplitFilter filter_split;        // when set, applied to the split before the draw
};

struct CoopFewshotData {
  FewshotSplit split;
  std::string captions_file;                // "" without captions
  std::vector<std::string> train_captions;  // [split.train.size()]; empty without captions
};

// split JSON + image root (+ captions) -> few-shot train/val (+ the training captions).
CoopFewshotData load_coop_fewshot(const CoopFewshotRequest& request);

}  // namespace tgpt

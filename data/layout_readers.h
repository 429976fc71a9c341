/*
 * layout_readers.h — readers of the dataset layouts without a CoOp split file (FGVCAircraft,
 * ImageNet, ImageNetV2, ImageNet-Sketch, ImageNet-A, ImageNet-R; ../shared/spec/data.md §1.1,
 * §1.3, method.md §5), giving the structure the few-shot draw works from (CoopSplit: train / val
 * / test lists of (path, label, relpath) with the class names in label order), and the one
 * loader for every dataset of the table in data/dataset_layout.h.
 *
 * FGVCAircraft (Dassl's datasets/fgvc_aircraft.py), <dir> = $DATA/fgvc_aircraft:
 *   variants.txt        one class name per line (stripped); label = line index.
 *   images_variant_{train,val,test}.txt   "<id> <variant name>" per line, stripped and cut at
 *                       the first space (the name keeps its inner spaces, as Python's
 *                       " ".join(line.strip().split(" ")[1:])); image images/<id>.jpg
 *                       (relpath "<id>.jpg"), label of the variant; items in file order.
 *   Few-shot: train K per class, then val min(K, 4) per class from the same stream.
 * ImageNet (Dassl's datasets/imagenet.py, TGP-T's datasets/imagenet.py), <dir> = $DATA/imagenet:
 *   classnames.txt      "<wnid> <class name with spaces>"; label = line index. data.md lists no
 *                       class-name rewrites for ImageNet (the file holds CLIP's cleaned names).
 *   train = images/train/<wnid>/<file>, test = images/val/<wnid>/<file> (ImageNet's val set is
 *     the test set; relpaths "train/<wnid>/<file>", "val/<wnid>/<file>" under images/).
 *     Dassl labels by the sorted folder list; here train/ and val/ must hold exactly one folder
 *     per wnid of classnames.txt, which must be sorted, so both rules give the same labels.
 *   Within a class, images are sorted by file name. The official code lists them with
 *     os.listdir (Dassl's listdir_nohidden, sort=False), whose order depends on the file system,
 *     so ImageNet few-shot draws match the official ones only where listdir returns the names
 *     sorted (data.md §1.3); DatasetSplit::notes says so.
 *   val = split_ImageNet.json's "val" list ([relpath under images/, label, classname]; TGP-T
 *     reads only that key) when the file exists, else empty (CoOp validates on the test set; a
 *     note says so). Few-shot: train K per class, then val max(K, 8) per class from the same
 *     stream (FewshotValRule::MaxShots8).
 * classnames.txt (every ImageNet layout): "<wnid> <name>" per line, stripped, cut at the first
 *   space; wnids unique and in sorted order (ImageNetV2's folders and the A/R class indices
 *   depend on it); blank lines only at the end of the file.
 * ImageNetV2: <image_root>/<i>/<file> for i = 0..N-1 (N = classes of classnames.txt); folder i
 *   is the i-th class, label i. No other sub-folders.
 * ImageNet-Sketch, -A, -R: <image_root>/<wnid>/<file>: the sub-folders in sorted order, label =
 *   index in that order (0..199 for A/R), class name looked up by wnid; files directly in the image
 *   root (README.txt) are skipped. imagenet_index[label] = the wnid's line in classnames.txt (the
 *   ImageNet class, to select the rows of a 1000-way head; identity for V2 and a full Sketch).
 *   These are test sets only: train and val are empty.
 * Images: the non-hidden files of a class folder with an image extension (dataset.h
 *   is_image_file_name); the official code takes every non-hidden file.
 * Sizes are compared with the table (dataset_layout.h); a difference is a warning string.
 * Errors (tgpt::Error naming the file and line, or the folder): a missing file or folder, a
 * malformed line, an unknown variant or wnid, a duplicate, unsorted classnames.txt, a class
 * folder without images, a missing image (with check_files).
 */
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/dataset.h"
#include "data/dataset_layout.h"
#include "data/fewshot.h"

namespace tgpt {

// classnames.txt of the ImageNet layouts, in line order.
struct ImageNetClassnames {
  std::string file;
  std::vector<std::string> wnids, names;  // [N]
  std::unordered_map<std::string, int64_t> index_of_wnid;
  // The line (ImageNet class) of `wnid`; -1 when it is not in the file.
  int64_t index_of(const std::string& wnid) const;
};
ImageNetClassnames read_imagenet_classnames(const std::string& path);

// A dataset read in its own layout.
struct DatasetSplit {
  CoopSplit split;         // class names in label order; test-only sets: train and val empty
  std::string image_root;  // what the relpaths are relative to
  std::string source;      // the file or folder read (the few-shot split file's "source")
  // Per subset (train, val, test): its paths came from a folder listing (so the files exist).
  bool files_listed[3] = {false, false, false};
  FewshotValRule val_rule = FewshotValRule::MinShots4;
  // ImageNet variants: [num classes], the ImageNet class (classnames.txt line) of each label.
  std::vector<int64_t> imagenet_index;
  std::vector<std::string> warnings;  // sizes that differ from the published ones
  std::vector<std::string> notes;     // ImageNet's listdir caveat, a missing split_ImageNet.json
};

// The image root of a layout under its dataset folder.
std::string layout_image_root(const DatasetLayout& layout, const std::string& dataset_dir);

DatasetSplit read_fgvc_aircraft(const std::string& dataset_dir, bool check_files = true);
DatasetSplit read_imagenet(const std::string& dataset_dir, bool check_files = true);
// ImageNetV2, ImageNetSketch or ImageNetSubset (A/R): classnames.txt in dataset_dir, the class
// folders in image_root.
DatasetSplit read_imagenet_variant(DatasetFormat format, const std::string& dataset_dir,
                                   const std::string& image_root);
// Any dataset of the table (CoopSplit: its split_zhou file), with the size warnings.
DatasetSplit read_dataset(const DatasetLayout& layout, const std::string& dataset_dir,
                          bool check_files = true);
// "<subset> has N images; the published <Name> split has M" for each known size that differs.
std::vector<std::string> dataset_size_warnings(const DatasetLayout& layout, const CoopSplit& split);

// The official few-shot draw of a dataset read in its layout (generate_fewshot with its val
// rule); source = d.source.
FewshotSplit draw_dataset_fewshot(const DatasetSplit& d, int64_t shots, int64_t seed);

struct DatasetFewshotRequest {
  const DatasetLayout* layout = nullptr;
  std::string dataset_dir;  // $DATA/<layout.dir>; holds captions.txt
  int64_t shots = 16, seed = 1;
  bool captions = true;       // every few-shot training image must have a caption
  std::string captions_file;  // "": dataset_dir's captions.txt (or descriptions.txt)
  std::optional<CaptionKeyRule> caption_rule;  // unset: the layout's
  bool check_files = true;                     // every image of a list file must exist
  FewshotImporter import_fewshot;              // when set and it returns a split, that split wins
  SplitFilter filter_split;                    // when set, applied to the split before the draw
};

struct DatasetFewshotData {
  CoopFewshotData fewshot;
  std::string image_root;
  std::vector<std::string> warnings, notes;
};

// A dataset of the table -> few-shot train/val (+ the training captions), as load_coop_fewshot
// for the CoOp layout. Errors: a test-only dataset (it is evaluated with an ImageNet model),
// shots <= 0, seed < 0, and the readers' errors.
DatasetFewshotData load_dataset_fewshot(const DatasetFewshotRequest& request);

}  // namespace tgpt

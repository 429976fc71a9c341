/*
 * captions.h — TGP-T's per-image content descriptions (../shared/spec/method.md §3.4,
 * data.md §1.4): `<dataset_dir>/captions.txt` (what TGP-T's code opens; the README calls it
 * `descriptions.txt`, also accepted), and the lookup of a training image's caption.
 *
 * File: UTF-8 text, one line per image: KEY TAB TEXT [TAB CATEGORY ...]; only KEY and TEXT are
 *   used (as TGP-T: line.strip('\n').split('\t'), fields 0 and 1). Lines end at \n, \r\n or \r
 *   (Python's universal newlines, as TGP-T reads the file in text mode); a UTF-8 byte-order mark
 *   is dropped; empty lines are skipped. Errors naming the file and line: a line without a tab,
 *   an empty key, an empty text, a line that is not valid UTF-8, the same key twice with
 *   different texts (the same text twice is accepted).
 * Keys: the image path relative to the image root, as written in the split JSON, except
 *   StanfordCars: the file holds bare names (`00467.jpg`) and TGP-T's loader keys them as
 *     os.path.join("cars_train", name) (`datasets/stanford_cars.py`), which is the split JSON's
 *     path of a cars_train image (the Cars image root is the dataset folder itself). A key that
 *     already starts with `cars_train/` is taken as it is rather than prefixed twice.
 *   FGVCAircraft: keys are `<id>.jpg`, the image's file name (its image root is `images/`);
 *     lookups use the file name of the item's path.
 *   ImageNet: keys are `impath[28:]`, the path relative to $DATA
 *     (`imagenet/images/train/<wnid>/<file>`); lookups prefix `imagenet/images/` to the path
 *     relative to the image root `imagenet/images`.
 * Every training image needs a caption (TGP-T's batching fails on None); check_captions says how
 * many are missing and names the first few.
 */
#pragma once

#include <cstddef>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/dataset.h"

namespace tgpt {

// How caption-file keys relate to split paths (see the header comment).
enum class CaptionKeyRule { RelativePath, StanfordCars, FGVCAircraft, ImageNet };

const char* caption_key_rule_name(CaptionKeyRule rule);

struct CaptionTable {
  std::string file;  // the file read
  CaptionKeyRule rule = CaptionKeyRule::RelativePath;
  std::unordered_map<std::string, std::string> text_by_key;  // keys after the rule's prefixing

  size_t size() const { return text_by_key.size(); }
  // The caption of an image given by its path relative to the image root (LabeledImage::relpath);
  // nullptr when there is none.
  const std::string* find(const std::string& relpath) const;
};

// The key under which `relpath` (relative to the image root) is looked up.
std::string caption_lookup_key(const std::string& relpath, CaptionKeyRule rule);

// Parses caption-file text; `file` names the source in errors.
CaptionTable parse_captions(const std::string& text, const std::string& file, CaptionKeyRule rule);
// Reads a caption file.
CaptionTable read_captions(const std::string& path, CaptionKeyRule rule);
// `<dataset_dir>/captions.txt`, else `<dataset_dir>/descriptions.txt`; "" when neither exists.
std::string find_captions_file(const std::string& dataset_dir);
// Reads the captions file of a dataset folder; the error names both file names it looked for.
CaptionTable read_dataset_captions(const std::string& dataset_dir, CaptionKeyRule rule);

// Throws unless every item has a caption: the error names `what`, the caption file, how many of
// the items have none and the first few keys looked up.
void check_captions(const CaptionTable& captions, const std::vector<LabeledImage>& items,
                    const std::string& what);
// The captions of the items, in order ([items.size()]); checks them first (check_captions).
std::vector<std::string> captions_for(const CaptionTable& captions,
                                      const std::vector<LabeledImage>& items,
                                      const std::string& what);
// How many of the items have a caption.
size_t count_captioned(const CaptionTable& captions, const std::vector<LabeledImage>& items);

}  // namespace tgpt

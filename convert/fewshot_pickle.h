/*
 * fewshot_pickle.h — imports the few-shot split caches of the official code
 * (../shared/spec/data.md §1.3 and "Grounded in the gaps" item 1), read with the non-executing
 * convert/pickle_reader.h:
 *
 *   CoOp / Dassl: <dataset_dir>/split_fewshot/shot_{K}-seed_{S}.pkl =
 *     {"train": [Datum, ...], "val": [Datum, ...]} (ImageNet: {"train": [...]}), where a Datum is
 *     an instance of dassl.data.datasets.base_dataset.Datum whose BUILD state is the dict
 *     {"_impath": absolute path, "_label": int, "_domain": int, "_classname": str}.
 *   TGP-T: <dataset_dir>/split_fewshot2/shot_{K}-seed_{S}.pkl = the same two lists of plain dicts
 *     {"impath", "label", "classname", "caption", "tokenized_caption"}; tokenized_caption is a
 *     tensor pickled through torch.storage._load_from_bytes: skipped, never loaded (captions are
 *     re-tokenised from "caption").
 *
 * Paths: the pickles hold absolute paths of the author's machine. Each is rewritten against the
 * user's dataset folder by its dataset-relative tail: the last path component equal to the
 * dataset folder's name (or one of FewshotPickleTarget::folder_names) is found, and what follows
 * it is joined to dataset_dir ("/nas/x/oxford_pets/images/a.jpg" ->
 * <dataset_dir>/images/a.jpg). The result must lie under the image root (relpath = the rest) and,
 * with check_files, exist. Labels must be in range of the dataset's class list and the class
 * name must be that label's. Items keep the pickle's order. The user's tree is only read.
 *
 * Errors (tgpt::Error naming the file, and the subset and item index): a damaged pickle (the
 * reader's errors name the opcode and offset), any callable but Datum and the tensor rebuild
 * functions, a root that is not {"train": list[, "val": list]}, an item of the wrong shape or
 * types, a mix of Datum and dict items, an empty train list, a path without the dataset folder
 * name or with a ".." after it, a missing image (naming the original and the rewritten path), a
 * label or class name that disagrees with the class list.
 */
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tgpt {

enum class FewshotPickleFormat {
  CoopDatum,  // split_fewshot/: Dassl Datum objects
  TgptDict,   // split_fewshot2/: dicts with captions
};
const char* fewshot_pickle_format_name(FewshotPickleFormat f);

struct FewshotPickleItem {
  std::string original_path;  // as the pickle holds it
  std::string path;           // rewritten: dataset_dir joined with the dataset-relative tail
  std::string relpath;        // relative to the image root
  int64_t label = 0;
  std::string classname;
  std::optional<std::string> caption;  // TGP-T items with a "caption" string
};

struct FewshotPickle {
  std::string file;
  FewshotPickleFormat format = FewshotPickleFormat::CoopDatum;
  std::vector<FewshotPickleItem> train, val;  // pickle order; val empty when the key is absent
  bool has_val = false;                       // the pickle has a "val" list
};

// The user's copy of the dataset.
struct FewshotPickleTarget {
  std::string dataset_dir;  // the dataset folder (e.g. $DATA/oxford_pets)
  std::string image_root;   // the folder the relpaths are relative to (inside dataset_dir)
  std::vector<std::string> classnames;    // [num classes], index = label
  std::vector<std::string> folder_names;  // other names of the dataset folder (the layout's dir)
  bool check_files = true;                // every rewritten image must exist
};

// The dataset-relative tail of an absolute path from another machine joined to dataset_dir;
// throws when no component matches basename(dataset_dir) or folder_names, or the tail is empty
// or holds "..".
std::string rewrite_fewshot_path(const std::string& original, const std::string& dataset_dir,
                                 const std::vector<std::string>& folder_names);

FewshotPickle read_fewshot_pickle(const std::string& path, const FewshotPickleTarget& target);
// The same on the file's bytes (`path` names it in errors).
FewshotPickle parse_fewshot_pickle(std::string_view data, const std::string& path,
                                   const FewshotPickleTarget& target);

// The cache file of shots K and seed S in a dataset folder, as the official code looks for it:
// split_fewshot2/ (TGP-T) and split_fewshot/ (CoOp), TGP-T's first when tgpt_first; "" when
// neither exists.
std::string find_fewshot_pickle(const std::string& dataset_dir, int64_t shots, int64_t seed,
                                bool tgpt_first);

}  // namespace tgpt

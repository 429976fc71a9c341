/*
 * dataset.h — dataset readers: image folders (one sub-folder per class), CoOp split files
 * (split_zhou_<Name>.json, ../shared/spec/data.md §1.1–1.2), prompt-template files
 * ({"DatasetName": ["a photo of a {}.", ...]}, method.md §10), and small file helpers for the
 * tools (list files, atomic text writes).
 *
 * Image folder:  ROOT/<class>/<image>. Classes are the non-hidden sub-folders of ROOT (symlinks
 *   followed) in sorted (byte-wise, = code point) order; label = index in that order. Images are
 *   the non-hidden regular files directly inside a class folder (not recursive, as CoOp's
 *   read_data) whose extension is .jpg/.jpeg/.png/.bmp/.gif/.webp/.tif/.tiff/.ppm/.pgm in any
 *   case, sorted (the formats data/image.h decodes). Other files and files directly in ROOT are
 *   ignored. Prompt class names replace '_' by ' ' in the folder name.
 * CoOp split:    {"train": [[relpath, label, classname], ...], "val": [...], "test": [...]}.
 *   Paths are joined to the image root as os.path.join does (an absolute path stays as is).
 *   Labels must be non-negative JSON integers; within the whole file each label has one class
 *   name and each class name one label; the labels used are exactly 0..K-1. Class names are kept
 *   raw (TGP-T feeds them to the templates unchanged, method.md §1.2 point 7). Keys other than
 *   the three are ignored, as Dassl's read_split does.
 * Templates:     each template holds "{}" exactly once and no other brace, so Python's
 *   str.format(classname) is a plain substitution (fill_template).
 * Every problem throws tgpt::Error naming the file (and the entry).
 */
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace tgpt {

struct LabeledImage {
  std::string path;  // file path as it will be opened (image root joined)
  int64_t label = 0;
  std::string relpath;  // the path as the split file writes it, relative to the image root
                        // (image folders: "<class>/<file>")
};

// A labelled image list with its class names (index = label).
struct ImageDataset {
  std::vector<std::string> classnames;  // prompt-ready class names, [K]
  std::vector<LabeledImage> items;      // in reading order

  int64_t num_classes() const { return static_cast<int64_t>(classnames.size()); }
  std::vector<std::string> paths() const;
  std::vector<int64_t> labels() const;
};

// True when the file name ends in .jpg/.jpeg/.png/.bmp/.gif/.webp/.tif/.tiff/.ppm/.pgm (any case).
bool is_image_file_name(const std::string& name);

// Sorted (byte-wise) names of the non-hidden sub-folders of `dir` (symlinks followed). Throws
// when `dir` cannot be listed.
std::vector<std::string> list_subfolders(const std::string& dir);
// Sorted names of the non-hidden regular files directly in `dir` with an image extension
// (is_image_file_name). Throws when `dir` cannot be listed.
std::vector<std::string> list_image_files(const std::string& dir);

// Reads an image-folder dataset. Errors: ROOT missing or not a folder, no class sub-folders, a
// class folder without images.
ImageDataset read_image_folder(const std::string& root);

// The three subsets of a CoOp split file, sharing one class list.
struct CoopSplit {
  std::vector<std::string> classnames;  // raw class names, index = label, [K]
  std::vector<LabeledImage> train, val, test;
};

// Reads and validates a split file. With check_files, every image must exist (the error names
// how many are missing and the first few entries).
CoopSplit read_coop_split(const std::string& json_path, const std::string& image_root,
                          bool check_files = false);
// One subset ("train", "val" or "test") as a dataset with the file's full class list.
ImageDataset coop_split_subset(const CoopSplit& split, const std::string& subset);
// Throws unless every item's file exists; the error names `source`, how many are missing and
// the first few (index and path).
void check_image_files_exist(const ImageDataset& ds, const std::string& source);

// Decodes every item's image (data/image.h; in parallel, one image per task, block by block) and
// returns the decoder's error (which names the file) for each that fails, in item order. progress
// (may be empty) is called on the calling thread after each block with (images done, total).
std::vector<std::string> undecodable_images(
    const std::vector<LabeledImage>& items,
    const std::function<void(size_t done, size_t total)>& progress = {});

// An image that cannot be read: its path and the decoder's error (which names the file).
struct UnreadableImage {
  std::string path;
  std::string error;
};
// Decodes every image of train, val and test (undecodable_images: in parallel; a missing file is
// unreadable too) and removes the items that fail from the split; returns them, train's first,
// in item order. progress (may be empty) gets the subset's name with undecodable_images's counts.
std::vector<UnreadableImage> drop_unreadable_images(
    CoopSplit& split,
    const std::function<void(const std::string& subset, size_t done, size_t total)>& progress = {});

// Template lists in file order: {dataset name, templates}.
using TemplateLists = std::vector<std::pair<std::string, std::vector<std::string>>>;
// Reads a templates JSON file; validates every template of every list.
TemplateLists read_templates_file(const std::string& path);
// The list for a dataset name (exact key match); the error lists the available names.
const std::vector<std::string>& select_templates(const TemplateLists& lists,
                                                 const std::string& dataset_name,
                                                 const std::string& source = "templates");
// Throws unless `tmpl` holds "{}" exactly once and no other '{' or '}'. `where` prefixes errors.
void check_template(const std::string& tmpl, const std::string& where);
// Python's tmpl.format(classname) for a checked template.
std::string fill_template(const std::string& tmpl, const std::string& classname);
// Prompts per class: result[c][j] = fill_template(templates[j], classnames[c]). Checks every
// template; throws when there are no classes or no templates.
std::vector<std::vector<std::string>> class_prompts(const std::vector<std::string>& classnames,
                                                    const std::vector<std::string>& templates);

// The whole content of a file; `what` names it in errors ("split file", ...).
std::string read_text_file(const std::string& path, const char* what);
// Non-blank lines of a text file (a trailing '\r' is dropped; lines of only whitespace are
// skipped). Throws when the file cannot be read.
std::vector<std::string> read_list_file(const std::string& path);
// Writes `text` to a temporary file next to `path`, flushes and fsyncs it, then renames it over
// `path`, so readers never see a partial file.
void write_text_file_atomic(const std::string& path, const std::string& text);

}  // namespace tgpt

/*
 * layout_readers.cpp — FGVCAircraft's list files, ImageNet's class folders and
 * split_ImageNet.json, the ImageNet variants' folders, and the loader for every dataset of the
 * table (rules in layout_readers.h).
 */
#include "data/layout_readers.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "base/error.h"

namespace tgpt {

namespace fs = std::filesystem;

namespace {

// Python's str.strip() for ASCII whitespace.
std::string strip(const std::string& s) {
  const char* ws = " \t\n\r\v\f";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

struct Line {
  size_t number = 0;  // 1-based
  std::string text;   // stripped
};

// The stripped lines of a list file (a UTF-8 byte-order mark dropped). Blank lines are allowed
// only at the end: one in the middle would shift the line index of every later line.
std::vector<Line> read_lines(const std::string& path, const char* what) {
  std::error_code ec;
  TGPT_CHECK(fs::is_regular_file(path, ec), what, " '", path, "' does not exist");
  std::string text = read_text_file(path, what);
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);
  std::vector<Line> lines;
  size_t start = 0, number = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back({++number, strip(text.substr(start, end - start))});
    start = end + 1;
  }
  while (!lines.empty() && lines.back().text.empty()) lines.pop_back();
  for (const Line& l : lines)
    TGPT_CHECK(!l.text.empty(), what, " '", path, "' line ", l.number,
               ": blank line (only the end of the file may have blank lines; one here would "
               "shift the lines after it)");
  TGPT_CHECK(!lines.empty(), what, " '", path, "' has no entries");
  return lines;
}

// "<key> <rest>" cut at the first space (Python's split(" ") then " ".join of the rest).
bool split_first_space(const std::string& s, std::string* key, std::string* rest) {
  const size_t sp = s.find(' ');
  if (sp == std::string::npos) return false;
  *key = s.substr(0, sp);
  *rest = s.substr(sp + 1);
  return !key->empty() && !rest->empty();
}

void require_folder(const std::string& dir, const std::string& what) {
  std::error_code ec;
  TGPT_CHECK(fs::exists(dir, ec), what, " '", dir, "' does not exist");
  TGPT_CHECK(fs::is_directory(dir, ec), what, " '", dir, "' is not a folder");
}

// The images of one class folder, appended with `label`; relpath = rel_prefix + file name.
void add_class_images(const fs::path& folder, int64_t label, const std::string& rel_prefix,
                      const std::string& what, std::vector<LabeledImage>* out) {
  const std::vector<std::string> files = list_image_files(folder.string());
  TGPT_CHECK(!files.empty(), what, ": class folder '", folder.string(),
             "' has no image files (.jpg, .jpeg, .png, .bmp, .gif)");
  for (const std::string& f : files) out->push_back({(folder / f).string(), label, rel_prefix + f});
}

// ImageNet's train/ or val/: one folder per wnid of `cls`, labels = class lines.
std::vector<LabeledImage> read_imagenet_subset(const ImageNetClassnames& cls,
                                               const std::string& images, const char* sub) {
  const fs::path root = fs::path(images) / sub;
  const std::string what = "ImageNet " + std::string(sub) + " folder";
  require_folder(root.string(), what);
  const std::vector<std::string> folders = list_subfolders(root.string());
  TGPT_CHECK(!folders.empty(), what, " '", root.string(),
             "' has no class sub-folders: ImageNet's train/ and val/ need one folder per wnid of "
             "classnames.txt holding that class's images (data.md §1.1; the val images must be "
             "moved into their wnid folders)");
  std::set<std::string> present;
  for (const std::string& f : folders) {
    TGPT_CHECK(cls.index_of(f) >= 0, what, " '", root.string(), "': sub-folder '", f,
               "' is not a wnid of '", cls.file, "'");
    present.insert(f);
  }
  if (present.size() != cls.wnids.size()) {
    std::string list;
    size_t n = 0;
    for (size_t i = 0; i < cls.wnids.size(); ++i) {
      if (present.count(cls.wnids[i])) continue;
      if (++n <= 5) list += "\n  " + cls.wnids[i] + " (" + cls.names[i] + ")";
    }
    TGPT_FAIL(what, " '", root.string(), "' has no folder for ", n, " of the ", cls.wnids.size(),
              " classes of '", cls.file,
              "' (labels are class lines, so every class needs one), e.g.:", list);
  }
  std::vector<LabeledImage> items;
  for (size_t i = 0; i < cls.wnids.size(); ++i)
    add_class_images(root / cls.wnids[i], static_cast<int64_t>(i),
                     std::string(sub) + "/" + cls.wnids[i] + "/", what, &items);
  return items;
}

// split_ImageNet.json's "val": [relpath under images/, label, classname] entries.
std::vector<LabeledImage> read_imagenet_val_split(const std::string& path,
                                                  const std::string& images,
                                                  const ImageNetClassnames& cls, bool check_files,
                                                  std::vector<std::string>* notes) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(read_text_file(path, "split file"));
  } catch (const nlohmann::json::exception& e) {
    TGPT_FAIL("split file '", path, "' is not valid JSON: ", e.what());
  }
  const std::string where = "split file '" + path + "'";
  TGPT_CHECK(doc.is_object() && doc.contains("val"), where,
             ": must be an object with a \"val\" list (TGP-T reads only that key)");
  const nlohmann::json& list = doc["val"];
  TGPT_CHECK(list.is_array(), where, ": \"val\" must be a list");
  const auto k = static_cast<int64_t>(cls.wnids.size());
  std::vector<LabeledImage> items;
  size_t renamed = 0;
  std::string first_renamed;
  for (size_t i = 0; i < list.size(); ++i) {
    const nlohmann::json& e = list[i];
    const std::string at = where + ": \"val\"[" + std::to_string(i) + "] ";
    TGPT_CHECK(e.is_array() && e.size() == 3 && e[0].is_string() && e[1].is_number_integer() &&
                   e[2].is_string() && !e[0].get<std::string>().empty(),
               at, "must be [relative_path, integer_label, classname], got ",
               e.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace).substr(0, 120));
    const auto label = e[1].get<int64_t>();
    TGPT_CHECK(label >= 0 && label < k, at, "label ", label, " is outside 0..", k - 1, " of '",
               cls.file, "'");
    const std::string rel = e[0].get<std::string>();
    const std::string& name = cls.names[static_cast<size_t>(label)];
    if (e[2].get<std::string>() != name && renamed++ == 0) {
      // Appended piecewise: GCC 12's -Wrestrict misfires on "\"" + str.
      first_renamed = '"';
      first_renamed += e[2].get<std::string>();
      first_renamed += "\" for \"";
      first_renamed += name;
      first_renamed += "\" (label " + std::to_string(label) + ")";
    }
    const std::string p = rel[0] == '/' ? rel : (fs::path(images) / rel).string();
    items.push_back({p, label, rel});
  }
  if (renamed > 0)
    notes->push_back(where + ": " + std::to_string(renamed) +
                     " val entries name their class differently from classnames.txt, e.g. " +
                     first_renamed + "; the classnames.txt names are used");
  if (check_files) {
    ImageDataset ds;
    ds.items = items;
    check_image_files_exist(ds, where + " \"val\"");
  }
  return items;
}

std::vector<int64_t> iota(size_t n) {
  std::vector<int64_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<int64_t>(i);
  return v;
}

}  // namespace

int64_t ImageNetClassnames::index_of(const std::string& wnid) const {
  const auto it = index_of_wnid.find(wnid);
  return it == index_of_wnid.end() ? -1 : it->second;
}

ImageNetClassnames read_imagenet_classnames(const std::string& path) {
  ImageNetClassnames c;
  c.file = path;
  for (const Line& l : read_lines(path, "class names file")) {
    std::string wnid, name;
    TGPT_CHECK(split_first_space(l.text, &wnid, &name), "class names file '", path, "' line ",
               l.number, ": expected \"<wnid> <class name>\", got \"", l.text, "\"");
    const auto [it, added] = c.index_of_wnid.emplace(wnid, static_cast<int64_t>(c.wnids.size()));
    TGPT_CHECK(added, "class names file '", path, "' line ", l.number, ": wnid '", wnid,
               "' again (first on the line of class ", it->second, ")");
    TGPT_CHECK(c.wnids.empty() || c.wnids.back() < wnid, "class names file '", path, "' line ",
               l.number, ": wnid '", wnid, "' comes after '", c.wnids.back(),
               "'; the wnids must be in sorted order (labels follow the sorted class folders, and "
               "ImageNetV2's folder i is the i-th line)");
    c.wnids.push_back(wnid);
    c.names.push_back(name);
  }
  return c;
}

std::string layout_image_root(const DatasetLayout& layout, const std::string& dataset_dir) {
  return layout.image_root.empty() ? dataset_dir
                                   : (fs::path(dataset_dir) / layout.image_root).string();
}

DatasetSplit read_fgvc_aircraft(const std::string& dataset_dir, bool check_files) {
  require_folder(dataset_dir, "FGVCAircraft folder");
  const fs::path dir(dataset_dir);
  DatasetSplit d;
  d.image_root = (dir / "images").string();
  d.source = dataset_dir;
  require_folder(d.image_root, "FGVCAircraft image folder");
  const std::string variants = (dir / "variants.txt").string();
  std::map<std::string, int64_t> label_of;
  for (const Line& l : read_lines(variants, "FGVCAircraft variants file")) {
    const auto [it, added] =
        label_of.emplace(l.text, static_cast<int64_t>(d.split.classnames.size()));
    TGPT_CHECK(added, "FGVCAircraft variants file '", variants, "' line ", l.number, ": variant \"",
               l.text, "\" again (first on line ", it->second + 1, ")");
    d.split.classnames.push_back(l.text);
  }
  const std::pair<const char*, std::vector<LabeledImage>*> subsets[3] = {
      {"train", &d.split.train}, {"val", &d.split.val}, {"test", &d.split.test}};
  for (const auto& [name, items] : subsets) {
    const std::string file = (dir / ("images_variant_" + std::string(name) + ".txt")).string();
    for (const Line& l : read_lines(file, "FGVCAircraft list file")) {
      std::string id, variant;
      TGPT_CHECK(split_first_space(l.text, &id, &variant), "FGVCAircraft list file '", file,
                 "' line ", l.number, ": expected \"<image id> <variant name>\", got \"", l.text,
                 "\"");
      const auto it = label_of.find(variant);
      TGPT_CHECK(it != label_of.end(), "FGVCAircraft list file '", file, "' line ", l.number,
                 ": variant \"", variant, "\" is not in '", variants, "'");
      const std::string rel = id + ".jpg";
      items->push_back({(fs::path(d.image_root) / rel).string(), it->second, rel});
    }
    if (check_files) {
      ImageDataset ds;
      ds.items = *items;
      check_image_files_exist(ds, "FGVCAircraft list file '" + file + "'");
    }
  }
  return d;
}

DatasetSplit read_imagenet(const std::string& dataset_dir, bool check_files) {
  require_folder(dataset_dir, "ImageNet folder");
  const fs::path dir(dataset_dir);
  const ImageNetClassnames cls = read_imagenet_classnames((dir / "classnames.txt").string());
  DatasetSplit d;
  d.image_root = (dir / "images").string();
  d.source = dataset_dir;
  d.files_listed[0] = d.files_listed[2] = true;
  d.val_rule = FewshotValRule::MaxShots8;
  require_folder(d.image_root, "ImageNet image folder");
  d.split.classnames = cls.names;
  d.split.train = read_imagenet_subset(cls, d.image_root, "train");
  d.split.test = read_imagenet_subset(cls, d.image_root, "val");
  const std::string val_json = (dir / "split_ImageNet.json").string();
  std::error_code ec;
  if (fs::exists(val_json, ec)) {
    d.split.val = read_imagenet_val_split(val_json, d.image_root, cls, check_files, &d.notes);
  } else {
    d.notes.push_back("no '" + val_json +
                      "': the few-shot val is empty (TGP-T draws max(K, 8) per class from that "
                      "file's \"val\"; CoOp validates on the test set)");
  }
  d.notes.push_back(
      "ImageNet's images are taken in file-name order within a class; the official code uses "
      "os.listdir order, so its few-shot draws are the same only where listdir is sorted "
      "(data.md §1.3)");
  d.imagenet_index = iota(cls.wnids.size());
  return d;
}

DatasetSplit read_imagenet_variant(DatasetFormat format, const std::string& dataset_dir,
                                   const std::string& image_root) {
  TGPT_CHECK(format == DatasetFormat::ImageNetV2 || format == DatasetFormat::ImageNetSketch ||
                 format == DatasetFormat::ImageNetSubset,
             "read_imagenet_variant: not an ImageNet variant format");
  require_folder(dataset_dir, "dataset folder");
  const ImageNetClassnames cls =
      read_imagenet_classnames((fs::path(dataset_dir) / "classnames.txt").string());
  DatasetSplit d;
  d.image_root = image_root;
  d.source = image_root;
  d.files_listed[2] = true;
  require_folder(image_root, "image folder");
  const std::vector<std::string> folders = list_subfolders(image_root);
  const std::string what = "image folder '" + image_root + "'";
  if (format == DatasetFormat::ImageNetV2) {
    // Folders 0..N-1, folder i = the i-th class of classnames.txt.
    std::set<std::string> expected;
    for (size_t i = 0; i < cls.wnids.size(); ++i) expected.insert(std::to_string(i));
    for (const std::string& f : folders)
      TGPT_CHECK(expected.count(f), what, ": sub-folder '", f, "' is not a class number 0..",
                 cls.wnids.size() - 1,
                 " (ImageNetV2's folder i is "
                 "the i-th class of '",
                 cls.file, "')");
    for (size_t i = 0; i < cls.wnids.size(); ++i) {
      const fs::path folder = fs::path(image_root) / std::to_string(i);
      std::error_code ec;
      TGPT_CHECK(fs::is_directory(folder, ec), what, ": no folder '", std::to_string(i),
                 "' for class ", i, " (", cls.wnids[i], " ", cls.names[i], ") of '", cls.file, "'");
      add_class_images(folder, static_cast<int64_t>(i), std::to_string(i) + "/", what,
                       &d.split.test);
    }
    d.split.classnames = cls.names;
    d.imagenet_index = iota(cls.wnids.size());
    return d;
  }
  // Sketch, A, R: wnid folders in sorted order, names by wnid.
  TGPT_CHECK(!folders.empty(), what, " has no class sub-folders (expected one per wnid)");
  for (size_t label = 0; label < folders.size(); ++label) {
    const int64_t c = cls.index_of(folders[label]);
    TGPT_CHECK(c >= 0, what, ": sub-folder '", folders[label], "' is not a wnid of '", cls.file,
               "'");
    d.split.classnames.push_back(cls.names[static_cast<size_t>(c)]);
    d.imagenet_index.push_back(c);
    add_class_images(fs::path(image_root) / folders[label], static_cast<int64_t>(label),
                     folders[label] + "/", what, &d.split.test);
  }
  return d;
}

std::vector<std::string> dataset_size_warnings(const DatasetLayout& l, const CoopSplit& split) {
  std::vector<std::string> out;
  const std::pair<const char*, size_t> subsets[3] = {
      {"train", split.train.size()}, {"val", split.val.size()}, {"test", split.test.size()}};
  const int64_t expected[3] = {l.num_train, l.num_val, l.num_test};
  for (int i = 0; i < 3; ++i)
    if (expected[i] > 0 && static_cast<int64_t>(subsets[i].second) != expected[i])
      out.push_back(std::string(subsets[i].first) + " has " + std::to_string(subsets[i].second) +
                    " images; the published " + l.name + " split has " +
                    std::to_string(expected[i]));
  if (l.num_classes > 0 && static_cast<int64_t>(split.classnames.size()) != l.num_classes)
    out.push_back(std::to_string(split.classnames.size()) + " classes; the published " + l.name +
                  " split has " + std::to_string(l.num_classes));
  return out;
}

DatasetSplit read_dataset(const DatasetLayout& layout, const std::string& dataset_dir,
                          bool check_files) {
  DatasetSplit d;
  const std::string image_root = layout_image_root(layout, dataset_dir);
  switch (layout.format) {
    case DatasetFormat::CoopSplit: {
      TGPT_CHECK(!layout.split_file.empty(), "dataset ", layout.name, " has no split file");
      d.source = (fs::path(dataset_dir) / layout.split_file).string();
      d.image_root = image_root;
      d.split = read_coop_split(d.source, image_root, check_files);
      break;
    }
    case DatasetFormat::FGVCAircraft: d = read_fgvc_aircraft(dataset_dir, check_files); break;
    case DatasetFormat::ImageNet: d = read_imagenet(dataset_dir, check_files); break;
    default: d = read_imagenet_variant(layout.format, dataset_dir, image_root); break;
  }
  d.warnings = dataset_size_warnings(layout, d.split);
  return d;
}

FewshotSplit draw_dataset_fewshot(const DatasetSplit& d, int64_t shots, int64_t seed) {
  FewshotOptions o;
  o.val_rule = d.val_rule;
  FewshotSplit f = generate_fewshot(d.split, shots, seed, o);
  f.source = d.source;
  return f;
}

DatasetFewshotData load_dataset_fewshot(const DatasetFewshotRequest& r) {
  TGPT_CHECK(r.layout != nullptr, "load_dataset_fewshot: no dataset layout");
  const DatasetLayout& l = *r.layout;
  TGPT_CHECK(!l.test_only(), l.name,
             " is a test set only (no train or val): it is evaluated with a model trained on "
             "ImageNet (the domain-generalisation protocol, data.md §2), not trained on");
  TGPT_CHECK(r.shots >= 1, "few-shot split: shots must be >= 1, got ", r.shots);
  TGPT_CHECK(r.seed >= 0, "few-shot split: seed must be >= 0, got ", r.seed,
             " (Dassl seeds Python's random only when SEED >= 0)");
  DatasetFewshotData out;
  // Captions first: a missing file is reported before the (longer) folder and file checks.
  // (With an importer and no captions file at all, the import's own captions may do.)
  CaptionTable captions;
  bool have_captions = false;
  const CaptionKeyRule rule = r.caption_rule.value_or(l.caption_rule);
  auto read_caption_table = [&] {
    captions = r.captions_file.empty() ? read_dataset_captions(r.dataset_dir, rule)
                                       : read_captions(r.captions_file, rule);
    have_captions = true;
  };
  if (r.captions &&
      (!r.import_fewshot || !r.captions_file.empty() || !find_captions_file(r.dataset_dir).empty()))
    read_caption_table();
  DatasetSplit d = read_dataset(l, r.dataset_dir, r.check_files);
  if (r.filter_split) r.filter_split(d.split);
  out.image_root = d.image_root;
  out.warnings = d.warnings;
  out.notes = d.notes;
  const std::optional<ImportedFewshot> imported =
      r.import_fewshot ? r.import_fewshot(d.split, d.image_root) : std::nullopt;
  if (imported)
    out.fewshot.split = imported_fewshot_split(d.split, *imported, r.shots, r.seed, d.val_rule);
  else
    out.fewshot.split = draw_dataset_fewshot(d, r.shots, r.seed);
  if (r.captions) {
    const std::string what = "few-shot train (" + std::to_string(r.shots) + " shots, seed " +
                             std::to_string(r.seed) + ") of " + l.name + " ('" +
                             out.fewshot.split.source + "')";
    if (!imported) {
      if (!have_captions) read_caption_table();  // no cache: the captions file is needed
      out.fewshot.captions_file = captions.file;
      out.fewshot.train_captions = captions_for(captions, out.fewshot.split.train, what);
    } else {
      if (!have_captions && !imported_fewshot_has_captions(*imported)) read_caption_table();
      out.fewshot.captions_file = have_captions ? captions.file : imported->source;
      out.fewshot.train_captions = imported_fewshot_captions(
          have_captions ? &captions : nullptr, out.fewshot.split.train, *imported, what);
    }
  }
  return out;
}

}  // namespace tgpt

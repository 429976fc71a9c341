/*
 * fewshot.cpp — the Dassl / TGP-T few-shot draw, the few-shot split file and the CoOp-layout
 * loader (rules in fewshot.h).
 */
#include "data/fewshot.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "base/error.h"

namespace tgpt {

int64_t fewshot_val_shots(int64_t shots, FewshotValRule rule) {
  return rule == FewshotValRule::MaxShots8 ? std::max<int64_t>(shots, 8)
                                           : std::min<int64_t>(shots, 4);
}

std::vector<size_t> sample_per_label(const std::vector<int64_t>& labels, int64_t k,
                                     PythonRandom& rng) {
  TGPT_CHECK(k >= 1, "few-shot draw: shots per class must be >= 1, got ", k);
  // Groups in first-appearance order of their label (Python's defaultdict keeps insertion order).
  std::unordered_map<int64_t, size_t> group_of_label;
  std::vector<std::vector<size_t>> groups;
  for (size_t i = 0; i < labels.size(); ++i) {
    const auto [it, added] = group_of_label.emplace(labels[i], groups.size());
    if (added) groups.emplace_back();
    groups[it->second].push_back(i);
  }
  std::vector<size_t> out;
  for (const auto& items : groups) {
    const auto n = static_cast<int64_t>(items.size());
    if (n >= k) {
      for (const int64_t j : rng.sample(n, k)) out.push_back(items[static_cast<size_t>(j)]);
    } else {
      out.insert(out.end(), items.begin(), items.end());  // repeat=False: all of them
    }
  }
  return out;
}

FewshotIndices draw_fewshot_indices(const std::vector<int64_t>& train_labels,
                                    const std::vector<int64_t>& val_labels, int64_t shots,
                                    int64_t seed, FewshotValRule rule) {
  TGPT_CHECK(shots >= 1, "few-shot draw: shots must be >= 1, got ", shots);
  TGPT_CHECK(seed >= 0, "few-shot draw: seed must be >= 0, got ", seed,
             " (Dassl seeds Python's random only when SEED >= 0; a negative seed is an unseeded, "
             "unreproducible draw)");
  PythonRandom rng(seed);
  FewshotIndices out;
  out.train = sample_per_label(train_labels, shots, rng);
  out.val = sample_per_label(val_labels, fewshot_val_shots(shots, rule), rng);
  return out;
}

namespace {

std::vector<int64_t> checked_labels(const std::vector<LabeledImage>& items, size_t num_classes,
                                    const char* subset) {
  std::vector<int64_t> labels;
  labels.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const int64_t y = items[i].label;
    TGPT_CHECK(y >= 0 && static_cast<uint64_t>(y) < num_classes, "few-shot draw: ", subset, "[", i,
               "] '", items[i].relpath, "' has label ", y, ", outside 0..",
               static_cast<int64_t>(num_classes) - 1);
    labels.push_back(y);
  }
  return labels;
}

std::vector<LabeledImage> pick(const std::vector<LabeledImage>& items,
                               const std::vector<size_t>& idx) {
  std::vector<LabeledImage> out;
  out.reserve(idx.size());
  for (const size_t i : idx) out.push_back(items[i]);
  return out;
}

}  // namespace

FewshotSplit generate_fewshot(const CoopSplit& split, int64_t shots, int64_t seed,
                              const FewshotOptions& options) {
  TGPT_CHECK(!split.classnames.empty(), "few-shot draw: the split has no classes");
  TGPT_CHECK(!split.train.empty(), "few-shot draw: the split's train subset is empty");
  const std::vector<LabeledImage>& val_pool = options.val_pool ? *options.val_pool : split.val;
  const size_t k = split.classnames.size();
  const FewshotIndices idx =
      draw_fewshot_indices(checked_labels(split.train, k, "train"),
                           checked_labels(val_pool, k, "val"), shots, seed, options.val_rule);
  FewshotSplit out;
  out.classnames = split.classnames;
  out.train = pick(split.train, idx.train);
  out.val = pick(val_pool, idx.val);
  out.test = split.test;
  out.shots = shots;
  out.seed = seed;
  out.val_shots = fewshot_val_shots(shots, options.val_rule);
  return out;
}

std::string fewshot_split_json(const FewshotSplit& split) {
  using ojson = nlohmann::ordered_json;
  auto subset = [&](const std::vector<LabeledImage>& items, const char* name) {
    ojson list = ojson::array();
    for (size_t i = 0; i < items.size(); ++i) {
      const LabeledImage& it = items[i];
      TGPT_CHECK(!it.relpath.empty(), "few-shot split file: ", name, "[", i,
                 "] has no path relative to the image root (path '", it.path, "')");
      TGPT_CHECK(it.label >= 0 && static_cast<uint64_t>(it.label) < split.classnames.size(),
                 "few-shot split file: ", name, "[", i, "] has label ", it.label, ", outside 0..",
                 static_cast<int64_t>(split.classnames.size()) - 1);
      list.push_back(
          ojson::array({it.relpath, it.label, split.classnames[static_cast<size_t>(it.label)]}));
    }
    return list;
  };
  ojson doc = ojson::object();
  doc["train"] = subset(split.train, "train");
  doc["val"] = subset(split.val, "val");
  doc["test"] = subset(split.test, "test");
  doc["fewshot"] = {{"shots", split.shots},
                    {"seed", split.seed},
                    {"val_shots", split.val_shots},
                    {"source", split.source}};
  try {
    return doc.dump(4, ' ', /*ensure_ascii=*/true) + "\n";
  } catch (const nlohmann::json::exception& e) {
    TGPT_FAIL("few-shot split file: a path or class name is not valid UTF-8: ", e.what());
  }
}

void write_fewshot_split(const std::string& path, const FewshotSplit& split) {
  write_text_file_atomic(path, fewshot_split_json(split));
}

FewshotSplit read_fewshot_split(const std::string& path, const std::string& image_root,
                                bool check_files) {
  CoopSplit split = read_coop_split(path, image_root, check_files);
  FewshotSplit out;
  out.classnames = std::move(split.classnames);
  out.train = std::move(split.train);
  out.val = std::move(split.val);
  out.test = std::move(split.test);
  // read_coop_split parsed the file already, so it is valid JSON.
  const nlohmann::json doc = nlohmann::json::parse(read_text_file(path, "split file"));
  if (doc.contains("fewshot")) {
    const nlohmann::json& rec = doc["fewshot"];
    const std::string where = "split file '" + path + "': \"fewshot\" record";
    TGPT_CHECK(rec.is_object(), where, " must be an object");
    int64_t* fields[3] = {&out.shots, &out.seed, &out.val_shots};
    const char* names[3] = {"shots", "seed", "val_shots"};
    for (int i = 0; i < 3; ++i) {
      TGPT_CHECK(rec.contains(names[i]) && rec[names[i]].is_number_integer(), where, ": \"",
                 names[i], "\" must be an integer");
      const auto v = rec[names[i]].get<int64_t>();
      TGPT_CHECK(v >= 0, where, ": \"", names[i], "\" must be >= 0, got ", v);
      *fields[i] = v;
    }
    if (rec.contains("source") && rec["source"].is_string()) out.source = rec["source"];
  }
  return out;
}

FewshotSplit imported_fewshot_split(const CoopSplit& split, const ImportedFewshot& imported,
                                    int64_t shots, int64_t seed, FewshotValRule rule) {
  FewshotSplit out;
  out.classnames = split.classnames;
  out.train = imported.train;
  out.val = imported.val;
  out.test = split.test;
  out.shots = shots;
  out.seed = seed;
  out.val_shots = imported.val.empty() ? 0 : fewshot_val_shots(shots, rule);
  out.source = imported.source;
  return out;
}

bool imported_fewshot_has_captions(const ImportedFewshot& imported) {
  if (imported.train_captions.size() != imported.train.size()) return false;
  for (const auto& c : imported.train_captions)
    if (!c) return false;
  return true;
}

std::vector<std::string> imported_fewshot_captions(const CaptionTable* table,
                                                   const std::vector<LabeledImage>& train,
                                                   const ImportedFewshot& imported,
                                                   const std::string& what) {
  std::vector<std::string> out;
  out.reserve(train.size());
  std::vector<std::string> missing;
  for (size_t i = 0; i < train.size(); ++i) {
    const std::string* c = table ? table->find(train[i].relpath) : nullptr;
    if (c) {
      out.push_back(*c);
    } else if (i < imported.train_captions.size() && imported.train_captions[i]) {
      out.push_back(*imported.train_captions[i]);
    } else {
      out.emplace_back();
      missing.push_back(train[i].relpath);
    }
  }
  if (!missing.empty()) {
    std::string first;
    for (size_t i = 0; i < missing.size() && i < 5; ++i)
      first += (i ? ", '" : "'") + missing[i] + "'";
    TGPT_FAIL(what, ": ", missing.size(), " of ", train.size(), " training images have no caption ",
              table ? "in '" + table->file + "' " : std::string("(no captions file) "), "nor in '",
              imported.source, "'; first: ", first);
  }
  return out;
}

CoopFewshotData load_coop_fewshot(const CoopFewshotRequest& r) {
  TGPT_CHECK(r.shots >= 1, "few-shot split: shots must be >= 1, got ", r.shots);
  TGPT_CHECK(r.seed >= 0, "few-shot split: seed must be >= 0, got ", r.seed,
             " (Dassl seeds Python's random only when SEED >= 0)");
  CoopFewshotData out;
  // Captions first: a missing file is reported before the (longer) split checks.
  // (With an importer and no captions file at all, the import's own captions may do.)
  CaptionTable captions;
  bool have_captions = false;
  auto read_caption_table = [&] {
    captions = r.captions_file.empty() ? read_dataset_captions(r.dataset_dir, r.caption_rule)
                                       : read_captions(r.captions_file, r.caption_rule);
    have_captions = true;
  };
  if (r.captions &&
      (!r.import_fewshot || !r.captions_file.empty() || !find_captions_file(r.dataset_dir).empty()))
    read_caption_table();
  CoopSplit split = read_coop_split(r.split_json, r.image_root, r.check_files);
  if (r.filter_split) r.filter_split(split);
  const std::optional<ImportedFewshot> imported =
      r.import_fewshot ? r.import_fewshot(split, r.image_root) : std::nullopt;
  if (imported) {
    out.split =
        imported_fewshot_split(split, *imported, r.shots, r.seed, FewshotValRule::MinShots4);
  } else {
    out.split = generate_fewshot(split, r.shots, r.seed);
    out.split.source = r.split_json;
  }
  if (r.captions) {
    const std::string what = "few-shot train (" + std::to_string(r.shots) + " shots, seed " +
                             std::to_string(r.seed) + ") of '" + out.split.source + "'";
    if (!imported) {
      if (!have_captions) read_caption_table();  // no cache: the captions file is needed
      out.captions_file = captions.file;
      out.train_captions = captions_for(captions, out.split.train, what);
    } else {
      if (!have_captions && !imported_fewshot_has_captions(*imported)) read_caption_table();
      out.captions_file = have_captions ? captions.file : imported->source;
      out.train_captions = imported_fewshot_captions(have_captions ? &captions : nullptr,
                                                     out.split.train, *imported, what);
    }
  }
  return out;
}

}  // namespace tgpt

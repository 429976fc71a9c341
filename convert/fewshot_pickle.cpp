/*
 * fewshot_pickle.cpp — the CoOp / TGP-T few-shot split caches (format and rules in
 * fewshot_pickle.h) read with the non-executing pickle reader, paths rewritten against the user's
 * dataset folder.
 */
#include "convert/fewshot_pickle.h"

#include <filesystem>
#include <fstream>
#include <utility>

#include "base/error.h"
#include "convert/pickle_reader.h"

namespace tgpt {

namespace fs = std::filesystem;

const char* fewshot_pickle_format_name(FewshotPickleFormat f) {
  return f == FewshotPickleFormat::CoopDatum ? "CoOp (Dassl Datum)" : "TGP-T (dicts with captions)";
}

namespace {

constexpr const char* kDatumClass = "dassl.data.datasets.base_dataset.Datum";

std::string read_binary_file(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  TGPT_CHECK(!ec, "few-shot split cache '", path, "': cannot read (", ec.message(), ")");
  TGPT_CHECK(size <= (uintmax_t(1) << 30), "few-shot split cache '", path, "' is too large (", size,
             " bytes)");
  std::ifstream in(path, std::ios::binary);
  TGPT_CHECK(in, "few-shot split cache '", path, "': cannot open");
  std::string data(static_cast<size_t>(size), '\0');
  in.read(data.data(), static_cast<std::streamsize>(size));
  TGPT_CHECK(in.gcount() == static_cast<std::streamsize>(size), "few-shot split cache '", path,
             "': short read");
  return data;
}

// The value of a string key of a dict with the expected kind, or an error naming the item.
const PickleValue& field(const PickleValue& d, const std::string& key, PickleKind kind,
                         const std::string& where) {
  const PickleValue* v = d.get(key);
  TGPT_CHECK(v != nullptr, where, " has no '", key, "'");
  TGPT_CHECK(v->kind == kind, where, ": '", key, "' is a ", pickle_kind_name(v->kind), ", not a ",
             pickle_kind_name(kind));
  return *v;
}

}  // namespace

std::string rewrite_fewshot_path(const std::string& original, const std::string& dataset_dir,
                                 const std::vector<std::string>& folder_names) {
  std::vector<std::string> names = folder_names;
  const std::string own = fs::path(dataset_dir).lexically_normal().filename().string();
  if (!own.empty()) names.insert(names.begin(), own);
  if (own.empty()) {  // dataset_dir ends with a separator
    const fs::path p = fs::path(dataset_dir).lexically_normal().parent_path().filename();
    if (!p.empty()) names.insert(names.begin(), p.string());
  }
  const fs::path original_path(original);
  const std::vector<fs::path> parts(original_path.begin(), original_path.end());
  // The last component naming the dataset folder: what follows is the dataset-relative tail.
  size_t start = parts.size();
  bool found = false;
  for (size_t i = parts.size(); i-- > 0 && !found;)
    for (const auto& n : names)
      if (!n.empty() && parts[i].string() == n) {
        start = i + 1;
        found = true;
        break;
      }
  std::string tried;
  for (const auto& n : names) tried += (tried.empty() ? "'" : ", '") + n + "'";
  TGPT_CHECK(start < parts.size(), "path '", original, "' holds no folder named ", tried,
             " (the dataset folder) followed by a file, so it cannot be rewritten against '",
             dataset_dir, "'");
  fs::path tail;
  for (size_t i = start; i < parts.size(); ++i) {
    const std::string s = parts[i].string();
    TGPT_CHECK(s != "..", "path '", original, "' climbs out of the dataset folder ('..')");
    if (s.empty() || s == ".") continue;
    tail /= parts[i];
  }
  TGPT_CHECK(!tail.empty(), "path '", original, "' names the dataset folder, not an image");
  return (fs::path(dataset_dir) / tail).string();
}

FewshotPickle read_fewshot_pickle(const std::string& path, const FewshotPickleTarget& target) {
  return parse_fewshot_pickle(read_binary_file(path), path, target);
}

FewshotPickle parse_fewshot_pickle(std::string_view data, const std::string& path,
                                   const FewshotPickleTarget& target) {
  FewshotPickle out;
  out.file = path;
  PickleLimits limits;
  limits.allowed_callables = {kDatumClass, "torch._utils._rebuild_tensor_v2",
                              "torch.storage._load_from_bytes", "collections.OrderedDict"};
  const PickleRef root = read_pickle(data, path, limits);
  const std::string what = "few-shot split cache '" + path + "'";
  TGPT_CHECK(root->kind == PickleKind::dict, what, ": the pickle holds a ",
             pickle_kind_name(root->kind), ", not a dict {\"train\": [...], \"val\": [...]}");
  for (const auto& kv : root->dict)
    TGPT_CHECK(kv.first->kind == PickleKind::string &&
                   (kv.first->text == "train" || kv.first->text == "val"),
               what, ": unexpected key (only \"train\" and \"val\" are known)");
  const PickleValue* train = root->get("train");
  TGPT_CHECK(train != nullptr, what, " has no \"train\" list");
  const PickleValue* val = root->get("val");
  out.has_val = val != nullptr;

  const fs::path image_root = fs::path(target.image_root).lexically_normal();
  const size_t num_classes = target.classnames.size();
  bool format_known = false;
  auto read_items = [&](const PickleValue& list, const char* subset,
                        std::vector<FewshotPickleItem>& items) {
    TGPT_CHECK(list.kind == PickleKind::list, what, ": \"", subset, "\" is a ",
               pickle_kind_name(list.kind), ", not a list");
    items.reserve(list.items.size());
    for (size_t i = 0; i < list.items.size(); ++i) {
      const PickleValue& v = *list.items[i];
      const std::string where = what + " " + subset + "[" + std::to_string(i) + "]";
      FewshotPickleFormat f;
      const PickleValue* fields = nullptr;
      if (v.kind == PickleKind::object && v.text == kDatumClass) {
        f = FewshotPickleFormat::CoopDatum;
        TGPT_CHECK(v.state && v.state->kind == PickleKind::dict, where,
                   ": a Datum without a state dict");
        fields = v.state.get();
      } else if (v.kind == PickleKind::dict) {
        f = FewshotPickleFormat::TgptDict;
        fields = &v;
      } else {
        TGPT_FAIL(where, " is a ", pickle_kind_name(v.kind),
                  v.kind == PickleKind::object ? " of class '" + v.text + "'" : std::string(),
                  ", not a Dassl Datum or a TGP-T dict");
      }
      if (!format_known) {
        out.format = f;
        format_known = true;
      }
      TGPT_CHECK(f == out.format, where, " is a ", fewshot_pickle_format_name(f), " item after ",
                 fewshot_pickle_format_name(out.format), " items");
      const bool datum = f == FewshotPickleFormat::CoopDatum;
      FewshotPickleItem it;
      it.original_path =
          field(*fields, datum ? "_impath" : "impath", PickleKind::string, where).text;
      it.label = field(*fields, datum ? "_label" : "label", PickleKind::integer, where).integer;
      it.classname =
          field(*fields, datum ? "_classname" : "classname", PickleKind::string, where).text;
      if (!datum) {
        const PickleValue* c = fields->get("caption");
        if (c && c->kind == PickleKind::string) it.caption = c->text;
        TGPT_CHECK(!c || c->kind == PickleKind::string || c->kind == PickleKind::none, where,
                   ": 'caption' is a ", pickle_kind_name(c ? c->kind : PickleKind::none),
                   ", not a str");
      }
      TGPT_CHECK(it.label >= 0 && static_cast<size_t>(it.label) < num_classes, where, ": label ",
                 it.label, " is out of range for the dataset's ", num_classes, " classes");
      TGPT_CHECK(it.classname == target.classnames[static_cast<size_t>(it.label)], where,
                 ": class name '", it.classname, "' of label ", it.label,
                 " differs from the dataset's class ", it.label, " '",
                 target.classnames[static_cast<size_t>(it.label)],
                 "' (the cache was made from another class list)");
      try {
        it.path = rewrite_fewshot_path(it.original_path, target.dataset_dir, target.folder_names);
      } catch (const Error& e) {
        TGPT_FAIL(where, ": ", e.what());
      }
      const fs::path rel = fs::path(it.path).lexically_normal().lexically_relative(image_root);
      TGPT_CHECK(!rel.empty() && *rel.begin() != "..", where, ": image '", it.original_path,
                 "' rewritten to '", it.path, "' is not under the image root '", target.image_root,
                 "'");
      it.relpath = rel.generic_string();
      if (target.check_files) {
        std::error_code ec;
        TGPT_CHECK(fs::is_regular_file(it.path, ec), where, ": image '", it.original_path,
                   "' rewritten to '", it.path, "' does not exist");
      }
      items.push_back(std::move(it));
    }
  };
  read_items(*train, "train", out.train);
  TGPT_CHECK(!out.train.empty(), what, ": the \"train\" list is empty");
  if (val) read_items(*val, "val", out.val);
  return out;
}

std::string find_fewshot_pickle(const std::string& dataset_dir, int64_t shots, int64_t seed,
                                bool tgpt_first) {
  const std::string name =
      "shot_" + std::to_string(shots) + "-seed_" + std::to_string(seed) + ".pkl";
  const char* folders[2] = {"split_fewshot2", "split_fewshot"};
  if (!tgpt_first) std::swap(folders[0], folders[1]);
  for (const char* f : folders) {
    const fs::path p = fs::path(dataset_dir) / f / name;
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return "";
}

}  // namespace tgpt

/*
 * dataset.cpp — image-folder datasets, CoOp split files, template files, list files and atomic
 * text writes (formats and rules in dataset.h).
 */
#include "data/dataset.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/error.h"
#include "base/parallel.h"
#include "data/image.h"

namespace tgpt {

namespace fs = std::filesystem;

namespace {

std::string lower_ascii(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

nlohmann::json parse_json_file(const std::string& path, const char* what) {
  const std::string text = read_text_file(path, what);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    TGPT_FAIL(what, " '", path, "' is not valid JSON: ", e.what());
  }
}

// Short printable form of a JSON value for error messages.
std::string json_excerpt(const nlohmann::json& v) {
  std::string s = v.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  if (s.size() > 120) s = s.substr(0, 117) + "...";
  return s;
}

// Sorted names of the non-hidden entries of `dir` accepted by `keep`.
template <typename Keep>
std::vector<std::string> list_sorted(const fs::path& dir, Keep keep) {
  std::vector<std::string> names;
  std::error_code ec;
  fs::directory_iterator it(dir, fs::directory_options::follow_directory_symlink, ec);
  TGPT_CHECK(!ec, "cannot list folder '", dir.string(), "': ", ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    TGPT_CHECK(!ec, "cannot list folder '", dir.string(), "': ", ec.message());
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    if (keep(*it)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ImageDataset

std::vector<std::string> ImageDataset::paths() const {
  std::vector<std::string> out;
  out.reserve(items.size());
  for (const auto& it : items) out.push_back(it.path);
  return out;
}

std::vector<int64_t> ImageDataset::labels() const {
  std::vector<int64_t> out;
  out.reserve(items.size());
  for (const auto& it : items) out.push_back(it.label);
  return out;
}

bool is_image_file_name(const std::string& name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos || dot == 0) return false;
  const std::string ext = lower_ascii(name.substr(dot));
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".gif" ||
         ext == ".webp" || ext == ".tif" || ext == ".tiff" || ext == ".ppm" || ext == ".pgm";
}

std::vector<std::string> list_subfolders(const std::string& dir) {
  return list_sorted(dir, [](const fs::directory_entry& e) {
    std::error_code ec;
    return e.is_directory(ec);
  });
}

std::vector<std::string> list_image_files(const std::string& dir) {
  return list_sorted(dir, [](const fs::directory_entry& e) {
    std::error_code ec;
    return e.is_regular_file(ec) && is_image_file_name(e.path().filename().string());
  });
}

ImageDataset read_image_folder(const std::string& root) {
  std::error_code ec;
  TGPT_CHECK(!root.empty(), "image folder: empty path");
  TGPT_CHECK(fs::exists(root, ec), "image folder '", root, "' does not exist");
  TGPT_CHECK(fs::is_directory(root, ec), "image folder '", root, "' is not a folder");
  const std::vector<std::string> classes = list_subfolders(root);
  TGPT_CHECK(!classes.empty(), "image folder '", root,
             "' has no class sub-folders (expected ROOT/<class>/<image files>)");
  ImageDataset ds;
  for (size_t c = 0; c < classes.size(); ++c) {
    const fs::path dir = fs::path(root) / classes[c];
    const std::vector<std::string> files = list_image_files(dir.string());
    TGPT_CHECK(!files.empty(), "image folder '", root, "': class folder '", classes[c],
               "' has no image files (.jpg, .jpeg, .png, .bmp, .gif)");
    std::string name = classes[c];
    std::replace(name.begin(), name.end(), '_', ' ');
    ds.classnames.push_back(name);
    for (const auto& f : files)
      ds.items.push_back({(dir / f).string(), static_cast<int64_t>(c), classes[c] + "/" + f});
  }
  return ds;
}

// ---------------------------------------------------------------------------------------------
// CoOp split files

namespace {

std::string join_image_path(const std::string& root, const std::string& rel) {
  if (!rel.empty() && rel[0] == '/') return rel;  // os.path.join keeps an absolute second part
  if (root.empty()) return rel;
  return (fs::path(root) / rel).string();
}

struct RawEntry {
  std::string rel;
  int64_t label = 0;
  std::string classname;
};

}  // namespace

CoopSplit read_coop_split(const std::string& json_path, const std::string& image_root,
                          bool check_files) {
  const nlohmann::json doc = parse_json_file(json_path, "split file");
  const std::string where = "split file '" + json_path + "'";
  TGPT_CHECK(doc.is_object(), where, ": top level must be an object with keys \"train\", \"val\", ",
             "\"test\", got ", json_excerpt(doc));
  static const char* kSubsets[3] = {"train", "val", "test"};
  std::vector<RawEntry> raw[3];
  std::map<int64_t, std::string> name_of_label;
  std::map<std::string, int64_t> label_of_name;
  for (int s = 0; s < 3; ++s) {
    const char* key = kSubsets[s];
    TGPT_CHECK(doc.contains(key), where, ": missing key \"", key, "\"");
    const nlohmann::json& list = doc.at(key);
    TGPT_CHECK(list.is_array(), where, ": \"", key, "\" must be a list, got ", json_excerpt(list));
    for (size_t i = 0; i < list.size(); ++i) {
      const nlohmann::json& e = list[i];
      const std::string at = where + ": \"" + key + "\"[" + std::to_string(i) + "] ";
      TGPT_CHECK(e.is_array() && e.size() == 3, at,
                 "must be [relative_path, integer_label, classname], got ", json_excerpt(e));
      TGPT_CHECK(e[0].is_string() && !e[0].get<std::string>().empty(), at,
                 "path must be a non-empty string, got ", json_excerpt(e));
      TGPT_CHECK(e[1].is_number_integer(), at, "label must be an integer, got ", json_excerpt(e));
      TGPT_CHECK(e[2].is_string() && !e[2].get<std::string>().empty(), at,
                 "classname must be a non-empty string, got ", json_excerpt(e));
      RawEntry r;
      r.rel = e[0].get<std::string>();
      if (e[1].is_number_unsigned()) {
        const uint64_t u = e[1].get<uint64_t>();
        TGPT_CHECK(u <= static_cast<uint64_t>(INT32_MAX), at, "label ", u, " is too large");
        r.label = static_cast<int64_t>(u);
      } else {
        r.label = e[1].get<int64_t>();
      }
      TGPT_CHECK(r.label >= 0, at, "label must be >= 0, got ", r.label);
      r.classname = e[2].get<std::string>();
      const auto [nit, new_label] = name_of_label.emplace(r.label, r.classname);
      TGPT_CHECK(new_label || nit->second == r.classname, at, "label ", r.label,
                 " has classname \"", r.classname, "\" but earlier entries call it \"", nit->second,
                 "\"");
      const auto [lit, new_name] = label_of_name.emplace(r.classname, r.label);
      TGPT_CHECK(new_name || lit->second == r.label, at, "classname \"", r.classname,
                 "\" has label ", r.label, " but earlier entries give it label ", lit->second);
      raw[s].push_back(std::move(r));
    }
  }
  TGPT_CHECK(!name_of_label.empty(), where, ": no entries in \"train\", \"val\" or \"test\"");
  const int64_t k = static_cast<int64_t>(name_of_label.size());
  const int64_t max_label = name_of_label.rbegin()->first;
  if (max_label != k - 1) {
    int64_t missing = 0;
    while (name_of_label.count(missing)) ++missing;
    TGPT_FAIL(where, ": labels must be 0..K-1 without gaps; the largest label is ", max_label,
              " but there are ", k, " classes (label ", missing, " is never used)");
  }
  CoopSplit split;
  for (const auto& [label, name] : name_of_label) split.classnames.push_back(name);
  std::vector<LabeledImage>* out[3] = {&split.train, &split.val, &split.test};
  std::vector<std::string> missing;
  size_t n_missing = 0;
  for (int s = 0; s < 3; ++s) {
    for (size_t i = 0; i < raw[s].size(); ++i) {
      LabeledImage li{join_image_path(image_root, raw[s][i].rel), raw[s][i].label, raw[s][i].rel};
      if (check_files) {
        std::error_code ec;
        if (!fs::is_regular_file(li.path, ec)) {
          if (missing.size() < 5)
            missing.push_back(std::string("\"") + kSubsets[s] + "\"[" + std::to_string(i) + "] '" +
                              li.path + "'");
          ++n_missing;
        }
      }
      out[s]->push_back(std::move(li));
    }
  }
  if (n_missing > 0) {
    std::string list;
    for (const auto& m : missing) list += "\n  " + m;
    TGPT_FAIL(where, ": ", n_missing, " image file(s) not found under image root '", image_root,
              "', e.g.:", list);
  }
  return split;
}

ImageDataset coop_split_subset(const CoopSplit& split, const std::string& subset) {
  ImageDataset ds;
  ds.classnames = split.classnames;
  if (subset == "train")
    ds.items = split.train;
  else if (subset == "val")
    ds.items = split.val;
  else if (subset == "test")
    ds.items = split.test;
  else
    TGPT_FAIL("split subset must be \"train\", \"val\" or \"test\", got \"", subset, "\"");
  return ds;
}

namespace {

// Per item: "" when its image decodes, else the decoder's error naming the file.
std::vector<std::string> decode_errors(const std::vector<LabeledImage>& items,
                                       const std::function<void(size_t, size_t)>& progress) {
  constexpr size_t kBlock = 256;
  std::vector<std::string> reasons(items.size());
  for (size_t begin = 0; begin < items.size(); begin += kBlock) {
    const size_t len = std::min(kBlock, items.size() - begin);
    // Exceptions must not leave the parallel region: each failure is recorded.
    parallel_for(static_cast<int64_t>(len), [&](int64_t j) {
      const size_t i = begin + static_cast<size_t>(j);
      try {
        (void)decode_image_file(items[i].path);
      } catch (const std::exception& e) {
        reasons[i] = e.what();
        if (reasons[i].empty()) reasons[i] = "unknown error";
      } catch (...) {
        reasons[i] = "unknown error";
      }
    });
    if (progress) progress(begin + len, items.size());
  }
  for (size_t i = 0; i < items.size(); ++i)
    if (!reasons[i].empty() && reasons[i].find(items[i].path) == std::string::npos)
      reasons[i] = items[i].path + ": " + reasons[i];
  return reasons;
}

}  // namespace

std::vector<std::string> undecodable_images(
    const std::vector<LabeledImage>& items,
    const std::function<void(size_t done, size_t total)>& progress) {
  std::vector<std::string> out;
  for (std::string& r : decode_errors(items, progress))
    if (!r.empty()) out.push_back(std::move(r));
  return out;
}

std::vector<UnreadableImage> drop_unreadable_images(
    CoopSplit& split,
    const std::function<void(const std::string& subset, size_t done, size_t total)>& progress) {
  std::vector<UnreadableImage> out;
  const std::pair<const char*, std::vector<LabeledImage>*> subsets[3] = {
      {"train", &split.train}, {"val", &split.val}, {"test", &split.test}};
  for (const auto& [name, items] : subsets) {
    if (items->empty()) continue;
    std::function<void(size_t, size_t)> step;
    const char* subset = name;
    if (progress)
      step = [&progress, subset](size_t done, size_t total) { progress(subset, done, total); };
    const std::vector<std::string> errors = decode_errors(*items, step);
    std::vector<LabeledImage> kept;
    for (size_t i = 0; i < items->size(); ++i) {
      if (errors[i].empty())
        kept.push_back((*items)[i]);
      else
        out.push_back(UnreadableImage{(*items)[i].path, errors[i]});
    }
    *items = std::move(kept);
  }
  return out;
}

void check_image_files_exist(const ImageDataset& ds, const std::string& source) {
  std::string list;
  size_t n_missing = 0;
  for (size_t i = 0; i < ds.items.size(); ++i) {
    std::error_code ec;
    if (fs::is_regular_file(ds.items[i].path, ec)) continue;
    if (n_missing < 5) list += "\n  [" + std::to_string(i) + "] '" + ds.items[i].path + "'";
    ++n_missing;
  }
  TGPT_CHECK(n_missing == 0, source, ": ", n_missing, " of ", ds.items.size(),
             " image file(s) not found, e.g.:", list);
}

// ---------------------------------------------------------------------------------------------
// Templates

void check_template(const std::string& tmpl, const std::string& where) {
  const size_t first = tmpl.find("{}");
  TGPT_CHECK(first != std::string::npos, where, ": template \"", tmpl,
             "\" has no \"{}\" placeholder for the class name");
  TGPT_CHECK(tmpl.find("{}", first + 2) == std::string::npos, where, ": template \"", tmpl,
             "\" has more than one \"{}\"");
  for (size_t i = 0; i < tmpl.size(); ++i) {
    if (i == first || i == first + 1) continue;
    TGPT_CHECK(tmpl[i] != '{' && tmpl[i] != '}', where, ": template \"", tmpl,
               "\" has a brace other than the single \"{}\" (not supported)");
  }
}

std::string fill_template(const std::string& tmpl, const std::string& classname) {
  const size_t at = tmpl.find("{}");
  TGPT_CHECK(at != std::string::npos, "template \"", tmpl, "\" has no \"{}\"");
  return tmpl.substr(0, at) + classname + tmpl.substr(at + 2);
}

std::vector<std::vector<std::string>> class_prompts(const std::vector<std::string>& classnames,
                                                    const std::vector<std::string>& templates) {
  TGPT_CHECK(!classnames.empty(), "class prompts: no class names");
  TGPT_CHECK(!templates.empty(), "class prompts: no templates");
  for (size_t j = 0; j < templates.size(); ++j)
    check_template(templates[j], "template " + std::to_string(j));
  std::vector<std::vector<std::string>> out(classnames.size());
  for (size_t c = 0; c < classnames.size(); ++c)
    for (const auto& t : templates) out[c].push_back(fill_template(t, classnames[c]));
  return out;
}

TemplateLists read_templates_file(const std::string& path) {
  const std::string text = read_text_file(path, "templates file");
  nlohmann::ordered_json doc;
  try {
    doc = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    TGPT_FAIL("templates file '", path, "' is not valid JSON: ", e.what());
  }
  const std::string where = "templates file '" + path + "'";
  TGPT_CHECK(doc.is_object(), where,
             ": top level must be an object {\"DatasetName\": [\"... {} ...\", ...]}");
  TGPT_CHECK(!doc.empty(), where, ": no template lists");
  TemplateLists lists;
  for (const auto& [name, list] : doc.items()) {
    const std::string at = where + ": \"" + name + "\"";
    TGPT_CHECK(list.is_array() && !list.empty(), at, " must be a non-empty list of strings");
    std::vector<std::string> templates;
    for (size_t i = 0; i < list.size(); ++i) {
      TGPT_CHECK(list[i].is_string(), at, "[", i, "] must be a string, got ",
                 list[i].dump(-1, ' ', true, nlohmann::json::error_handler_t::replace));
      templates.push_back(list[i].get<std::string>());
      check_template(templates.back(), at + "[" + std::to_string(i) + "]");
    }
    lists.emplace_back(name, std::move(templates));
  }
  return lists;
}

const std::vector<std::string>& select_templates(const TemplateLists& lists,
                                                 const std::string& dataset_name,
                                                 const std::string& source) {
  for (const auto& [name, templates] : lists)
    if (name == dataset_name) return templates;
  std::string names;
  for (const auto& l : lists) names += (names.empty() ? "" : ", ") + l.first;
  TGPT_FAIL(source, ": no template list for dataset \"", dataset_name, "\" (available: ", names,
            ")");
}

// ---------------------------------------------------------------------------------------------
// Files

std::string read_text_file(const std::string& path, const char* what) {
  std::error_code ec;
  TGPT_CHECK(fs::exists(path, ec), what, " '", path, "' does not exist");
  TGPT_CHECK(!fs::is_directory(path, ec), what, " '", path, "' is a folder, not a file");
  std::ifstream f(path, std::ios::binary);
  TGPT_CHECK(f.good(), "cannot open ", what, " '", path, "': ", std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  TGPT_CHECK(!f.bad(), "cannot read ", what, " '", path, "'");
  return ss.str();
}

std::vector<std::string> read_list_file(const std::string& path) {
  const std::string text = read_text_file(path, "list file");
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t\v\f\r") != std::string::npos) lines.push_back(line);
    pos = eol + 1;
  }
  return lines;
}

void write_text_file_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp.XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  TGPT_CHECK(fd >= 0, "cannot create a temporary file next to '", path,
             "': ", std::strerror(errno));
  auto fail = [&](const char* what) {
    const std::string reason = std::strerror(errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    TGPT_FAIL("cannot ", what, " '", tmp, "' (for '", path, "'): ", reason);
  };
  if (::fchmod(fd, 0644) != 0) fail("chmod");
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t w = ::write(fd, text.data() + done, text.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("write");
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) fail("fsync");
  if (::close(fd) != 0) {
    const std::string reason = std::strerror(errno);
    ::unlink(tmp.c_str());
    TGPT_FAIL("cannot close '", tmp, "': ", reason);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    ::unlink(tmp.c_str());
    TGPT_FAIL("cannot rename '", tmp, "' to '", path, "': ", reason);
  }
}

}  // namespace tgpt

/*
 * captions.cpp — caption-file parsing, key rules and coverage checks (formats in captions.h).
 */
#include "data/captions.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace tgpt {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCarsPrefix = "cars_train/";
constexpr const char* kImageNetPrefix = "imagenet/images/";

bool starts_with(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}

// The table key for a key as written in the file.
std::string table_key(const std::string& file_key, CaptionKeyRule rule) {
  if (rule == CaptionKeyRule::StanfordCars && !starts_with(file_key, kCarsPrefix))
    return kCarsPrefix + file_key;
  return file_key;
}

// Whether s is well-formed UTF-8 (nlohmann's strict dump throws type_error 316 otherwise).
bool valid_utf8(const std::string& s) {
  try {
    (void)nlohmann::json(s).dump();
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

// A key or text short enough for an error message.
std::string excerpt(const std::string& s) {
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

}  // namespace

const char* caption_key_rule_name(CaptionKeyRule rule) {
  switch (rule) {
    case CaptionKeyRule::RelativePath: return "relative path";
    case CaptionKeyRule::StanfordCars: return "StanfordCars (cars_train/ + key)";
    case CaptionKeyRule::FGVCAircraft: return "FGVCAircraft (<id>.jpg)";
    case CaptionKeyRule::ImageNet: return "ImageNet (path relative to $DATA)";
  }
  return "?";
}

std::string caption_lookup_key(const std::string& relpath, CaptionKeyRule rule) {
  switch (rule) {
    case CaptionKeyRule::FGVCAircraft: {
      const size_t slash = relpath.rfind('/');
      return slash == std::string::npos ? relpath : relpath.substr(slash + 1);
    }
    case CaptionKeyRule::ImageNet: return kImageNetPrefix + relpath;
    default: return relpath;
  }
}

const std::string* CaptionTable::find(const std::string& relpath) const {
  const auto it = text_by_key.find(caption_lookup_key(relpath, rule));
  return it == text_by_key.end() ? nullptr : &it->second;
}

CaptionTable parse_captions(const std::string& text, const std::string& file, CaptionKeyRule rule) {
  CaptionTable table;
  table.file = file;
  table.rule = rule;
  std::unordered_map<std::string, size_t> line_of_key;
  size_t pos = 0, line_no = 0;
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) pos = 3;  // UTF-8 byte-order mark
  while (pos < text.size()) {
    // Python's universal newlines (TGP-T opens the file in text mode): \n, \r\n and \r end a line.
    size_t eol = text.find_first_of("\r\n", pos);
    if (eol == std::string::npos) eol = text.size();
    const std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (eol < text.size() && text[eol] == '\r' && pos < text.size() && text[pos] == '\n') ++pos;
    ++line_no;
    if (line.empty()) continue;
    const std::string at = "caption file '" + file + "' line " + std::to_string(line_no);
    TGPT_CHECK(valid_utf8(line), at, ": not valid UTF-8");
    const size_t tab = line.find('\t');
    TGPT_CHECK(tab != std::string::npos, at,
               ": no tab; expected KEY<TAB>TEXT[<TAB>CATEGORY], got \"", excerpt(line), "\"");
    TGPT_CHECK(tab > 0, at, ": empty key (the line starts with a tab)");
    const size_t tab2 = line.find('\t', tab + 1);
    std::string caption =
        line.substr(tab + 1, tab2 == std::string::npos ? std::string::npos : tab2 - tab - 1);
    const std::string key = table_key(line.substr(0, tab), rule);
    TGPT_CHECK(!caption.empty(), at, ": empty caption for key \"", excerpt(key), "\"");
    const auto [it, inserted] = table.text_by_key.emplace(key, caption);
    if (!inserted) {
      TGPT_CHECK(it->second == caption, at, ": key \"", excerpt(key),
                 "\" appears again with a different caption (first on line ", line_of_key.at(key),
                 ")");
      continue;
    }
    line_of_key.emplace(key, line_no);
  }
  return table;
}

CaptionTable read_captions(const std::string& path, CaptionKeyRule rule) {
  return parse_captions(read_text_file(path, "caption file"), path, rule);
}

std::string find_captions_file(const std::string& dataset_dir) {
  for (const char* name : {"captions.txt", "descriptions.txt"}) {
    const fs::path p = fs::path(dataset_dir) / name;
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return "";
}

CaptionTable read_dataset_captions(const std::string& dataset_dir, CaptionKeyRule rule) {
  const std::string file = find_captions_file(dataset_dir);
  TGPT_CHECK(!file.empty(), "no caption file in dataset folder '", dataset_dir,
             "': looked for captions.txt and descriptions.txt (TGP-T's per-image descriptions, ",
             "KEY<TAB>TEXT per line)");
  return read_captions(file, rule);
}

size_t count_captioned(const CaptionTable& captions, const std::vector<LabeledImage>& items) {
  size_t n = 0;
  for (const auto& it : items) n += captions.find(it.relpath) != nullptr;
  return n;
}

void check_captions(const CaptionTable& captions, const std::vector<LabeledImage>& items,
                    const std::string& what) {
  size_t missing = 0;
  std::string first;
  for (const auto& it : items) {
    if (captions.find(it.relpath)) continue;
    if (++missing <= 5) first += "\n  " + caption_lookup_key(it.relpath, captions.rule);
  }
  TGPT_CHECK(missing == 0, what, ": ", missing, " of ", items.size(),
             " image(s) have no caption in '", captions.file, "' (", captions.size(),
             " captions, key rule: ", caption_key_rule_name(captions.rule),
             "); every training image needs one. Keys looked up, e.g.:", first);
}

std::vector<std::string> captions_for(const CaptionTable& captions,
                                      const std::vector<LabeledImage>& items,
                                      const std::string& what) {
  check_captions(captions, items, what);
  std::vector<std::string> out;
  out.reserve(items.size());
  for (const auto& it : items) out.push_back(*captions.find(it.relpath));
  return out;
}

}  // namespace tgpt

/*
 * tgpt_weights.cpp — tgpt model files and official TGP-T checkpoints (train/tgpt_weights.h).
 */
#include "train/tgpt_weights.h"

#include <filesystem>

#include "base/error.h"
#include "convert/torch_checkpoint.h"
#include "engine/safetensors.h"

namespace fs = std::filesystem;

namespace tgpt {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

// The official name of a key read from a file of the module `module` ("" when unknown).
std::string official_name(const std::string& key, const std::string& module) {
  if (starts_with(key, "prompt_learner.") || starts_with(key, "cls_head.") || module.empty())
    return key;
  return module + "." + key;
}

void add_torch_file(TgptWeights& w, const std::string& path, const std::string& module) {
  const TorchCheckpoint ck = load_torch_checkpoint(path);
  for (const auto& [key, t] : ck.tensors) {
    const std::string name = official_name(key, module);
    TGPT_CHECK(!w.tensors.count(name), path, ": tensor ", name, " appears twice in the sources (",
               w.files.empty() ? path : w.files.front(), ")");
    w.tensors[name] = t;
  }
  w.files.push_back(path);
}

void add_safetensors_file(TgptWeights& w, const std::string& path) {
  const SafetensorsFile f = SafetensorsFile::open(path);
  const auto fmt = f.metadata().find("tgpt.format");
  TGPT_CHECK(fmt == f.metadata().end() || fmt->second == "tgpt-prompt", path,
             ": a tgpt '", fmt == f.metadata().end() ? "" : fmt->second,
             "' file, not TGP-T weights (a CLIP weight file goes to --weights)");
  for (const std::string& name : f.names()) w.tensors[name] = f.get(name);
  if (const auto m = f.metadata().find("tgpt.tgpt"); m != f.metadata().end())
    w.metadata = m->second;
  w.files.push_back(path);
}

bool is_safetensors(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  unsigned char b[9] = {0};
  const size_t n = std::fread(b, 1, sizeof b, f);
  std::fclose(f);
  return n == 9 && b[8] == '{';  // u64 header length, then the JSON header
}

}  // namespace

TgptWeights read_tgpt_weights(const std::string& path) {
  TgptWeights w;
  TGPT_CHECK(fs::exists(path), "TGP-T weights: ", path, " does not exist");
  if (fs::is_directory(path)) {
    const fs::path dir(path);
    if (fs::exists(dir / "model-best.safetensors")) {
      add_safetensors_file(w, (dir / "model-best.safetensors").string());
      return w;
    }
    const fs::path pl = dir / "prompt_learner" / "model-best.pth.tar";
    const fs::path head = dir / "cls_head" / "model-best.pth.tar";
    TGPT_CHECK(fs::exists(pl) && fs::exists(head), "TGP-T weights: ", path,
               " holds neither a tgpt model-best.safetensors nor the official "
               "prompt_learner/model-best.pth.tar and cls_head/model-best.pth.tar");
    add_torch_file(w, pl.string(), "prompt_learner");
    add_torch_file(w, head.string(), "cls_head");
    return w;
  }
  if (is_safetensors(path)) {
    add_safetensors_file(w, path);
  } else {
    const std::string parent = fs::path(path).parent_path().filename().string();
    add_torch_file(w, path, parent == "prompt_learner" || parent == "cls_head" ? parent : "");
  }
  return w;
}

TgptLoadReport load_tgpt_weights(TgptModel& model, const TgptWeights& w) {
  const std::string source = w.files.empty() ? std::string("TGP-T weights") : w.files.front();
  nn::ParameterSet& params = model.parameters();
  // A classifier of another class count gets its own sentence.
  if (const auto it = w.tensors.find("cls_head.fc.weight"); it != w.tensors.end()) {
    const Shape want = params.get("cls_head.fc.weight").shape();
    TGPT_CHECK(it->second.dim() != 2 || it->second.size(0) == want[0], source,
               ": the classifier has ", it->second.size(0), " classes, this dataset has ",
               want[0], " (a checkpoint of another dataset or class list)");
  }
  std::map<std::string, Tensor> take;
  TgptLoadReport r;
  for (const auto& [name, t] : w.tensors) {
    if (params.contains(name))
      take[name] = t;
    else
      r.ignored.push_back(name);
  }
  r.has_zeroshot_head = take.count("zs_weights") != 0;
  // Every trainable tensor is required (zs_weights may be missing: the caller builds it).
  std::vector<std::string> missing;
  for (const auto& [name, t] : params.items(/*trainable_only=*/true))
    if (!take.count(name)) missing.push_back(name);
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 8; ++i) list += (i ? ", " : "") + missing[i];
    TGPT_FAIL(source, ": ", missing.size(), " TGP-T tensors are missing (", list,
              missing.size() > 8 ? ", ..." : "", ")");
  }
  r.loaded = params.load(take, source, nn::ParameterSet::LoadOptions{
                                           /*allow_missing=*/!r.has_zeroshot_head, false});
  return r;
}

TgptConfig tgpt_config_from_weights(const TgptWeights& w) {
  const std::string source = w.files.empty() ? std::string("TGP-T weights") : w.files.front();
  auto size_of = [&](const char* name, int64_t dims, int64_t dim) -> int64_t {
    const auto it = w.tensors.find(name);
    TGPT_CHECK(it != w.tensors.end() && it->second.dim() == dims, source,
               ": not TGP-T weights (no ", name, dims == 3 ? " [1, N, W])" : " [C, 2E])");
    return it->second.size(dim);
  };
  TgptConfig cfg;
  cfg.category_queries = size_of("prompt_learner.query_category", 3, 1);
  cfg.content_queries = size_of("prompt_learner.query_content", 3, 1);
  cfg.num_classes = size_of("cls_head.fc.weight", 2, 0);
  return cfg;
}

TgptWeights tgpt_model_weights(const TgptModel& model) {
  TgptWeights w;
  for (const auto& [name, t] : model.parameters().items()) w.tensors[name] = t;
  return w;
}

TgptWeights select_tgpt_classes(const TgptWeights& w, const std::vector<int64_t>& rows) {
  const std::string source = w.files.empty() ? std::string("TGP-T weights") : w.files.front();
  TGPT_CHECK(w.tensors.count("cls_head.fc.weight"), source,
             ": no cls_head.fc.weight to select classes from");
  TgptWeights out = w;
  for (const char* name : {"cls_head.fc.weight", "zs_weights"})
    if (const auto it = out.tensors.find(name); it != out.tensors.end())
      it->second = tgpt_select_head_rows(it->second, rows);
  return out;
}

}  // namespace tgpt

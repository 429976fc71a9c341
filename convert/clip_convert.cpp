/*
 * clip_convert.cpp — CLIP weight conversion into the tgpt CLIP weight file (see clip_convert.h,
 * models/README.md, clip.md §1.2, §2, §7).
 */
#include "convert/clip_convert.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/safetensors.h"
#include "convert/sha256.h"
#include "convert/torch_checkpoint.h"
#include "convert/zip_reader.h"

namespace tgpt {

namespace fs = std::filesystem;

namespace {

bool starts_with(const std::string& s, const std::string& p) {
  return s.rfind(p, 0) == 0;
}
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// "[a, b]" for error messages.
std::string shape_text(const Shape& s) {
  std::string out = "[";
  for (int i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Parses "N." at position pos of s (N decimal, at most 6 digits); returns N or -1.
int64_t parse_index(const std::string& s, size_t pos, size_t* after) {
  size_t i = pos;
  int64_t v = 0;
  while (i < s.size() && i - pos < 6 && s[i] >= '0' && s[i] <= '9') v = v * 10 + (s[i++] - '0');
  if (i == pos || i >= s.size() || s[i] != '.') return -1;
  *after = i + 1;
  return v;
}

// Number of distinct block indices N among keys "<prefix>N.".
int64_t count_blocks(const std::map<std::string, Tensor>& sd, const std::string& prefix) {
  std::set<int64_t> ids;
  for (const auto& [name, t] : sd) {
    size_t after;
    if (starts_with(name, prefix)) {
      int64_t n = parse_index(name, prefix.size(), &after);
      if (n >= 0) ids.insert(n);
    }
  }
  return static_cast<int64_t>(ids.size());
}

enum class Detected { torch_zip, safetensors };

Detected detect_format(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) TGPT_FAIL(path, ": cannot open");
  unsigned char head[9] = {};
  f.read(reinterpret_cast<char*>(head), 9);
  size_t got = static_cast<size_t>(f.gcount());
  f.clear();
  f.seekg(0, std::ios::end);
  uint64_t size = static_cast<uint64_t>(f.tellg());
  if (size == 0) TGPT_FAIL(path, ": empty file, not a checkpoint");
  if (ZipArchive::has_zip_magic(head, got)) return Detected::torch_zip;
  if (got == 9) {
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t(head[i]) << (8 * i);
    if (n >= 2 && n <= size - 8 && head[8] == '{') return Detected::safetensors;
  }
  if (head[0] == 0x80 && got > 1 && head[1] <= 5)
    TGPT_FAIL(path,
              ": a legacy (non-ZIP) torch.save pickle; not supported: re-save it with torch "
              ">= 1.6 (torch.save(torch.load(f), out))");
  TGPT_FAIL(path, ": not a recognised checkpoint (neither a PyTorch ZIP archive nor safetensors)");
}

// Hugging Face CLIPModel names -> OpenAI names (clip.md §2.2).
struct HfMapping {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> origin;  // OpenAI name -> HF name(s), for messages
  std::vector<std::string> unexpected, problems, ignored;
};

HfMapping map_hf_names(const SafetensorsFile& f) {
  static const std::map<std::string, std::string> fixed = {
      {"vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight"},
      {"vision_model.embeddings.class_embedding", "visual.class_embedding"},
      {"vision_model.embeddings.position_embedding.weight", "visual.positional_embedding"},
      {"vision_model.pre_layrnorm.weight", "visual.ln_pre.weight"},
      {"vision_model.pre_layrnorm.bias", "visual.ln_pre.bias"},
      {"vision_model.post_layernorm.weight", "visual.ln_post.weight"},
      {"vision_model.post_layernorm.bias", "visual.ln_post.bias"},
      {"visual_projection.weight", "visual.proj"},
      {"text_model.embeddings.token_embedding.weight", "token_embedding.weight"},
      {"text_model.embeddings.position_embedding.weight", "positional_embedding"},
      {"text_model.final_layer_norm.weight", "ln_final.weight"},
      {"text_model.final_layer_norm.bias", "ln_final.bias"},
      {"text_projection.weight", "text_projection"},
      {"logit_scale", "logit_scale"},
  };
  static const std::map<std::string, std::string> block_parts = {
      {"layer_norm1.weight", "ln_1.weight"},
      {"layer_norm1.bias", "ln_1.bias"},
      {"layer_norm2.weight", "ln_2.weight"},
      {"layer_norm2.bias", "ln_2.bias"},
      {"self_attn.out_proj.weight", "attn.out_proj.weight"},
      {"self_attn.out_proj.bias", "attn.out_proj.bias"},
      {"mlp.fc1.weight", "mlp.c_fc.weight"},
      {"mlp.fc1.bias", "mlp.c_fc.bias"},
      {"mlp.fc2.weight", "mlp.c_proj.weight"},
      {"mlp.fc2.bias", "mlp.c_proj.bias"},
  };
  HfMapping m;
  // OpenAI in_proj name -> the HF q/k/v tensors (and their names)
  std::map<std::string, std::array<std::pair<std::string, Tensor>, 3>> qkv;
  for (const std::string& name : f.names()) {
    auto it = fixed.find(name);
    if (it != fixed.end()) {
      Tensor t = f.get(name);
      bool transpose = name == "visual_projection.weight" || name == "text_projection.weight";
      if (transpose && t.dim() == 2) t = t.transpose(0, 1).contiguous();  // [out,in] -> [in,out]
      m.tensors[it->second] = t;
      m.origin[it->second] = name + (transpose ? ", transposed" : "");
      continue;
    }
    if (ends_with(name, "position_ids")) {
      m.ignored.push_back(name);
      continue;
    }
    std::string oprefix;
    size_t pos = 0;
    if (starts_with(name, "vision_model.encoder.layers.")) {
      oprefix = "visual.transformer.resblocks.", pos = 28;
    } else if (starts_with(name, "text_model.encoder.layers.")) {
      oprefix = "transformer.resblocks.", pos = 26;
    } else {
      m.unexpected.push_back(name);
      continue;
    }
    size_t after;
    int64_t layer = parse_index(name, pos, &after);
    std::string rest = layer >= 0 ? name.substr(after) : "";
    std::string block = oprefix + std::to_string(layer) + ".";
    auto bp = block_parts.find(rest);
    if (layer >= 0 && bp != block_parts.end()) {
      m.tensors[block + bp->second] = f.get(name);
      m.origin[block + bp->second] = name;
      continue;
    }
    int j = -1;
    for (int k = 0; k < 3; ++k)
      if (starts_with(rest, std::string("self_attn.") + "qkv"[k] + "_proj.")) j = k;
    std::string wb = j >= 0 ? rest.substr(17) : "";
    if (layer >= 0 && j >= 0 && (wb == "weight" || wb == "bias")) {
      qkv[block + "attn.in_proj_" + wb][j] = {name, f.get(name)};
      continue;
    }
    m.unexpected.push_back(name);
  }
  // q, k, v stacked along dim 0 (rows 0..d-1 Q, d..2d-1 K, 2d..3d-1 V).
  for (auto& [oname, parts] : qkv) {
    std::string names;
    bool complete = true;
    for (const auto& [n, t] : parts) {
      if (!t.defined()) complete = false;
      names += (names.empty() ? "" : ", ") + n;
    }
    if (!complete) {
      m.problems.push_back(oname + ": HF q/k/v projections incomplete (have only " + names + ")");
      continue;
    }
    const Tensor& q = parts[0].second;
    bool same = true;
    for (int k = 1; k < 3; ++k)
      same = same && parts[k].second.shape() == q.shape() && parts[k].second.dtype() == q.dtype();
    if (!same || q.dim() < 1) {
      m.problems.push_back(oname + ": HF q/k/v projections differ in shape or dtype (" + names +
                           ")");
      continue;
    }
    Shape s = q.shape();
    s[0] *= 3;
    Tensor out = Tensor::empty(s, q.dtype());
    char* dst = static_cast<char*>(out.data_ptr());
    for (int k = 0; k < 3; ++k) {
      Tensor c = parts[k].second.contiguous();
      if (c.nbytes()) std::memcpy(dst + k * c.nbytes(), c.data_ptr(), c.nbytes());
    }
    m.tensors[oname] = out;
    m.origin[oname] = names + ", concatenated";
  }
  return m;
}

// Reads a (possibly gzip-compressed) text file with zlib.
std::string read_gz_text(const std::string& path) {
  gzFile g = gzopen(path.c_str(), "rb");
  if (!g) TGPT_FAIL(path, ": cannot open");
  std::string out;
  char buf[1 << 16];
  while (true) {
    int n = gzread(g, buf, sizeof(buf));
    if (n < 0) {
      gzclose(g);
      TGPT_FAIL(path, ": corrupt gzip data");
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (size_t(256) << 20)) {
      gzclose(g);
      TGPT_FAIL(path, ": larger than 256 MiB: not a BPE merges file");
    }
  }
  gzclose(g);
  return out;
}

std::string activation_from_hf(const std::string& act, const std::string& where) {
  if (act == "quick_gelu") return "quick_gelu";
  if (act == "gelu") return "gelu";
  TGPT_FAIL(where, ": unsupported hidden_act '", act, "' (tgpt supports quick_gelu and gelu)");
}

// A JSON file whose top level must be an object (configs beside the weights).
nlohmann::json read_json_object(const std::string& path) {
  std::ifstream f(path);
  if (!f) TGPT_FAIL(path, ": cannot open");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    TGPT_FAIL(path, ": invalid JSON: ", e.what());
  }
  if (!j.is_object()) TGPT_FAIL(path, ": not a JSON object");
  return j;
}

// The activation recorded by open_clip's hub config beside the weights (open_clip_config.json:
// {"model_cfg": {..., "quick_gelu": true}, "preprocess_cfg": {...}}), or a bare open_clip model
// config ({"embed_dim": ..., "vision_cfg": ..., "quick_gelu": true}). open_clip builds nn.GELU
// unless quick_gelu is true, so a model config without the key means gelu.
Activation activation_from_open_clip_config(const std::string& path) {
  nlohmann::json j = read_json_object(path);
  const nlohmann::json* cfg = nullptr;
  if (j.contains("model_cfg"))
    cfg = &j["model_cfg"];
  else if (j.contains("vision_cfg") || j.contains("embed_dim"))
    cfg = &j;
  if (!cfg || !cfg->is_object())
    TGPT_FAIL(path, ": no open_clip model config (expected an object \"model_cfg\")");
  if (!cfg->contains("quick_gelu")) return Activation::gelu;
  const nlohmann::json& q = (*cfg)["quick_gelu"];
  if (!q.is_boolean()) TGPT_FAIL(path, ": model_cfg.quick_gelu is not true or false");
  return q.get<bool>() ? Activation::quick_gelu : Activation::gelu;
}

// Cross-checks the HF config.json against the inferred config; takes heads and the activation
// from it. Returns problems (mismatches) to report with the tensor checks.
std::vector<std::string> apply_hf_config(const std::string& path, ClipConfig& c) {
  nlohmann::json j = read_json_object(path);
  std::vector<std::string> problems;
  auto check = [&](const nlohmann::json& obj, const char* section, const char* key, int64_t* field,
                   bool take) {
    if (!obj.is_object() || !obj.contains(key)) return;
    const auto& v = obj[key];
    if (!v.is_number_integer()) {
      problems.push_back(str_cat(path, ": ", section, key, " is not an integer"));
      return;
    }
    int64_t x = v.get<int64_t>();
    if (take && x > 0) *field = x;
    if (x != *field)
      problems.push_back(
          str_cat(path, ": ", section, key, " = ", x, " but the weights say ", *field));
  };
  const nlohmann::json none;
  const auto& tc = j.contains("text_config") ? j["text_config"] : none;
  const auto& vc = j.contains("vision_config") ? j["vision_config"] : none;
  check(j, "", "projection_dim", &c.embed_dim, false);
  check(tc, "text_config.", "hidden_size", &c.transformer_width, false);
  check(tc, "text_config.", "num_hidden_layers", &c.transformer_layers, false);
  check(tc, "text_config.", "max_position_embeddings", &c.context_length, false);
  check(tc, "text_config.", "vocab_size", &c.vocab_size, false);
  check(tc, "text_config.", "num_attention_heads", &c.transformer_heads, true);
  check(vc, "vision_config.", "hidden_size", &c.vision_width, false);
  check(vc, "vision_config.", "num_hidden_layers", &c.vision_layers, false);
  check(vc, "vision_config.", "patch_size", &c.vision_patch_size, false);
  check(vc, "vision_config.", "image_size", &c.image_resolution, false);
  check(vc, "vision_config.", "num_attention_heads", &c.vision_heads, true);
  // transformers' CLIPTextConfig/CLIPVisionConfig default hidden_act is quick_gelu.
  std::string text_act = "quick_gelu", vision_act = "quick_gelu";
  if (tc.is_object() && tc.contains("hidden_act") && tc["hidden_act"].is_string())
    text_act = activation_from_hf(tc["hidden_act"].get<std::string>(), path);
  if (vc.is_object() && vc.contains("hidden_act") && vc["hidden_act"].is_string())
    vision_act = activation_from_hf(vc["hidden_act"].get<std::string>(), path);
  if (text_act != vision_act)
    TGPT_FAIL(path, ": text and vision towers use different activations (", text_act, ", ",
              vision_act, "); tgpt supports one activation per model");
  c.activation = parse_clip_activation(text_act);
  return problems;
}

}  // namespace

ClipConfig infer_clip_config(const std::map<std::string, Tensor>& sd) {
  auto has_prefix = [&](const std::string& p) {
    auto it = sd.lower_bound(p);
    return it != sd.end() && starts_with(it->first, p);
  };
  if (!sd.count("visual.proj") && (has_prefix("visual.layer1.") || has_prefix("visual.attnpool.")))
    TGPT_FAIL(
        "ResNet CLIP not supported yet (only ViT models): the weights have visual.layer1 / "
        "visual.attnpool and no visual.proj");
  std::vector<std::string> bad;
  auto dims = [&](const char* name, int nd) -> const Tensor* {
    auto it = sd.find(name);
    if (it == sd.end() || it->second.dim() != nd) {
      bad.push_back(
          str_cat(name, it == sd.end() ? " (missing)" : " (not " + std::to_string(nd) + "-D)"));
      return nullptr;
    }
    return &it->second;
  };
  const Tensor* conv1 = dims("visual.conv1.weight", 4);
  const Tensor* vpos = dims("visual.positional_embedding", 2);
  const Tensor* tproj = dims("text_projection", 2);
  const Tensor* tpos = dims("positional_embedding", 2);
  const Tensor* tok = dims("token_embedding.weight", 2);
  const Tensor* lnf = dims("ln_final.weight", 1);
  if (!bad.empty()) {
    std::string list;
    for (const auto& b : bad) list += "\n  " + b;
    TGPT_FAIL("cannot infer the CLIP architecture; these tensors are missing or malformed:", list);
  }
  ClipConfig c;
  c.vision_width = conv1->size(0);
  c.vision_patch_size = conv1->size(-1);
  c.vision_layers = count_blocks(sd, "visual.transformer.resblocks.");
  int64_t tokens = vpos->size(0) - 1;
  int64_t grid = std::llround(std::sqrt(static_cast<double>(std::max<int64_t>(tokens, 0))));
  if (tokens < 1 || grid * grid != tokens)
    TGPT_FAIL("visual.positional_embedding has ", vpos->size(0),
              " rows: not 1 + a square number of patches");
  c.image_resolution = c.vision_patch_size * grid;
  c.vision_heads = c.vision_width / 64;
  c.embed_dim = tproj->size(1);
  c.context_length = tpos->size(0);
  c.vocab_size = tok->size(0);
  c.transformer_width = lnf->size(0);
  c.transformer_heads = c.transformer_width / 64;
  c.transformer_layers = count_blocks(sd, "transformer.resblocks.");
  return c;
}

std::string read_bpe_merges(const std::string& path, size_t max_merges) {
  std::string text = read_gz_text(path);
  std::string out;
  size_t pos = 0, kept = 0, line_no = 0;
  while (pos < text.size() && (max_merges == 0 || kept < max_merges)) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1 && line.find("#version") != std::string::npos) continue;  // header
    if (line.empty()) {
      if (pos >= text.size()) break;  // final newline
      TGPT_FAIL(path, ": line ", line_no, " is empty: not a BPE merges file");
    }
    size_t sp = line.find(' ');
    if (sp == 0 || sp == std::string::npos || sp + 1 == line.size() ||
        line.find(' ', sp + 1) != std::string::npos)
      TGPT_FAIL(path, ": line ", line_no, " is not a merge pair \"a b\": not a BPE merges file");
    out += line;
    out += '\n';
    ++kept;
  }
  if (kept == 0) TGPT_FAIL(path, ": no merges: not a BPE merges file");
  return out;
}

ConvertResult convert_clip(const std::string& src_arg, const ConvertOptions& opt) {
  if (opt.dtype != "keep" && opt.dtype != "f32" && opt.dtype != "f16" && opt.dtype != "bf16")
    TGPT_FAIL("--dtype must be keep, f32, f16 or bf16, got '", opt.dtype, "'");
  if (opt.activation != "auto" && opt.activation != "quick_gelu" && opt.activation != "gelu")
    TGPT_FAIL("--activation must be auto, quick_gelu or gelu, got '", opt.activation, "'");
  ConvertResult r;
  std::string src = src_arg;
  if (fs::is_directory(src)) {
    for (const char* n : {"model.safetensors", "open_clip_model.safetensors"})
      if (fs::exists(fs::path(src) / n)) {
        src = (fs::path(src) / n).string();
        break;
      }
    if (src == src_arg)
      TGPT_FAIL(src_arg, ": a folder without model.safetensors or open_clip_model.safetensors");
  }
  r.source_path = src;

  std::map<std::string, Tensor> sd;
  std::map<std::string, std::string> origin;
  std::vector<std::string> problems, unexpected;
  fs::path hf_config, hf_merges, open_clip_config;
  Detected kind = detect_format(src);
  if (kind == Detected::torch_zip) {
    TorchCheckpoint ck = load_torch_checkpoint(src);
    switch (ck.kind) {
      case TorchCheckpointKind::torchscript_module: r.source_format = "openai-torchscript"; break;
      case TorchCheckpointKind::state_dict: r.source_format = "torch-state-dict"; break;
      case TorchCheckpointKind::training_checkpoint: r.source_format = "open-clip"; break;
    }
    for (auto& [n, t] : ck.tensors) sd[n] = t;
  } else {
    SafetensorsFile f = SafetensorsFile::open(src);
    bool hf = false;
    for (const auto& e : f.entries())
      if (starts_with(e.name, "vision_model.") || starts_with(e.name, "text_model.")) hf = true;
    if (hf) {
      r.source_format = "hf-safetensors";
      HfMapping m = map_hf_names(f);
      sd = std::move(m.tensors);
      origin = std::move(m.origin);
      unexpected = std::move(m.unexpected);
      problems = std::move(m.problems);
      fs::path dir = fs::path(src).parent_path();
      if (fs::exists(dir / "config.json")) hf_config = dir / "config.json";
      if (fs::exists(dir / "merges.txt")) hf_merges = dir / "merges.txt";
    } else {
      r.source_format = "open-clip-safetensors";
      bool all_module = !f.entries().empty();
      for (const auto& e : f.entries()) all_module = all_module && starts_with(e.name, "module.");
      for (const auto& e : f.entries()) sd[all_module ? e.name.substr(7) : e.name] = f.get(e.name);
    }
  }
  if (r.source_format != "hf-safetensors") {
    const fs::path oc = fs::path(src).parent_path() / "open_clip_config.json";
    if (fs::exists(oc)) open_clip_config = oc;
  }

  // Known extras: TorchScript's int buffers (build_model deletes them), HF position_ids.
  for (const char* extra : {"input_resolution", "context_length", "vocab_size"}) sd.erase(extra);

  ClipConfig c = infer_clip_config(sd);
  // The MLP activation is not in the weights (clip.md §1.5): it comes from --activation, the HF
  // config.json, open_clip's open_clip_config.json, or the format itself (OpenAI's TorchScript
  // files are all QuickGELU). With none of these, the user must say it: assuming either one gives
  // features off by ~1e-3 relative with no error.
  c.activation = Activation::quick_gelu;
  std::string activation_problem;
  if (!hf_config.empty()) {
    auto cfg_problems = apply_hf_config(hf_config.string(), c);
    problems.insert(problems.end(), cfg_problems.begin(), cfg_problems.end());
    r.notes.push_back("read " + hf_config.string());
  }
  if (opt.activation != "auto") {
    c.activation = parse_clip_activation(opt.activation);
    r.notes.push_back(str_cat("activation ", opt.activation, " (from --activation)"));
  } else if (!hf_config.empty()) {
    r.notes.push_back(
        str_cat("activation ", activation_name(c.activation), " (from config.json hidden_act)"));
  } else if (!open_clip_config.empty()) {
    c.activation = activation_from_open_clip_config(open_clip_config.string());
    r.notes.push_back(str_cat("activation ", activation_name(c.activation), " (from ",
                              open_clip_config.string(), ")"));
  } else if (r.source_format == "openai-torchscript") {
    r.notes.push_back("activation quick_gelu (OpenAI TorchScript checkpoint)");
  } else {
    activation_problem = str_cat(
        "the MLP activation is not recorded (", r.source_format,
        " weights with no config.json or open_clip_config.json beside them): pass --activation "
        "quick_gelu for OpenAI-trained weights and open_clip '-quickgelu' models, or --activation "
        "gelu for open_clip models trained with nn.GELU (e.g. LAION, DataComp)");
  }
  if (c.vision_heads <= 0 || c.vision_width % c.vision_heads != 0)
    problems.push_back(
        str_cat("vision width ", c.vision_width, " does not split into heads of 64"));
  if (c.transformer_heads <= 0 || c.transformer_width % c.transformer_heads != 0)
    problems.push_back(
        str_cat("text width ", c.transformer_width, " does not split into heads of 64"));

  // Presence, shape and dtype of every expected tensor; everything else is unexpected.
  std::vector<std::string> missing, wrong;
  std::set<std::string> expected_names;
  auto label = [&](const std::string& n) {
    auto it = origin.find(n);
    return it == origin.end() ? n : n + " (from " + it->second + ")";
  };
  for (const auto& [name, shape] : expected_clip_tensors(c)) {
    expected_names.insert(name);
    auto it = sd.find(name);
    if (it == sd.end()) {
      missing.push_back(name + " " + shape_text(shape));
    } else if (it->second.shape() != shape) {
      wrong.push_back(label(name) + ": " + shape_text(it->second.shape()) + ", expected " +
                      shape_text(shape));
    } else if (!dtype_is_float(it->second.dtype())) {
      wrong.push_back(label(name) + ": dtype " + dtype_name(it->second.dtype()) +
                      ", expected a floating type");
    }
  }
  for (const auto& [name, t] : sd)
    if (!expected_names.count(name)) unexpected.push_back(label(name));
  const bool valid = missing.empty() && wrong.empty() && unexpected.empty() && problems.empty();
  if (valid && !activation_problem.empty()) TGPT_FAIL(src, ": ", activation_problem);
  if (!activation_problem.empty()) problems.push_back(activation_problem);
  if (!valid) {
    std::string msg =
        src + ": not a valid CLIP " + c.name() + " checkpoint (" + r.source_format + "):";
    auto section = [&msg](const char* title, const std::vector<std::string>& items) {
      if (items.empty()) return;
      msg += str_cat("\n ", title, " (", items.size(), "):");
      for (const auto& s : items) msg += "\n  " + s;
    };
    section("missing tensors", missing);
    section("tensors with the wrong shape or dtype", wrong);
    section("unexpected tensors", unexpected);
    section("other problems", problems);
    TGPT_FAIL(msg);
  }
  r.config = c;

  // Output tensors: converted dtype, ordered by decreasing element size then name (alignment).
  for (const auto& [name, shape] : expected_clip_tensors(c)) {
    Tensor t = sd.at(name);
    if (opt.dtype == "f32") t = t.to(DType::f32);
    if (opt.dtype == "f16") t = t.to(DType::f16);
    if (opt.dtype == "bf16") t = t.to(DType::bf16);
    r.tensors.emplace_back(name, t.contiguous());
    r.parameter_count += t.numel();
  }
  std::stable_sort(r.tensors.begin(), r.tensors.end(), [](const auto& a, const auto& b) {
    size_t sa = dtype_size(a.second.dtype()), sb = dtype_size(b.second.dtype());
    return sa != sb ? sa > sb : a.first < b.first;
  });

  r.metadata["tgpt.format"] = "clip";
  r.metadata["tgpt.format_version"] = "1";
  r.metadata["tgpt.config"] = c.to_json();
  r.metadata["tgpt.source_format"] = r.source_format;
  r.metadata["tgpt.source_sha256"] = sha256_file_hex(src);
  size_t max_merges = c.vocab_size > 514 ? static_cast<size_t>(c.vocab_size - 514) : 0;
  std::string merges_path = !opt.vocab_path.empty() ? opt.vocab_path : hf_merges.string();
  if (!merges_path.empty()) {
    std::string merges = read_bpe_merges(merges_path, max_merges);
    size_t n = static_cast<size_t>(std::count(merges.begin(), merges.end(), '\n'));
    r.notes.push_back(str_cat("BPE merges: ", n, " from ", merges_path));
    if (n < max_merges)
      r.notes.push_back(str_cat("warning: vocab_size ", c.vocab_size, " needs ", max_merges,
                                " merges, the merges file has only ", n));
    r.metadata["tgpt.bpe_merges"] = std::move(merges);
  } else {
    r.notes.push_back("no BPE merges stored (pass --vocab bpe_simple_vocab_16e6.txt.gz)");
  }
  return r;
}

void write_converted_clip(const std::string& out_path, const ConvertResult& result) {
  save_safetensors(out_path, result.tensors, result.metadata);
}

}  // namespace tgpt

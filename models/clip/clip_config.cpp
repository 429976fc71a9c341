/*
 * clip_config.cpp — ClipConfig: the `tgpt.config` JSON of a CLIP weight file (models/README.md),
 * its validation, and a readable model name (OpenAI names from ../shared/spec/clip.md §1.1).
 */
#include <nlohmann/json.hpp>

#include "models/clip/clip.h"

namespace tgpt {

namespace {

// Upper bound for every integer field: large enough for any CLIP (vocab 49408, width 1024), small
// enough that products of fields (vocab * width, 4 * width²) cannot overflow int64.
constexpr int64_t kMaxField = int64_t{1} << 24;

// The integer fields in the order of models/README.md.
struct Field {
  const char* key;
  int64_t ClipConfig::*member;
};
constexpr Field kFields[] = {
    {"embed_dim", &ClipConfig::embed_dim},
    {"image_resolution", &ClipConfig::image_resolution},
    {"vision_layers", &ClipConfig::vision_layers},
    {"vision_width", &ClipConfig::vision_width},
    {"vision_patch_size", &ClipConfig::vision_patch_size},
    {"vision_heads", &ClipConfig::vision_heads},
    {"context_length", &ClipConfig::context_length},
    {"vocab_size", &ClipConfig::vocab_size},
    {"transformer_width", &ClipConfig::transformer_width},
    {"transformer_heads", &ClipConfig::transformer_heads},
    {"transformer_layers", &ClipConfig::transformer_layers},
};

std::string join_problems(const std::vector<std::string>& problems) {
  std::string s;
  for (const std::string& p : problems) s += "\n  - " + p;
  return s;
}

}  // namespace

std::string ClipConfig::to_json() const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const Field& f : kFields) j[f.key] = this->*f.member;
  j["activation"] = activation_name(activation);
  return j.dump();
}

ClipConfig ClipConfig::from_json(const std::string& json) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception& e) {
    throw Error(str_cat("CLIP config: not valid JSON: ", e.what()));
  }
  if (!j.is_object()) throw Error("CLIP config: not a JSON object");
  ClipConfig c;
  std::vector<std::string> problems;
  for (const Field& f : kFields) {
    auto it = j.find(f.key);
    if (it == j.end()) {
      problems.push_back(str_cat("missing field \"", f.key, "\""));
    } else if (!it->is_number_integer()) {
      problems.push_back(str_cat("field \"", f.key, "\" must be an integer, got ", it->dump()));
    } else if (it->is_number_unsigned() ? it->get<uint64_t>() > static_cast<uint64_t>(kMaxField)
                                        : it->get<int64_t>() > kMaxField) {
      problems.push_back(str_cat("field \"", f.key, "\" = ", it->dump(), " is too large"));
    } else {
      c.*f.member = it->get<int64_t>();  // range checked above; non-positive values: problems()
    }
  }
  auto act = j.find("activation");
  if (act == j.end()) {
    problems.push_back("missing field \"activation\"");
  } else if (!act->is_string() || (*act != "quick_gelu" && *act != "gelu")) {
    problems.push_back(
        str_cat("field \"activation\" must be \"quick_gelu\" or \"gelu\", got ", act->dump()));
  } else {
    c.activation = *act == "gelu" ? Activation::gelu : Activation::quick_gelu;
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = it.key() == "activation";
    for (const Field& f : kFields) known = known || it.key() == f.key;
    if (!known) problems.push_back(str_cat("unknown field \"", it.key(), "\""));
  }
  if (problems.empty()) problems = c.problems();
  if (!problems.empty()) throw Error("CLIP config: " + join_problems(problems));
  return c;
}

std::vector<std::string> ClipConfig::problems() const {
  std::vector<std::string> p;
  bool all_positive = true;
  for (const Field& f : kFields) {
    int64_t v = this->*f.member;
    if (v <= 0 || v > kMaxField) {
      p.push_back(str_cat(f.key, " = ", v, " must be in [1, ", kMaxField, "]"));
      all_positive = false;
    }
  }
  if (activation != Activation::quick_gelu && activation != Activation::gelu)
    p.push_back("activation is neither quick_gelu nor gelu");
  if (!all_positive) return p;  // divisibility checks need positive values
  if (vision_width % vision_heads != 0)
    p.push_back(
        str_cat("vision_width ", vision_width, " is not divisible by vision_heads ", vision_heads));
  if (transformer_width % transformer_heads != 0)
    p.push_back(str_cat("transformer_width ", transformer_width,
                        " is not divisible by transformer_heads ", transformer_heads));
  if (image_resolution % vision_patch_size != 0)
    p.push_back(str_cat("image_resolution ", image_resolution,
                        " is not a multiple of vision_patch_size ", vision_patch_size));
  else if (vision_grid() > 4096)
    p.push_back(str_cat("vision grid ", vision_grid(), " is too large"));
  return p;
}

Activation parse_clip_activation(const std::string& s) {
  Activation a = Activation::quick_gelu;
  if (parse_activation(s, &a) && a != Activation::relu) return a;
  TGPT_FAIL("unknown activation '", s, "' (expected quick_gelu or gelu)");
}

namespace {

// OpenAI's released ViT CLIPs (clip.md §1.1); context 77, vocabulary 49408, QuickGELU.
struct KnownClip {
  const char* name;
  int64_t embed, image, patch, vw, vl, vh, tw, tl, th;
};
constexpr KnownClip kKnownClips[] = {
    {"ViT-B/32", 512, 224, 32, 768, 12, 12, 512, 12, 8},
    {"ViT-B/16", 512, 224, 16, 768, 12, 12, 512, 12, 8},
    {"ViT-L/14", 768, 224, 14, 1024, 24, 16, 768, 12, 12},
    {"ViT-L/14@336px", 768, 336, 14, 1024, 24, 16, 768, 12, 12},
};

}  // namespace

ClipConfig ClipConfig::openai(const std::string& model_name) {
  std::string known;
  for (const KnownClip& k : kKnownClips) {
    if (model_name == k.name) {
      ClipConfig c;
      c.embed_dim = k.embed;
      c.image_resolution = k.image;
      c.vision_layers = k.vl;
      c.vision_width = k.vw;
      c.vision_patch_size = k.patch;
      c.vision_heads = k.vh;
      c.context_length = 77;
      c.vocab_size = 49408;
      c.transformer_width = k.tw;
      c.transformer_heads = k.th;
      c.transformer_layers = k.tl;
      c.activation = Activation::quick_gelu;
      return c;
    }
    known += str_cat(known.empty() ? "" : ", ", k.name);
  }
  TGPT_FAIL("ClipConfig::openai: unknown model \"", model_name, "\" (known: ", known, ")");
}

std::string ClipConfig::name() const {
  for (const KnownClip& k : kKnownClips) {
    if (k.embed == embed_dim && k.image == image_resolution && k.patch == vision_patch_size &&
        k.vw == vision_width && k.vl == vision_layers && k.vh == vision_heads &&
        k.tw == transformer_width && k.tl == transformer_layers && k.th == transformer_heads &&
        context_length == 77 && vocab_size == 49408)
      return activation == Activation::quick_gelu ? k.name : str_cat(k.name, " (gelu)");
  }
  return str_cat("ViT CLIP (image ", image_resolution, ", patch ", vision_patch_size, ", vision ",
                 vision_width, "x", vision_layers, " layers/", vision_heads, " heads, text ",
                 transformer_width, "x", transformer_layers, " layers/", transformer_heads,
                 " heads, embed ", embed_dim, ", context ", context_length, ", vocab ", vocab_size,
                 ", ", activation_name(activation), ")");
}

}  // namespace tgpt

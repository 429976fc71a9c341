/*
 * clip.cpp — OpenAI CLIP (ViT image tower + causal text tower) built from engine ops.
 *
 * Loading (models/README.md, "The tgpt CLIP weight file"): metadata tgpt.format = clip,
 * tgpt.format_version = 1, tgpt.config (ClipConfig JSON), optional tgpt.bpe_merges; tensors under
 * OpenAI's names. Every expected tensor must be present with the shape the config implies, and no
 * other tensor may be present; all problems are reported together in one tgpt::Error naming the
 * file. The model's weights are an nn::ParameterSet (models/nn) under OpenAI's names, filled by
 * the layers that use them (nn::ResidualBlock per transformer block, nn::LayerNorm) and by the
 * model for its raw tensors (patch convolution, embeddings, projections, logit_scale). Weights of
 * any float dtype (OpenAI's files mix f16 and f32, ../shared/spec/clip.md §1.8) are loaded into
 * it in the compute dtype (f32 on the CPU; f32/f16/bf16 on CUDA, cast on the host, then uploaded
 * once) and do not require grad; visual.proj and text_projection ([in, out]) are also cached
 * transposed as [out, in] so they go through linear(). Under f16 compute the f16 tensors of an
 * OpenAI file are uploaded as stored (no rounding at all).
 *
 * Inputs are moved to the model's device and cast to the compute dtype (to_model); results are
 * cast back to f32 on the model's device (to_output). On the CPU both are no-ops for f32 CPU
 * inputs, so the CPU f32 path is unchanged.
 *
 * Forward (clip.md §1.3–1.5): pre-LN residual blocks (nn::ResidualBlock, LayerNorm eps 1e-5)
 * with packed-QKV attention and a 4W MLP with QuickGELU or exact GELU. Everything is an engine op,
 * so autograd records through encode_text_embeddings when its input requires grad; encode_image and
 * encode_text run under NoGradGuard (a frozen model) or record autograd (a trainable one, whose
 * projections are then applied from the parameters, not the cached transposes). Text runs only
 * over positions 0..max(eot): with the causal mask, later positions never reach the pooled ones
 * (clip.md §1.4), so the result is the same.
 *
 * init_random draws OpenAI's initialisation (clip.h) into named host tensors and builds the model
 * from them like from_tensors, then marks every weight trainable; save() writes the set back with
 * the metadata load() reads.
 */
#include "models/clip/clip.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "engine/safetensors.h"
#include "kernels/launch.h"

namespace tgpt {

namespace {

const char* const kBlockParts[] = {
    "ln_1.weight",          "ln_1.bias",          "attn.in_proj_weight", "attn.in_proj_bias",
    "attn.out_proj.weight", "attn.out_proj.bias", "ln_2.weight",         "ln_2.bias",
    "mlp.c_fc.weight",      "mlp.c_fc.bias",      "mlp.c_proj.weight",   "mlp.c_proj.bias",
};

[[noreturn]] void fail_with(const std::string& source, const std::vector<std::string>& problems) {
  std::string msg = str_cat(source, ": invalid CLIP weights (", problems.size(), " problem",
                            problems.size() == 1 ? "" : "s", "):");
  for (const std::string& p : problems) msg += "\n  - " + p;
  throw Error(msg);
}

// Integer tensor values (i32/i64, any layout, any device) as int64.
std::vector<int64_t> int_values(const Tensor& t, const char* what) {
  TGPT_CHECK(t.dtype() == DType::i32 || t.dtype() == DType::i64, what, " must be i32 or i64, got ",
             dtype_name(t.dtype()));
  Tensor c = t.device() == Device::CPU ? t.contiguous() : t.to(Device::CPU).contiguous();
  std::vector<int64_t> v(static_cast<size_t>(c.numel()));
  if (c.dtype() == DType::i64)
    std::copy(c.data<int64_t>(), c.data<int64_t>() + c.numel(), v.begin());
  else
    std::copy(c.data<int32_t>(), c.data<int32_t>() + c.numel(), v.begin());
  return v;
}

void check_images(const ClipConfig& c, const Tensor& images) {
  const int64_t R = c.image_resolution;
  TGPT_CHECK(images.defined(), "ClipModel::encode_image: images are undefined");
  TGPT_CHECK(dtype_is_float(images.dtype()), "ClipModel::encode_image: images must be float, got ",
             dtype_name(images.dtype()));
  TGPT_CHECK(images.dim() == 4 && images.size(1) == 3 && images.size(2) == R && images.size(3) == R,
             "ClipModel::encode_image: images must be [B, 3, ", R, ", ", R, "] for ", c.name(),
             ", got ", images.shape().str());
}

Tensor to_f32(const Tensor& x) {
  return x.dtype() == DType::f32 ? x : x.to(DType::f32);
}

// Refuses device/dtype pairs the model cannot run: the CPU takes any float type (f32 is the
// production path; f64, f16 and bf16 serve as references for the CUDA path); CUDA takes f32, f16
// or bf16 (the CUDA ops reject f64) and needs a device.
void check_placement(Device device, DType compute_dtype, const std::string& source) {
  if (device == Device::CPU) {
    TGPT_CHECK(dtype_is_float(compute_dtype), source, ": compute dtype ", dtype_name(compute_dtype),
               " is not a float type");
    return;
  }
  TGPT_CHECK(kernel_takes_dtype(Device::CUDA, compute_dtype), source, ": compute dtype ",
             dtype_name(compute_dtype), " is not supported on CUDA (use f32, f16 or bf16)");
  TGPT_CHECK(cuda_available(), source,
             ": CUDA requested but no CUDA device is available (tgpt built without TGPT_CUDA, or "
             "no GPU was found)");
}

}  // namespace

std::vector<std::pair<std::string, Shape>> expected_clip_tensors(const ClipConfig& c) {
  const int64_t W = c.vision_width, P = c.vision_patch_size, E = c.embed_dim;
  const int64_t Wt = c.transformer_width;
  std::vector<std::pair<std::string, Shape>> e;
  auto blocks = [&](const std::string& prefix, int64_t layers, int64_t w) {
    const Shape shapes[] = {{w}, {w}, {3 * w, w}, {3 * w}, {w, w},     {w},
                            {w}, {w}, {4 * w, w}, {4 * w}, {w, 4 * w}, {w}};
    for (int64_t i = 0; i < layers; ++i)
      for (size_t k = 0; k < std::size(kBlockParts); ++k)
        e.push_back({str_cat(prefix, i, ".", kBlockParts[k]), shapes[k]});
  };
  e.push_back({"visual.conv1.weight", {W, 3, P, P}});
  e.push_back({"visual.class_embedding", {W}});
  e.push_back({"visual.positional_embedding", {c.vision_tokens(), W}});
  e.push_back({"visual.ln_pre.weight", {W}});
  e.push_back({"visual.ln_pre.bias", {W}});
  blocks("visual.transformer.resblocks.", c.vision_layers, W);
  e.push_back({"visual.ln_post.weight", {W}});
  e.push_back({"visual.ln_post.bias", {W}});
  e.push_back({"visual.proj", {W, E}});
  e.push_back({"token_embedding.weight", {c.vocab_size, Wt}});
  e.push_back({"positional_embedding", {c.context_length, Wt}});
  blocks("transformer.resblocks.", c.transformer_layers, Wt);
  e.push_back({"ln_final.weight", {Wt}});
  e.push_back({"ln_final.bias", {Wt}});
  e.push_back({"text_projection", {Wt, E}});
  e.push_back({"logit_scale", Shape{}});
  return e;
}

// ---- loading ----------------------------------------------------------------------------------

ClipModel ClipModel::load(const std::string& path) {
  return load(path, Device::CPU, DType::f32);
}

ClipModel ClipModel::load(const std::string& path, Device device, DType compute_dtype) {
  check_placement(device, compute_dtype, str_cat("ClipModel::load(", path, ")"));
  SafetensorsFile file = SafetensorsFile::open(path);
  const auto& meta = file.metadata();
  auto get_meta = [&](const char* key) -> const std::string* {
    auto it = meta.find(key);
    return it == meta.end() ? nullptr : &it->second;
  };
  std::vector<std::string> problems;
  const std::string* format = get_meta("tgpt.format");
  const std::string* version = get_meta("tgpt.format_version");
  const std::string* config_json = get_meta("tgpt.config");
  if (!format)
    problems.push_back(
        "metadata tgpt.format is missing (not a tgpt CLIP weight file; convert it "
        "with tgpt-convert)");
  else if (*format != "clip")
    problems.push_back(str_cat("metadata tgpt.format is \"", *format, "\", expected \"clip\""));
  if (!version)
    problems.push_back("metadata tgpt.format_version is missing");
  else if (*version != "1")
    problems.push_back(
        str_cat("metadata tgpt.format_version is \"", *version, "\", this build reads \"1\""));
  if (!config_json) problems.push_back("metadata tgpt.config is missing");
  if (!problems.empty()) fail_with(path, problems);

  ClipConfig config;
  try {
    config = ClipConfig::from_json(*config_json);
  } catch (const Error& e) {
    fail_with(path, {str_cat("metadata tgpt.config: ", e.what())});
  }
  std::map<std::string, Tensor> tensors;
  for (const SafetensorsEntry& e : file.entries()) tensors.emplace(e.name, file.get(e.name));
  ClipModel m = build(tensors, config, path, device, compute_dtype);
  if (const std::string* merges = get_meta("tgpt.bpe_merges")) m.bpe_merges_ = *merges;
  return m;
}

ClipModel ClipModel::from_tensors(const std::map<std::string, Tensor>& tensors,
                                  const ClipConfig& config) {
  return from_tensors(tensors, config, Device::CPU, DType::f32);
}

ClipModel ClipModel::from_tensors(const std::map<std::string, Tensor>& tensors,
                                  const ClipConfig& config, Device device, DType compute_dtype) {
  return build(tensors, config, "ClipModel::from_tensors", device, compute_dtype);
}

ClipModel ClipModel::init_random(const ClipConfig& config, uint64_t seed, Device device,
                                 DType compute_dtype) {
  const std::string source = "ClipModel::init_random";
  check_placement(device, compute_dtype, source);
  std::vector<std::string> problems = config.problems();
  for (std::string& p : problems) p = "config: " + p;
  if (!problems.empty()) fail_with(source, problems);
  Generator gen(seed);
  const int64_t Wv = config.vision_width, Wt = config.transformer_width;
  const int64_t P = config.vision_patch_size;
  std::map<std::string, Tensor> t;
  for (const auto& [name, shape] : expected_clip_tensors(config))
    t[name] = Tensor::zeros(shape, DType::f32);  // biases 0
  auto normal = [&](const std::string& name, double std) {
    t[name] = gen.randn(t[name].shape(), DType::f32, std);
  };
  // clip/model.py initialize_parameters (text) and its scheme for the vision blocks.
  auto blocks = [&](const std::string& prefix, int64_t layers, int64_t width) {
    const double attn_std = 1.0 / std::sqrt(static_cast<double>(width));
    const double proj_std = attn_std / std::sqrt(2.0 * static_cast<double>(layers));
    const double fc_std = 1.0 / std::sqrt(2.0 * static_cast<double>(width));
    for (int64_t i = 0; i < layers; ++i) {
      const std::string b = str_cat(prefix, i, ".");
      t[b + "ln_1.weight"] = Tensor::ones({width});
      t[b + "ln_2.weight"] = Tensor::ones({width});
      normal(b + "attn.in_proj_weight", attn_std);
      normal(b + "attn.out_proj.weight", proj_std);
      normal(b + "mlp.c_fc.weight", fc_std);
      normal(b + "mlp.c_proj.weight", proj_std);
    }
  };
  const double vscale = 1.0 / std::sqrt(static_cast<double>(Wv));
  const double conv_bound = 1.0 / std::sqrt(static_cast<double>(3 * P * P));
  t["visual.conv1.weight"] = gen.uniform({Wv, 3, P, P}, -conv_bound, conv_bound);
  normal("visual.class_embedding", vscale);
  normal("visual.positional_embedding", vscale);
  t["visual.ln_pre.weight"] = Tensor::ones({Wv});
  blocks("visual.transformer.resblocks.", config.vision_layers, Wv);
  t["visual.ln_post.weight"] = Tensor::ones({Wv});
  normal("visual.proj", vscale);
  normal("token_embedding.weight", 0.02);
  normal("positional_embedding", 0.01);
  blocks("transformer.resblocks.", config.transformer_layers, Wt);
  t["ln_final.weight"] = Tensor::ones({Wt});
  normal("text_projection", 1.0 / std::sqrt(static_cast<double>(Wt)));
  t["logit_scale"] = Tensor::full({}, std::log(1.0 / 0.07), DType::f32);
  ClipModel m = build(t, config, source, device, compute_dtype);
  m.params_.set_all_trainable(true);
  m.trainable_ = true;
  m.visual_proj_t_ = Tensor();  // unused when trainable: the projections come from params_
  m.text_projection_t_ = Tensor();
  return m;
}

nn::ParameterSet& ClipModel::mutable_parameters() {
  TGPT_CHECK(trainable_,
             "ClipModel::mutable_parameters: the model is frozen (loaded for inference); build a "
             "trainable one with ClipModel::init_random");
  return params_;
}

void ClipModel::save(const std::string& path) const {
  std::map<std::string, std::string> meta{
      {"tgpt.format", "clip"}, {"tgpt.format_version", "1"}, {"tgpt.config", config_.to_json()}};
  if (!bpe_merges_.empty()) meta["tgpt.bpe_merges"] = bpe_merges_;
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, w] : params_.items()) {
    Tensor v = w.detach();
    if (v.device() != Device::CPU) v = v.to(Device::CPU);
    tensors.emplace_back(name, v.dtype() == DType::f32 ? v : v.to(DType::f32));
  }
  save_safetensors(path, tensors, meta);
}

ClipModel ClipModel::build(const std::map<std::string, Tensor>& tensors, const ClipConfig& config,
                           const std::string& source, Device device, DType compute_dtype) {
  check_placement(device, compute_dtype, source);
  std::vector<std::string> problems = config.problems();
  for (std::string& p : problems) p = "config: " + p;
  if (!problems.empty()) fail_with(source, problems);

  std::map<std::string, Shape> expected;
  for (auto& [name, shape] : expected_clip_tensors(config)) expected[name] = shape;
  std::vector<std::string> missing, unknown;
  bool resnet = false;
  for (const auto& [name, shape] : expected) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      missing.push_back(name);
      continue;
    }
    const Tensor& t = it->second;
    if (!t.defined()) {
      problems.push_back(str_cat(name, " is an undefined tensor"));
    } else if (!dtype_is_float(t.dtype())) {
      problems.push_back(str_cat(name, " has dtype ", dtype_name(t.dtype()),
                                 ", expected a float type (f32, f16, bf16, f64)"));
    } else if (t.shape() != shape) {
      problems.push_back(str_cat(name, " has shape ", t.shape().str(), ", expected ", shape.str(),
                                 " for ", config.name()));
    }
  }
  for (const auto& [name, t] : tensors) {
    if (expected.count(name)) continue;
    unknown.push_back(name);
    resnet = resnet || name.rfind("visual.layer", 0) == 0 || name.rfind("visual.attnpool", 0) == 0;
  }
  auto list = [](const std::vector<std::string>& names) {
    std::string s;
    const size_t shown = std::min<size_t>(names.size(), 20);
    for (size_t i = 0; i < shown; ++i) s += (i ? ", " : "") + names[i];
    if (names.size() > shown) s += str_cat(", ... (", names.size() - shown, " more)");
    return s;
  };
  if (resnet)
    problems.push_back(
        "this is a ResNet CLIP (visual.layer*/visual.attnpool tensors); only ViT "
        "models are supported");
  if (!missing.empty())
    problems.push_back(str_cat(missing.size(), " tensor(s) missing: ", list(missing)));
  if (!unknown.empty())
    problems.push_back(str_cat(unknown.size(), " unexpected tensor(s): ", list(unknown)));
  if (!problems.empty()) fail_with(source, problems);

  ClipModel m;
  m.config_ = config;
  m.device_ = device;
  m.compute_dtype_ = compute_dtype;
  m.register_parameters();
  // Values are copied on the host (cast to the compute dtype by ParameterSet::load), then the
  // whole set is uploaded once.
  std::map<std::string, Tensor> host;
  for (const auto& [name, t] : tensors) {
    Tensor w = t.detach();  // our own handle: the caller's requires_grad is not touched
    if (w.device() != Device::CPU) w = w.to(Device::CPU);
    if (name == "logit_scale") m.logit_scale_ = std::exp(to_f32(w).item());
    host.emplace(name, w);
  }
  m.params_.load(host, source);
  Tensor visual_proj_t = m.params_.get("visual.proj").transpose(0, 1).contiguous();  // [E,Wv]
  Tensor text_projection_t = m.params_.get("text_projection").transpose(0, 1).contiguous();
  if (device != Device::CPU) {
    m.params_.to(device, compute_dtype);
    visual_proj_t = visual_proj_t.to(device);
    text_projection_t = text_projection_t.to(device);
  }
  m.visual_proj_t_ = visual_proj_t;          // [E,Wv]
  m.text_projection_t_ = text_projection_t;  // [E,Wt]
  return m;
}

// Registers every weight under its OpenAI name, in OpenAI's state-dict order (the order of
// expected_clip_tensors), in the compute dtype on the host, frozen.
void ClipModel::register_parameters() {
  const ClipConfig& c = config_;
  const nn::ParamOptions frozen{compute_dtype_, false};
  auto raw = [&](const std::string& name, const Shape& shape) {
    return params_.add(name, Tensor::zeros(shape, compute_dtype_), false);
  };
  auto blocks = [&](const std::string& prefix, int64_t layers, int64_t width, int64_t heads,
                    bool causal) {
    nn::ResidualBlock::Config bc;
    bc.attn = {width, static_cast<int>(heads), causal, true, true};
    bc.mlp_hidden = 4 * width;
    bc.activation = c.activation;
    bc.eps = 1e-5;
    std::vector<nn::ResidualBlock> out;
    for (int64_t i = 0; i < layers; ++i)
      out.emplace_back(params_, str_cat(prefix, i, "."), bc, nn::ResidualBlock::Names{}, frozen);
    return out;
  };
  const int64_t Wv = c.vision_width, P = c.vision_patch_size, Wt = c.transformer_width;
  conv1_w_ = raw("visual.conv1.weight", {Wv, 3, P, P});
  class_embedding_ = raw("visual.class_embedding", {Wv});
  vision_pos_ = raw("visual.positional_embedding", {c.vision_tokens(), Wv});
  ln_pre_ = nn::LayerNorm(params_, "visual.ln_pre.", Wv, 1e-5, frozen);
  vision_blocks_ =
      blocks("visual.transformer.resblocks.", c.vision_layers, Wv, c.vision_heads, false);
  ln_post_ = nn::LayerNorm(params_, "visual.ln_post.", Wv, 1e-5, frozen);
  raw("visual.proj", {Wv, c.embed_dim});
  token_embedding_ = raw("token_embedding.weight", {c.vocab_size, Wt});
  text_pos_ = raw("positional_embedding", {c.context_length, Wt});
  text_blocks_ =
      blocks("transformer.resblocks.", c.transformer_layers, Wt, c.transformer_heads, true);
  ln_final_ = nn::LayerNorm(params_, "ln_final.", Wt, 1e-5, frozen);
  raw("text_projection", {Wt, c.embed_dim});
  raw("logit_scale", Shape{});
}

double ClipModel::logit_scale() const {
  if (!trainable_) return logit_scale_;
  Tensor p = params_.get("logit_scale").detach();
  return std::exp(p.device() == Device::CPU ? p.item() : p.to(Device::CPU).item());
}

Tensor ClipModel::project_image(const Tensor& x) const {
  return trainable_ ? matmul(x, params_.get("visual.proj")) : linear(x, visual_proj_t_);
}

Tensor ClipModel::project_text(const Tensor& x) const {
  return trainable_ ? matmul(x, params_.get("text_projection")) : linear(x, text_projection_t_);
}

Tensor ClipModel::to_model(const Tensor& x_in) const {
  Tensor x = x_in;
  // f64 is cast on the host: the CUDA kernels do not take it.
  if (x.device() != device_ && x.dtype() == DType::f64) x = x.to(compute_dtype_);
  if (x.device() != device_) x = x.to(device_);
  return x.dtype() == compute_dtype_ ? x : x.to(compute_dtype_);
}

Tensor ClipModel::to_output(const Tensor& y) const {
  return compute_dtype_ == DType::f64 ? y : to_f32(y);
}

const Tensor& ClipModel::weight(const std::string& name) const {
  TGPT_CHECK(params_.contains(name), "ClipModel::weight: no tensor named \"", name, "\"");
  return params_.get(name);
}

// ---- forward ----------------------------------------------------------------------------------

// images [B,3,R,R] -> transformer output [B,T,Wv] (ln_post not applied).
Tensor ClipModel::vision_transformer(const Tensor& images_in) const {
  const int64_t W = config_.vision_width;
  const int64_t G = config_.vision_grid(), T = config_.vision_tokens();
  check_images(config_, images_in);
  const int64_t B = images_in.size(0);
  Tensor images = to_model(images_in);           // [B,3,R,R] compute dtype on the model's device
  Tensor x = conv2d_patch(images, conv1_w_);     // [B,W,G,G]
  x = x.reshape({B, W, G * G}).transpose(1, 2);  // [B,G²,W], token 1+r*G+c
  Tensor cls = broadcast_to(class_embedding_.reshape({1, 1, W}), {B, 1, W});
  x = concat({cls, x}, 1);  // [B,T,W]
  x = add(x, vision_pos_);  // + [T,W]
  x = ln_pre_.forward(x);
  nn::ResidualBlock::Residual r{x, Tensor()};
  for (const nn::ResidualBlock& blk : vision_blocks_) r = blk.forward(r);
  x = r.resolve();  // [B,T,W]
  TGPT_CHECK(x.size(1) == T, "ClipModel: internal token count mismatch");
  return x;
}

Tensor ClipModel::encode_image(const Tensor& images) const {
  std::optional<NoGradGuard> no_grad;
  if (!trainable_) no_grad.emplace();
  check_images(config_, images);
  if (images.size(0) == 0) return Tensor::zeros({0, config_.embed_dim}, DType::f32, device_);
  Tensor x = vision_transformer(images);          // [B,T,Wv]
  Tensor cls = ln_post_.forward(x.select(1, 0));  // [B,Wv]
  return to_output(project_image(cls));           // [B,E]; the other tokens are not projected
}

ClipModel::ImageOutput ClipModel::encode_image_with_tokens(const Tensor& images) const {
  std::optional<NoGradGuard> no_grad;
  if (!trainable_) no_grad.emplace();
  check_images(config_, images);
  if (images.size(0) == 0) {
    const int64_t E = config_.embed_dim;
    return {Tensor::zeros({0, E}, DType::f32, device_),
            Tensor::zeros({0, config_.vision_tokens(), E}, DType::f32, device_)};
  }
  Tensor x = vision_transformer(images);          // [B,T,Wv]
  Tensor cls = ln_post_.forward(x.select(1, 0));  // [B,Wv]
  return {to_output(project_image(cls)),          // [B,E]
          to_output(project_image(x))};           // [B,T,E], no ln_post
}

Tensor ClipModel::embed_tokens(const Tensor& tokens) const {
  TGPT_CHECK(tokens.defined(), "ClipModel::embed_tokens: tokens are undefined");
  TGPT_CHECK(tokens.dtype() == DType::i32 || tokens.dtype() == DType::i64,
             "ClipModel::embed_tokens: tokens must be i32 or i64, got ",
             dtype_name(tokens.dtype()));
  return embedding(tokens, token_embedding_);  // [..., W]
}

Tensor ClipModel::encode_text(const Tensor& tokens) const {
  const int64_t ctx = config_.context_length;
  TGPT_CHECK(tokens.defined(), "ClipModel::encode_text: tokens are undefined");
  TGPT_CHECK(tokens.dim() == 2 && tokens.size(1) == ctx,
             "ClipModel::encode_text: tokens must be [N, ", ctx, "], got ", tokens.shape().str());
  std::vector<int64_t> ids = int_values(tokens, "ClipModel::encode_text: tokens");
  const int64_t N = tokens.size(0);
  if (N == 0) return Tensor::zeros({0, config_.embed_dim}, DType::f32, device_);
  // Pool at the first position of each row's largest id (torch.argmax; EOT is the largest id).
  std::vector<int64_t> eot(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) {
    const int64_t* row = ids.data() + n * ctx;
    eot[static_cast<size_t>(n)] = std::max_element(row, row + ctx) - row;
  }
  std::optional<NoGradGuard> no_grad;
  if (!trainable_) no_grad.emplace();
  Tensor eot_t = Tensor::from_data(eot.data(), {N});
  // The mask is causal: the features at the EOT positions depend on no later position, so the
  // encoder runs on the first max(eot) + 1 positions only (the same values, a fraction of the
  // work for short texts such as prompts and captions).
  const int64_t L = *std::max_element(eot.begin(), eot.end()) + 1;
  return encode_text_embeddings(
      embed_tokens(L < ctx ? tokens.narrow(1, 0, L).contiguous() : tokens), eot_t);
}

Tensor ClipModel::encode_text_embeddings(const Tensor& x_in, const Tensor& eot) const {
  const int64_t ctx = config_.context_length, W = config_.transformer_width;
  TGPT_CHECK(x_in.defined() && eot.defined(),
             "ClipModel::encode_text_embeddings: x or eot is undefined");
  TGPT_CHECK(dtype_is_float(x_in.dtype()),
             "ClipModel::encode_text_embeddings: x must be float, got ", dtype_name(x_in.dtype()));
  TGPT_CHECK(x_in.dim() == 3 && x_in.size(1) >= 1 && x_in.size(1) <= ctx && x_in.size(2) == W,
             "ClipModel::encode_text_embeddings: x must be [N, L, ", W, "] with 1 <= L <= ", ctx,
             ", got ", x_in.shape().str());
  const int64_t N = x_in.size(0), L = x_in.size(1);
  TGPT_CHECK(eot.dim() == 1 && eot.size(0) == N, "ClipModel::encode_text_embeddings: eot must be [",
             N, "], got ", eot.shape().str());
  std::vector<int64_t> pos = int_values(eot, "ClipModel::encode_text_embeddings: eot");
  int64_t last = 0;
  for (size_t n = 0; n < pos.size(); ++n) {
    TGPT_CHECK(pos[n] >= 0 && pos[n] < L, "ClipModel::encode_text_embeddings: eot[", n,
               "] = ", pos[n], " is outside [0, ", L, ")");
    last = std::max(last, pos[n]);
  }
  if (N == 0) return Tensor::zeros({0, config_.embed_dim}, DType::f32, device_);
  // Causal attention: positions after the last pooled one cannot affect the result.
  const int64_t T = last + 1;
  Tensor x = to_model(x_in).narrow(1, 0, T);  // [N,T,W]
  x = add(x, text_pos_.narrow(0, 0, T));      // + [T,W]
  nn::ResidualBlock::Residual r{x, Tensor()};
  for (const nn::ResidualBlock& blk : text_blocks_) r = blk.forward(r);
  x = r.resolve();                                         // [N,T,W]
  Tensor pooled = ln_final_.forward(gather_rows(x, eot));  // [N,W]
  return to_output(project_text(pooled));                  // [N,E] f32
}

}  // namespace tgpt

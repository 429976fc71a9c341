/*
 * clip.h — OpenAI CLIP (ViT image tower + causal text tower) on the tgpt engine.
 *
 * Loads the tgpt CLIP weight file (models/README.md) written by tgpt-convert. Architecture per
 * ../shared/spec/clip.md §1: pre-LN residual blocks (nn::ResidualBlock, models/nn), packed-QKV
 * multi-head attention (head dim W/heads), QuickGELU (OpenAI) or exact GELU (open_clip
 * non-quickgelu), LayerNorm eps 1e-5. The weights live in an nn::ParameterSet under OpenAI's
 * names (parameters()).
 * A loaded model is frozen (requires_grad = false); encode_text_embeddings is differentiable with
 * respect to its input embeddings, which is what prompt tuning needs.
 *
 * Trainable models (ClipModel::init_random, contrastive pretraining): every weight requires grad,
 * encode_image / encode_text record autograd, and the projections are applied from the
 * ParameterSet tensors themselves (x @ visual.proj) rather than from the transposed copies the
 * frozen path caches, so gradients reach them; mutable_parameters() gives the optimizer the set,
 * logit_scale_param() the loss its parameter, and save() writes a normal tgpt CLIP weight file.
 * The frozen inference path is unchanged.
 *
 * Device and precision: the CPU path computes in f32 whatever the stored dtype (f64/f16/bf16 on
 * request, as references for the CUDA path). The CUDA path
 * uploads every weight once, at load, in the compute dtype (f16, bf16 or f32; f16 weights of an
 * OpenAI file stay f16 under f16 compute, LayerNorm parameters are cast too since layer_norm takes
 * them in x's dtype; its statistics are f32 inside the kernel). Inputs may live on either device;
 * encode_* move them to the model's device and cast them to the compute dtype. Outputs are f32
 * tensors on the model's device (call .to(Device::CPU) to read them); an f64 model (a reference)
 * returns f64.
 */
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "base/activation.h"
#include "engine/tensor.h"
#include "models/nn/layers.h"
#include "models/nn/parameters.h"
#include "models/nn/residual_block.h"

namespace tgpt {

// CLIP's MLP activation (ClipConfig::activation): quick_gelu (OpenAI) or gelu (open_clip
// non-quickgelu models); base/activation.h. Throws on any other name.
Activation parse_clip_activation(const std::string& s);

struct ClipConfig {
  int64_t embed_dim = 0;
  int64_t image_resolution = 0;
  int64_t vision_layers = 0;
  int64_t vision_width = 0;
  int64_t vision_patch_size = 0;
  int64_t vision_heads = 0;
  int64_t context_length = 0;
  int64_t vocab_size = 0;
  int64_t transformer_width = 0;
  int64_t transformer_heads = 0;
  int64_t transformer_layers = 0;
  Activation activation = Activation::quick_gelu;

  int64_t vision_grid() const { return image_resolution / vision_patch_size; }
  int64_t vision_tokens() const { return vision_grid() * vision_grid() + 1; }
  // JSON as stored in the weight file's `tgpt.config` metadata; parse validates every field.
  std::string to_json() const;
  static ClipConfig from_json(const std::string& json);
  // Every inconsistency (non-positive or huge fields, width not divisible by heads, resolution
  // not a multiple of the patch), one sentence each; empty when the config is usable.
  std::vector<std::string> problems() const;
  // "ViT-B/16" when the numbers match an OpenAI model, else a description of the numbers.
  std::string name() const;
  // The config of an OpenAI model by name: "ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14@336px"
  // (random-weight benchmarks, tests); throws for any other name, listing these.
  static ClipConfig openai(const std::string& model_name);
};

// Every tensor of a ViT CLIP with its shape, in OpenAI's state-dict order, from the config.
std::vector<std::pair<std::string, Shape>> expected_clip_tensors(const ClipConfig& c);

class ClipModel {
 public:
  // Loads and validates a tgpt CLIP weight file (every tensor present with the right shape).
  // The one-argument forms are the CPU f32 model.
  static ClipModel load(const std::string& path);
  // Device CPU computes in f32 (the production path) or, as references for the CUDA path, in f64
  // or op by op in f16/bf16 (each op computes in f32 and rounds its result, like PyTorch's eager
  // half ops; slow). Device CUDA takes f32, f16 or bf16 (f64 is refused, and a CUDA request
  // without a CUDA device is a tgpt::Error saying so).
  static ClipModel load(const std::string& path, Device device, DType compute_dtype);
  // Builds a model from named tensors (OpenAI names) and a config; validates like load().
  static ClipModel from_tensors(const std::map<std::string, Tensor>& tensors,
                                const ClipConfig& config);
  static ClipModel from_tensors(const std::map<std::string, Tensor>& tensors,
                                const ClipConfig& config, Device device, DType compute_dtype);
  // A randomly initialised, trainable model of `config` (OpenAI's scheme, clip/model.py):
  //   token_embedding N(0, 0.02²), positional_embedding N(0, 0.01²);
  //   text blocks (initialize_parameters): in_proj N(0, W^-1), out_proj and c_proj
  //     N(0, W^-1 (2L)^-1), c_fc N(0, (2W)^-1), biases 0, LayerNorms 1/0;
  //   text_projection N(0, W^-1); logit_scale = ln(1/0.07);
  //   visual (VisionTransformer.__init__): class_embedding, positional_embedding and proj
  //     N(0, Wv^-1); conv1 PyTorch's default U(±1/sqrt(3 P²)); the vision blocks with the text
  //     blocks' scheme at the vision width and depth (OpenAI leaves PyTorch's defaults there).
  // Draws from a generator seeded with `seed` in this order (deterministic); weights are stored in
  // compute_dtype on `device` (f32, or f64 on the CPU for gradient checks).
  static ClipModel init_random(const ClipConfig& config, uint64_t seed, Device device = Device::CPU,
                               DType compute_dtype = DType::f32);

  const ClipConfig& config() const { return config_; }
  Device device() const { return device_; }
  DType compute_dtype() const { return compute_dtype_; }
  const std::string& bpe_merges() const { return bpe_merges_; }  // empty when not embedded
  // The BPE merges text save() embeds as tgpt.bpe_merges metadata.
  void set_bpe_merges(std::string merges) { bpe_merges_ = std::move(merges); }
  // exp(logit_scale): the value stored at load (read as f32), the current one when trainable.
  double logit_scale() const;
  bool trainable() const { return trainable_; }
  // The logit_scale tensor [] (trainable in a trainable model): clip_contrastive_loss's parameter.
  const Tensor& logit_scale_param() const { return params_.get("logit_scale"); }
  // The set itself, for an optimizer; only a trainable model (throws otherwise: a frozen model
  // keeps derived copies that would go stale).
  nn::ParameterSet& mutable_parameters();
  // Writes a tgpt CLIP weight file (models/README.md), atomically: every weight under its OpenAI
  // name in f32 (f16/bf16/f64 compute dtypes are converted), metadata tgpt.format = clip,
  // tgpt.format_version = 1, tgpt.config and, when set, tgpt.bpe_merges. ClipModel::load reads it.
  void save(const std::string& path) const;
  // A weight by its OpenAI name (throws when absent), in the compute dtype on the model's device.
  const Tensor& weight(const std::string& name) const;
  // Every weight under its OpenAI name, in OpenAI's state-dict order (expected_clip_tensors); all
  // frozen (not trainable). Read-only: the model keeps derived copies (the transposed
  // projections), so placement is chosen at load time, not by moving these.
  const nn::ParameterSet& parameters() const { return params_; }

  // images [B,3,R,R] float, preprocessed -> pooled image features [B,E] (ln_post(CLS) @ proj).
  Tensor encode_image(const Tensor& images) const;
  // Also returns the projected token sequence WITHOUT ln_post: tokens [B,T,E] (TGP-T §1.2).
  struct ImageOutput {
    Tensor pooled;  // [B,E]
    Tensor tokens;  // [B,T,E], T = grid² + 1, CLS at index 0
  };
  ImageOutput encode_image_with_tokens(const Tensor& images) const;

  // tokens [N,77] (i32/i64) -> text features [N,E], pooled at the first argmax (EOT); runs the
  // encoder on the first max(EOT) + 1 positions only (exact: the mask is causal).
  Tensor encode_text(const Tensor& tokens) const;
  // x [N,L,W] input embeddings (token embedding lookup, or prompts built from it; L <= 77: the
  // first L positions of a sequence, enough when every pooled position is below L since the
  // mask is causal), eot [N] (i32/i64) pooling positions in [0, L) -> [N,E]. Adds the positional
  // embedding itself.
  // Differentiable with respect to x.
  Tensor encode_text_embeddings(const Tensor& x, const Tensor& eot) const;
  // Token embedding lookup: tokens [N,77] -> [N,77,W] (any shape of ids: [...] -> [..., W]), in
  // the compute dtype on the model's device (ids may be on either device).
  // x of encode_text_embeddings may be on either device in any float dtype; its result, like
  // every encode_* result, is f32 (f64 for an f64 model) on the model's device.
  Tensor embed_tokens(const Tensor& tokens) const;

 private:
  ClipModel() = default;
  // Validates and converts `tensors` (all problems in one tgpt::Error naming `source`).
  static ClipModel build(const std::map<std::string, Tensor>& tensors, const ClipConfig& config,
                         const std::string& source, Device device, DType compute_dtype);
  // An input moved to the model's device and cast to the compute dtype (recorded by autograd).
  Tensor to_model(const Tensor& x) const;
  // A result as f32 on the model's device.
  Tensor to_output(const Tensor& y) const;
  Tensor vision_transformer(const Tensor& images) const;  // -> [B,T,Wv] before ln_post
  // x [..., W] @ visual.proj / text_projection [W, E] -> [..., E]: the cached transposed copy
  // (frozen) or the parameter itself (trainable, so that its gradient is recorded).
  Tensor project_image(const Tensor& x) const;
  Tensor project_text(const Tensor& x) const;
  void register_parameters();  // the layers and raw weights of config_, zero-filled

  ClipConfig config_;
  Device device_ = Device::CPU;
  DType compute_dtype_ = DType::f32;
  bool trainable_ = false;
  double logit_scale_ = 0;  // exp(logit_scale)
  std::string bpe_merges_;
  // Every weight under its OpenAI name; the layers and tensors below are handles into it.
  nn::ParameterSet params_;
  Tensor conv1_w_;                                // visual.conv1.weight [Wv,3,P,P]
  Tensor class_embedding_;                        // visual.class_embedding [Wv]
  Tensor vision_pos_;                             // visual.positional_embedding [T,Wv]
  nn::LayerNorm ln_pre_;                          // visual.ln_pre
  std::vector<nn::ResidualBlock> vision_blocks_;  // visual.transformer.resblocks.<i>.
  nn::LayerNorm ln_post_;                         // visual.ln_post
  Tensor token_embedding_;                        // token_embedding.weight [V,Wt]
  Tensor text_pos_;                               // positional_embedding [77,Wt]
  std::vector<nn::ResidualBlock> text_blocks_;    // transformer.resblocks.<i>.
  nn::LayerNorm ln_final_;                        // ln_final
  Tensor visual_proj_t_;      // visual.proj transposed, contiguous [E,Wv] (a Linear weight)
  Tensor text_projection_t_;  // text_projection transposed, contiguous [E,Wt]
};

}  // namespace tgpt

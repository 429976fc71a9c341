/*
 * tgpt.h — TGP-T (Compound Text-Guided Prompt Tuning, Tan et al., AAAI 2024) on a frozen CLIP,
 * exactly as the official code computes it (../shared/spec/method.md §1–3, quirks included).
 *
 * Shapes: B batch, E CLIP embed dim, W text width (the Bonder width; E must equal W, as for
 * ViT-B/16), T image tokens (grid² + 1), Nc / Nn category / content queries (32 / 64), C classes,
 * V vocabulary.
 *
 * Forward (image_cls [B,E] = ln_post(CLS) @ proj, image_tokens [B,T,E] = every last-layer token
 * @ proj WITHOUT ln_post; both from the frozen image encoder, no tape):
 *   out_cat = Bonder_cat(query_category [1,Nc,W], image_tokens)       [B,Nc,W]
 *   out_con = Bonder_con(query_content  [1,Nn,W], image_tokens)       [B,Nn,W]
 *     Bonder (CrossAttnBlock), pre-LN, queries batch 1 until the cross-attention:
 *       q = q + SelfAttn(norm1(q))          8 heads, qkv without bias, proj with bias
 *       q = q + CrossAttn(norm2_q(q), norm2_kv(img))   single head over the full width, Q = q(x)
 *                                           (no bias), K = V = norm2_kv(img) (no projection),
 *                                           scale (W/8)^-½, proj with bias; q broadcast to B
 *       q = q + MLP(norm_mlp(q))            fc1 W->W, exact GELU, fc2 W->W
 *     cross_attn.norm_text / norm_img exist (trainable, never used, never get a gradient).
 *   prompt_cat = [emb(SOT), out_cat, emb("."), emb(EOT)]               [B,Nc+3,W]
 *   t_cat = text_encoder(prompt_cat) pooled at Nc+2 (34 for 32 queries)  [B,E]
 *     (the official prompt continues with emb(pad id 0) to 77 tokens; the causal mask makes
 *     them irrelevant to the EOT position, so they are not computed)
 *   t_con likewise at Nn+2 (66)                                        [B,E]
 *   features = [image_cls ; (t_cat + t_con)/2]                         [B,2E]
 *   logits = 100 · normalize(features) · Wᵀ, W = cls_head.fc.weight   [B,C]
 *   logits_wiseft: the same with 0.5·W + 0.5·zs_weights
 * Losses (all means, summed with weight 1):
 *   cls      = CE(logits, labels)                          (fused cosine_logit_loss)
 *   category = CE(out_cat · E_tokᵀ, target_cat[labels])     label smoothing 0.1, ignore −100,
 *   content  = CE(out_con · E_tokᵀ, caption[:,1:1+Nn])      mean over valid tokens; fused
 *                                                            vocab_cross_entropy: [B·N, V] never stored
 *   target_cat[c] = tokens 1..Nc of "a photo of a {name}." (name with _ ( ) -> spaces), pad -> −100.
 * Zero-shot head (zeroshot_head): per class the mean of UNnormalised text features over the
 * templates t̄_c [E] -> normalize([t̄_c ; t̄_c]) [2E]; cls_head.fc.weight starts as a copy.
 *
 * Parameters (ParameterSet, the official state-dict names, so official checkpoints load):
 *   prompt_learner.query_category [1,Nc,W], prompt_learner.query_content [1,Nn,W]
 *   prompt_learner.bonder_{category,content}.{norm1, attn.qkv, attn.proj, norm2_q, norm2_kv,
 *     cross_attn.q, cross_attn.proj, cross_attn.norm_text, cross_attn.norm_img, norm_mlp,
 *     mlp.fc1, mlp.fc2}.{weight,bias}      (attn.qkv and cross_attn.q: weight only)
 *   cls_head.fc.weight [C,2E]                                   — all trainable
 *   zs_weights [C,2E]                                            — frozen (the zero-shot head)
 * Initialisation: queries N(0, 0.02²), then category queries 0..n-1 = the token embeddings of the
 * init text's tokens ("a photo of a": n = 4); Bonder layers PyTorch defaults (Linear uniform
 * ±1/√fan_in, LayerNorm 1/0); cls_head from the zero-shot head (set_zeroshot_head).
 *
 * Device: the parameters live on the CLIP model's device in f32 (the Bonders and heads compute
 * in f32; a CUDA CLIP may compute its frozen encoders in bf16/f16 — mixed precision). The
 * vocabulary head is the CLIP token embedding as f32 on that device. With an f64 CLIP (a CPU
 * reference) everything is f64, so a whole training step can be checked against an f64
 * reference without f32 rounding.
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/random.h"
#include "engine/tensor.h"
#include "models/clip/clip.h"
#include "models/nn/parameters.h"
#include "models/nn/residual_block.h"
#include "models/tokenizer.h"

namespace tgpt {

struct TgptConfig {
  int64_t num_classes = 0;
  int64_t category_queries = 32;  // MODEL.BONDER.NUM_Q_CTG
  int64_t content_queries = 64;   // MODEL.BONDER.NUM_Q_CON
  int bonder_heads = 8;           // self-attention heads; also fixes the cross-attention scale
  double logit_scale = 100.0;     // exp(4.60517), fixed
  double label_smoothing = 0.1;   // of both vocabulary losses
  double wiseft_ratio = 0.5;      // W_wise = (1 - r)·W + r·W_zs
  double query_init_std = 0.02;
};

// The token ids TGP-T's prompts use, from a tokenizer.
struct TgptTokenIds {
  int64_t sot = 0, eot = 0;
  int64_t period = 0;               // "."
  std::vector<int64_t> init_words;  // the category queries' initial tokens
};
// SOT, EOT, "." and the init text's first n tokens, n = its number of space-separated words
// ("a photo of a": 4), as the official code takes them; empty text: none.
TgptTokenIds tgpt_token_ids(const ClipTokenizer& tokenizer, const std::string& init_text);

// The class name as the category sentence uses it ('_', '(' and ')' become spaces).
std::string tgpt_category_name(const std::string& classname);
// "a photo of a {name}." for every class, tokenized -> i32 [C, ctx].
Tensor tgpt_category_sentence_tokens(const ClipTokenizer& tokenizer,
                                     const std::vector<std::string>& classnames,
                                     int context_length);
// Vocabulary targets: tokens [N, ctx] (i32/i64) -> i64 [N, n] = tokens[:, 1:1+n] with pad (0)
// replaced by −100.
Tensor tgpt_token_targets(const Tensor& tokens, int64_t n);
// The zero-shot head from per-class mean text features [C,E] -> f32 [C,2E] (rows normalised).
Tensor tgpt_zeroshot_head(const Tensor& class_features);
// The head over a subset of its classes (a 1000-way ImageNet head evaluated on ImageNet-A/-R's
// 200 classes, data.md §1.1): head [C,F] (any float dtype, any device), rows R indices in [0,C)
// -> [R,F] with row r = head[rows[r]] (a copy, same dtype and device; no tape). So
// logits = 100 · normalize(f) · selectedᵀ are the full head's logits at columns `rows`.
// Errors: a head that is not 2-D, no rows, an index outside [0,C).
Tensor tgpt_select_head_rows(const Tensor& head, const std::vector<int64_t>& rows);

class TgptModel {
 public:
  // Registers every parameter (see above) and initialises them with `gen`; cls_head and
  // zs_weights start at zero until set_zeroshot_head. Throws when the CLIP's embed dim differs
  // from its text width, when the width is not divisible by the heads, when Nc + 3 or Nn + 3
  // exceeds the context length, or when the init text has more tokens than Nc.
  TgptModel(const ClipModel& clip, const TgptConfig& config, const TgptTokenIds& ids,
            Generator& gen);

  const TgptConfig& config() const { return config_; }
  const ClipModel& clip() const { return *clip_; }
  nn::ParameterSet& parameters() { return params_; }
  const nn::ParameterSet& parameters() const { return params_; }
  int64_t num_classes() const { return config_.num_classes; }

  // zs [C,2E] (tgpt_zeroshot_head): stored as zs_weights and copied into cls_head.fc.weight.
  void set_zeroshot_head(const Tensor& zs);
  // Stores zs as zs_weights only (the WiSE-FT reference); the trained head stays.
  void set_zeroshot_weights(const Tensor& zs);
  // Category sentences [C, ctx] (tgpt_category_sentence_tokens) -> the per-class targets.
  void set_category_sentences(const Tensor& tokens);
  const Tensor& category_targets() const { return category_targets_; }  // i64 [C,Nc] (CPU)

  struct ImageFeatures {
    Tensor cls;     // [B,E]
    Tensor tokens;  // [B,T,E]
  };
  // The frozen image encoder, without a tape.
  ImageFeatures encode_images(const Tensor& images) const;

  struct Output {
    Tensor out_cat;   // [B,Nc,W]
    Tensor out_con;   // [B,Nn,W]
    Tensor t_cat;     // [B,E]
    Tensor t_con;     // [B,E]
    Tensor features;  // [B,2E]
  };
  Output forward(const ImageFeatures& image) const;
  // 100 · normalize(features) · Wᵀ [B,C] (no tape), with the trained head or the WiSE-FT one.
  Tensor logits(const Tensor& features) const;
  Tensor logits_wiseft(const Tensor& features) const;

  struct Losses {
    Tensor cls, category, content, total;  // one-element f32 tensors
  };
  // labels: B values in [0, C); caption_tokens [B, ctx] (i32/i64) or undefined (no content loss:
  // content is then an undefined tensor and total = cls + category).
  Losses losses(const Output& out, const std::vector<int64_t>& labels,
                const Tensor& caption_tokens) const;

 private:
  Tensor encode_prompt(const Tensor& generated) const;  // [B,N,W] -> t [B,E]

  const ClipModel* clip_;
  TgptConfig config_;
  TgptTokenIds ids_;
  DType dtype_;  // of the parameters and the Bonder/head compute: f32 (f64 for an f64 CLIP)
  nn::ParameterSet params_;
  Tensor query_category_, query_content_;  // [1,Nc,W], [1,Nn,W]
  nn::ResidualBlock bonder_category_, bonder_content_;
  Tensor cls_head_;    // cls_head.fc.weight [C,2E]
  Tensor zs_weights_;  // [C,2E]
  Tensor prompt_prefix_;  // emb(SOT) [1,1,W]
  Tensor prompt_suffix_;  // [emb("."), emb(EOT)] [1,2,W]
  Tensor vocab_head_;     // token embedding [V,W] f32 on the model's device
  Tensor category_targets_;  // i64 [C,Nc]
};

}  // namespace tgpt

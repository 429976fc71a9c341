/*
 * tgpt.cpp — TGP-T's Bonders, prompt assembly, heads and losses (models/tgpt/tgpt.h).
 */
#include "models/tgpt/tgpt.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "base/error.h"
#include "engine/autograd.h"
#include "engine/ops.h"

namespace tgpt {

namespace {

// The official CrossAttnBlock under nn::ResidualBlock's names (method.md §2.2).
nn::ResidualBlock::Names bonder_names() {
  nn::ResidualBlock::Names n;
  n.ln_1 = "norm1.";
  n.attn = "attn.";
  n.attn_parts.in_proj = "qkv.";
  n.attn_parts.out_proj = "proj.";
  n.ln_cross = "norm2_q.";
  n.ln_cross_kv = "norm2_kv.";
  n.cross_attn = "cross_attn.";
  n.cross_parts.q_proj = "q.";
  n.cross_parts.out_proj = "proj.";
  n.ln_2 = "norm_mlp.";
  n.mlp = "mlp.";
  n.mlp_parts.fc = "fc1.";
  n.mlp_parts.proj = "fc2.";
  return n;
}

nn::ResidualBlock::Config bonder_config(int64_t width, int heads) {
  nn::ResidualBlock::Config c;
  c.attn.width = width;
  c.attn.heads = heads;
  c.attn.causal = false;
  c.attn.in_proj_bias = false;  // qkv_bias=False
  c.attn.out_proj_bias = true;
  c.cross_attention = true;
  c.cross.memory_width = width;
  c.cross.heads = 1;  // nothing is split into heads
  c.cross.kv_projection = false;
  c.cross.q_bias = false;
  c.cross.out_bias = true;
  // The scale of num_heads = 8 although the product runs over the whole width.
  c.cross.scale = 1.0 / std::sqrt(static_cast<double>(width) / heads);
  c.mlp_hidden = width;  // timm Mlp(in, hidden=in): ratio 1
  c.activation = Activation::gelu;
  c.mlp_bias = true;
  c.eps = 1e-5;
  return c;
}

std::vector<int64_t> ids_of(const std::vector<int32_t>& v) {
  return std::vector<int64_t>(v.begin(), v.end());
}

Tensor i64_tensor(const std::vector<int64_t>& v, const Shape& shape) {
  return Tensor::from_data(v.data(), shape);
}

}  // namespace

TgptTokenIds tgpt_token_ids(const ClipTokenizer& tokenizer, const std::string& init_text) {
  TgptTokenIds ids;
  ids.sot = tokenizer.sot_id();
  ids.eot = tokenizer.eot_id();
  const std::vector<int32_t> period = tokenizer.encode(".");
  TGPT_CHECK(period.size() == 1, "TGP-T: the tokenizer encodes \".\" as ", period.size(),
             " tokens; the prompt needs it as one token");
  ids.period = period[0];
  if (!init_text.empty()) {
    // The official code: n_ctx = the number of space-separated words, and the queries take
    // tokens 1..n_ctx of the tokenized text (one token per word with OpenAI's vocabulary).
    size_t words = 0;
    bool in_word = false;
    for (char c : init_text) {
      const bool space = c == ' ';
      if (!space && !in_word) ++words;
      in_word = !space;
    }
    const std::vector<int64_t> tokens = ids_of(tokenizer.encode(init_text));
    ids.init_words.assign(tokens.begin(),
                          tokens.begin() + static_cast<std::ptrdiff_t>(std::min(words, tokens.size())));
  }
  return ids;
}

std::string tgpt_category_name(const std::string& classname) {
  std::string s = classname;
  for (char& c : s)
    if (c == '_' || c == '(' || c == ')') c = ' ';
  return s;
}

Tensor tgpt_category_sentence_tokens(const ClipTokenizer& tokenizer,
                                     const std::vector<std::string>& classnames,
                                     int context_length) {
  TGPT_CHECK(!classnames.empty(), "TGP-T: no class names for the category sentences");
  std::vector<std::string> texts;
  texts.reserve(classnames.size());
  for (const std::string& name : classnames)
    texts.push_back("a photo of a " + tgpt_category_name(name) + ".");
  return tokenizer.tokenize_tensor(texts, context_length);
}

Tensor tgpt_token_targets(const Tensor& tokens, int64_t n) {
  TGPT_CHECK(tokens.defined() && tokens.dim() == 2 && tokens.size(1) >= n + 1,
             "TGP-T: token rows must be [N, ctx] with ctx >= ", n + 1, ", got ",
             tokens.defined() ? tokens.shape().str() : std::string("undefined"));
  TGPT_CHECK(!dtype_is_float(tokens.dtype()), "TGP-T: token ids must be integers, got ",
             dtype_name(tokens.dtype()));
  const Tensor t = tokens.to(Device::CPU).to(DType::i64).contiguous();
  const int64_t N = t.size(0), ctx = t.size(1);
  const int64_t* src = t.data<int64_t>();
  std::vector<int64_t> out(static_cast<size_t>(N * n));
  for (int64_t r = 0; r < N; ++r)
    for (int64_t j = 0; j < n; ++j) {
      const int64_t id = src[r * ctx + 1 + j];
      out[static_cast<size_t>(r * n + j)] = id == 0 ? -100 : id;
    }
  return i64_tensor(out, {N, n});
}

Tensor tgpt_zeroshot_head(const Tensor& class_features) {
  TGPT_CHECK(class_features.defined() && class_features.dim() == 2,
             "TGP-T: class features must be [C, E], got ",
             class_features.defined() ? class_features.shape().str() : std::string("undefined"));
  NoGradGuard no_grad;
  const Tensor f = class_features.to(Device::CPU).to(DType::f64);
  return l2_normalize(concat({f, f}, 1)).to(DType::f32);  // [C,2E]
}

Tensor tgpt_select_head_rows(const Tensor& head, const std::vector<int64_t>& rows) {
  TGPT_CHECK(head.defined() && head.dim() == 2, "TGP-T: a head must be [C, F], got ",
             head.defined() ? head.shape().str() : std::string("undefined"));
  TGPT_CHECK(!rows.empty(), "TGP-T: no classes selected from the ", head.size(0), "-class head");
  const int64_t C = head.size(0);
  for (size_t r = 0; r < rows.size(); ++r)
    TGPT_CHECK(rows[r] >= 0 && rows[r] < C, "TGP-T: class index ", rows[r], " (entry ", r,
               ") is outside the ", C, "-class head [0, ", C, ")");
  NoGradGuard no_grad;
  // The ids stay on the host (embedding reads them there); the rows are copied on head's device.
  const Tensor ids = i64_tensor(rows, {static_cast<int64_t>(rows.size())});
  return embedding(ids, head);  // [R,F]
}

TgptModel::TgptModel(const ClipModel& clip, const TgptConfig& config, const TgptTokenIds& ids,
                     Generator& gen)
    : clip_(&clip),
      config_(config),
      ids_(ids),
      dtype_(clip.compute_dtype() == DType::f64 ? DType::f64 : DType::f32) {
  const ClipConfig& cc = clip.config();
  const int64_t E = cc.embed_dim, W = cc.transformer_width, ctx = cc.context_length;
  const int64_t C = config.num_classes, Nc = config.category_queries,
                Nn = config.content_queries;
  TGPT_CHECK(E == W, "TGP-T: the Bonder works at the text width (", W,
             ") on the projected image tokens (width ", E, "); this CLIP (", cc.name(),
             ") has embed_dim != transformer_width, which the official Bonder cannot take");
  TGPT_CHECK(config.bonder_heads > 0 && W % config.bonder_heads == 0, "TGP-T: text width ", W,
             " is not divisible by the Bonder's ", config.bonder_heads, " heads");
  TGPT_CHECK(C > 0, "TGP-T: num_classes must be positive, got ", C);
  TGPT_CHECK(Nc > 0 && Nn > 0, "TGP-T: query counts must be positive, got ", Nc, " and ", Nn);
  TGPT_CHECK(Nc + 3 <= ctx && Nn + 3 <= ctx, "TGP-T: ", Nc, " / ", Nn,
             " queries plus SOT, \".\" and EOT do not fit the context length ", ctx);
  TGPT_CHECK(static_cast<int64_t>(ids.init_words.size()) <= Nc, "TGP-T: the init text has ",
             ids.init_words.size(), " tokens, more than the ", Nc, " category queries");
  for (int64_t id : {ids.sot, ids.eot, ids.period})
    TGPT_CHECK(id >= 0 && id < cc.vocab_size, "TGP-T: token id ", id,
               " is outside the model's vocabulary of ", cc.vocab_size);

  const nn::ParamOptions trainable{DType::f32, true};
  query_category_ = params_.add("prompt_learner.query_category",
                                gen.randn({1, Nc, W}, DType::f32, config.query_init_std), true);
  query_content_ = params_.add("prompt_learner.query_content",
                               gen.randn({1, Nn, W}, DType::f32, config.query_init_std), true);
  const nn::ResidualBlock::Config bc = bonder_config(W, config.bonder_heads);
  const nn::ResidualBlock::Names names = bonder_names();
  for (const char* which : {"category", "content"}) {
    const std::string prefix = std::string("prompt_learner.bonder_") + which + ".";
    nn::ResidualBlock block(params_, prefix, bc, names, trainable);
    block.init(gen);
    // CrossAttention.norm_text / norm_img: constructed, trainable, never used.
    for (const char* unused : {"cross_attn.norm_text.", "cross_attn.norm_img."}) {
      params_.add(prefix + unused + "weight", Tensor::ones({W}), true);
      params_.add(prefix + unused + "bias", Tensor::zeros({W}), true);
    }
    (std::string(which) == "category" ? bonder_category_ : bonder_content_) = block;
  }
  cls_head_ = params_.add("cls_head.fc.weight", Tensor::zeros({C, 2 * E}), true);
  zs_weights_ = params_.add("zs_weights", Tensor::zeros({C, 2 * E}), false);

  // Frozen token embeddings (f32 on the CPU first).
  auto embed = [&](const std::vector<int64_t>& v) {
    NoGradGuard no_grad;
    return clip.embed_tokens(i64_tensor(v, {static_cast<int64_t>(v.size())}))
        .to(Device::CPU)
        .to(DType::f32);  // [n,W]
  };
  if (!ids.init_words.empty()) {
    NoGradGuard no_grad;
    const int64_t n = static_cast<int64_t>(ids.init_words.size());
    query_category_.narrow(1, 0, n).copy_(embed(ids.init_words).reshape({1, n, W}));
  }
  params_.to(clip.device(), dtype_);
  prompt_prefix_ = embed({ids.sot}).reshape({1, 1, W}).to(dtype_).to(clip.device());
  prompt_suffix_ = embed({ids.period, ids.eot}).reshape({1, 2, W}).to(dtype_).to(clip.device());
  {
    NoGradGuard no_grad;
    vocab_head_ = clip.weight("token_embedding.weight").to(dtype_).contiguous();  // [V,W]
  }
}

void TgptModel::set_zeroshot_weights(const Tensor& zs) {
  const int64_t C = config_.num_classes, F = 2 * clip_->config().embed_dim;
  TGPT_CHECK(zs.defined() && zs.dim() == 2 && zs.size(0) == C && zs.size(1) == F,
             "TGP-T: the zero-shot head must be [", C, ", ", F, "], got ",
             zs.defined() ? zs.shape().str() : std::string("undefined"));
  NoGradGuard no_grad;
  zs_weights_.copy_(zs);
}

void TgptModel::set_zeroshot_head(const Tensor& zs) {
  set_zeroshot_weights(zs);
  NoGradGuard no_grad;
  cls_head_.copy_(zs);
}

void TgptModel::set_category_sentences(const Tensor& tokens) {
  TGPT_CHECK(tokens.defined() && tokens.dim() == 2 && tokens.size(0) == config_.num_classes,
             "TGP-T: category sentences must be [", config_.num_classes, ", ctx], got ",
             tokens.defined() ? tokens.shape().str() : std::string("undefined"));
  category_targets_ = tgpt_token_targets(tokens, config_.category_queries);
}

TgptModel::ImageFeatures TgptModel::encode_images(const Tensor& images) const {
  NoGradGuard no_grad;
  ClipModel::ImageOutput out = clip_->encode_image_with_tokens(images);
  return {out.pooled, out.tokens};
}

Tensor TgptModel::encode_prompt(const Tensor& generated) const {
  const int64_t B = generated.size(0), N = generated.size(1), W = generated.size(2);
  Tensor x = concat({broadcast_to(prompt_prefix_, {B, 1, W}), generated,
                     broadcast_to(prompt_suffix_, {B, 2, W})},
                    1);  // [B,N+3,W]
  std::vector<int64_t> eot(static_cast<size_t>(B), N + 2);
  return clip_->encode_text_embeddings(x, i64_tensor(eot, {B}));  // [B,E]
}

TgptModel::Output TgptModel::forward(const ImageFeatures& image) const {
  const int64_t E = clip_->config().embed_dim;
  TGPT_CHECK(image.cls.defined() && image.tokens.defined() && image.cls.dim() == 2 &&
                 image.tokens.dim() == 3 && image.cls.size(0) == image.tokens.size(0) &&
                 image.cls.size(1) == E && image.tokens.size(2) == E,
             "TGP-T: image features must be cls [B, ", E, "] and tokens [B, T, ", E, "]");
  Output out;
  const Tensor tokens = image.tokens.to(clip_->device()).to(dtype_);
  out.out_cat = bonder_category_.forward(query_category_, tokens);  // [B,Nc,W]
  out.out_con = bonder_content_.forward(query_content_, tokens);    // [B,Nn,W]
  out.t_cat = encode_prompt(out.out_cat);                            // [B,E]
  out.t_con = encode_prompt(out.out_con);                            // [B,E]
  const Tensor cls = image.cls.to(clip_->device()).to(dtype_);
  out.features = concat({cls, mul(add(out.t_cat, out.t_con), 0.5)}, 1);  // [B,2E]
  return out;
}

Tensor TgptModel::logits(const Tensor& features) const {
  NoGradGuard no_grad;
  return mul(linear(l2_normalize(features.to(dtype_)), cls_head_), config_.logit_scale);
}

Tensor TgptModel::logits_wiseft(const Tensor& features) const {
  NoGradGuard no_grad;
  const double r = config_.wiseft_ratio;
  const Tensor w = add(mul(cls_head_, 1.0 - r), mul(zs_weights_, r));  // [C,2E]
  return mul(linear(l2_normalize(features.to(dtype_)), w), config_.logit_scale);
}

TgptModel::Losses TgptModel::losses(const Output& out, const std::vector<int64_t>& labels,
                                    const Tensor& caption_tokens) const {
  const int64_t B = out.features.size(0), C = config_.num_classes;
  const int64_t Nc = config_.category_queries, Nn = config_.content_queries;
  const int64_t W = clip_->config().transformer_width;
  TGPT_CHECK(static_cast<int64_t>(labels.size()) == B, "TGP-T: ", labels.size(),
             " labels for a batch of ", B);
  TGPT_CHECK(category_targets_.defined(),
             "TGP-T: set_category_sentences must be called before the losses");
  std::vector<int64_t> cat(static_cast<size_t>(B * Nc));
  const int64_t* table = category_targets_.data<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t y = labels[static_cast<size_t>(b)];
    TGPT_CHECK(y >= 0 && y < C, "TGP-T: label ", y, " of batch item ", b, " is outside [0, ", C,
               ")");
    std::copy(table + y * Nc, table + (y + 1) * Nc, cat.begin() + b * Nc);
  }
  const Device dev = clip_->device();
  Losses l;
  l.cls = cosine_logit_loss(out.features, cls_head_, i64_tensor(labels, {B}).to(dev),
                            config_.logit_scale);
  l.category = vocab_cross_entropy(out.out_cat.reshape({B * Nc, W}), vocab_head_,
                                   i64_tensor(cat, {B * Nc}).to(dev), config_.label_smoothing,
                                   -100);
  l.total = add(l.cls, l.category);
  if (caption_tokens.defined()) {
    TGPT_CHECK(caption_tokens.dim() == 2 && caption_tokens.size(0) == B,
               "TGP-T: caption tokens must be [", B, ", ctx], got ", caption_tokens.shape().str());
    const Tensor con = tgpt_token_targets(caption_tokens, Nn).reshape({B * Nn});
    l.content = vocab_cross_entropy(out.out_con.reshape({B * Nn, W}), vocab_head_, con.to(dev),
                                    config_.label_smoothing, -100);
    l.total = add(l.total, l.content);
  }
  return l;
}

}  // namespace tgpt

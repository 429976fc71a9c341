/*
 * coop.cpp — CoOp's prompt learner and classifier on a frozen ClipModel (see coop.h).
 *
 * Construction tokenizes "<prefix> {name}." per class (CoOp's PromptLearner), looks the token
 * embeddings up once (no tape) and keeps position 0 (token_prefix) and positions 1+n_ctx..76
 * (token_suffix) as frozen buffers; the forward concatenates [prefix, ctx, suffix] per class and
 * runs ClipModel::encode_text_embeddings, pooled at each prompt's EOT. Every check that can fail
 * on user input (class names, n_ctx, init text, prompt tokens, image features, labels) throws a
 * tgpt::Error naming the problem before any work is done.
 */
#include "models/coop/coop.h"

#include <algorithm>
#include <sstream>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"

namespace tgpt {

namespace {

std::vector<int64_t> int_values(const Tensor& t) {
  Tensor c = (t.device() == Device::CPU ? t : t.to(Device::CPU)).to(DType::i64).contiguous();
  return std::vector<int64_t>(c.data<int64_t>(), c.data<int64_t>() + c.numel());
}

std::vector<std::string> split_words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

std::string underscores_to_spaces(std::string s) {
  std::replace(s.begin(), s.end(), '_', ' ');
  return s;
}

void check_n_ctx(int64_t n_ctx, int64_t context_length, const char* source) {
  // SOT, the context, at least one class-name token and EOT must fit.
  TGPT_CHECK(n_ctx >= 1 && n_ctx <= context_length - 3, source, ": n_ctx = ", n_ctx,
             " must be in [1, ", context_length - 3, "] for context length ", context_length);
}

}  // namespace

// ---- construction ---------------------------------------------------------------------------

CoopModel::CoopModel(const ClipModel& clip, const ClipTokenizer& tokenizer,
                     const std::vector<std::string>& class_names, const CoopOptions& options)
    : clip_(clip) {
  const char* source = "CoopModel";
  const int64_t ctx_len = clip.config().context_length;
  TGPT_CHECK(!class_names.empty(), source, ": no class names");
  TGPT_CHECK(tokenizer.vocab_size() <= clip.config().vocab_size, source, ": the tokenizer's ",
             tokenizer.vocab_size(), " ids do not fit the model's vocabulary of ",
             clip.config().vocab_size);

  // The prompt prefix: n_ctx X's (generic) or the init text, one BPE token per word.
  std::string prefix;
  int64_t n_ctx = options.n_ctx;
  std::vector<int32_t> init_ids;
  if (!options.init_text.empty()) {
    const std::string init = underscores_to_spaces(options.init_text);
    const std::vector<std::string> words = split_words(init);
    TGPT_CHECK(!words.empty(), source, ": init text \"", options.init_text, "\" has no words");
    init_ids = tokenizer.encode(init);
    TGPT_CHECK(init_ids.size() == words.size(), source, ": init text \"", options.init_text,
               "\" has ", words.size(), " words but ", init_ids.size(),
               " BPE tokens; CoOp needs one token per word (n_ctx = word count)");
    n_ctx = static_cast<int64_t>(words.size());
    for (size_t i = 0; i < words.size(); ++i) prefix += (i ? " " : "") + words[i];
  } else {
    check_n_ctx(n_ctx, ctx_len, source);
    for (int64_t i = 0; i < n_ctx; ++i) prefix += i ? " X" : "X";
  }
  check_n_ctx(n_ctx, ctx_len, source);

  // "<prefix> {name}." per class; every prompt must fit the context with SOT and EOT.
  std::vector<std::string> texts;
  for (size_t c = 0; c < class_names.size(); ++c) {
    const std::string name = underscores_to_spaces(class_names[c]);
    TGPT_CHECK(!split_words(name).empty(), source, ": class ", c, " has an empty name");
    std::string text = prefix + " " + name + ".";
    const size_t n_ids = tokenizer.encode(text).size();
    TGPT_CHECK(static_cast<int64_t>(n_ids) + 2 <= ctx_len, source, ": class ", c, " \"",
               class_names[c], "\" is too long: its prompt \"", text, "\" is ", n_ids + 2,
               " tokens with SOT and EOT (", n_ctx, " context + ",
               static_cast<int64_t>(n_ids) - n_ctx, " for the name and '.'), more than the ",
               "context length ", ctx_len);
    texts.push_back(std::move(text));
  }
  Tensor tokens = tokenizer.tokenize_tensor(texts, static_cast<int>(ctx_len));  // [C,77] i32
  // The context slots hold the prefix's tokens (an X or init word never merges with the name).
  const std::vector<int64_t> ids = int_values(tokens);
  const std::vector<int32_t> x_ids = init_ids.empty() ? tokenizer.encode("X") : init_ids;
  for (size_t c = 0; c < texts.size(); ++c)
    for (int64_t i = 0; i < n_ctx; ++i) {
      const int64_t want = x_ids[init_ids.empty() ? 0 : static_cast<size_t>(i)];
      TGPT_CHECK(ids[c * ctx_len + 1 + i] == want, source, ": prompt \"", texts[c],
                 "\" does not have its context tokens at positions 1..", n_ctx);
    }

  *this = CoopModel(clip, tokens, n_ctx, source);
  if (!init_ids.empty()) {
    // ctx = the init words' token embeddings (positions 1..n_ctx of the first prompt).
    NoGradGuard no_grad;
    Tensor init = clip_.embed_tokens(tokens.select(0, 0).narrow(0, 1, n_ctx));  // [n_ctx,W]
    ctx_.copy_(init.to(DType::f32));
  } else {
    Generator g(options.seed);
    ctx_.copy_(g.randn(ctx_.shape(), DType::f32, options.init_std));
  }
}

CoopModel CoopModel::from_prompt_tokens(const ClipModel& clip, const Tensor& prompt_tokens,
                                        const CoopOptions& options) {
  const char* source = "CoopModel::from_prompt_tokens";
  TGPT_CHECK(options.init_text.empty(), source,
             ": init_text needs the tokenizer (use the constructor with class names)");
  CoopModel m(clip, prompt_tokens, options.n_ctx, source);
  Generator g(options.seed);
  m.ctx_.copy_(g.randn(m.ctx_.shape(), DType::f32, options.init_std));
  return m;
}

// Validates the prompt tokens and builds the buffers; ctx is left zero.
CoopModel::CoopModel(const ClipModel& clip, const Tensor& tokens, int64_t n_ctx,
                     const std::string& source)
    : clip_(clip), n_ctx_(n_ctx) {
  const ClipConfig& cfg = clip.config();
  const int64_t ctx_len = cfg.context_length, W = cfg.transformer_width;
  TGPT_CHECK(tokens.defined(), source, ": prompt tokens are undefined");
  TGPT_CHECK(tokens.dtype() == DType::i32 || tokens.dtype() == DType::i64, source,
             ": prompt tokens must be i32 or i64, got ", dtype_name(tokens.dtype()));
  TGPT_CHECK(tokens.dim() == 2 && tokens.size(1) == ctx_len && tokens.size(0) >= 1, source,
             ": prompt tokens must be [C, ", ctx_len, "] with C >= 1, got ", tokens.shape().str());
  check_n_ctx(n_ctx, ctx_len, source.c_str());
  num_classes_ = tokens.size(0);
  const int64_t C = num_classes_;

  const std::vector<int64_t> ids = int_values(tokens);
  std::vector<int64_t> eot(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const int64_t* row = ids.data() + c * ctx_len;
    for (int64_t t = 0; t < ctx_len; ++t)
      TGPT_CHECK(row[t] >= 0 && row[t] < cfg.vocab_size, source, ": prompt ", c, " token ", t,
                 " = ", row[t], " is outside the vocabulary [0, ", cfg.vocab_size, ")");
    const int64_t e = std::max_element(row, row + ctx_len) - row;  // the first argmax (EOT)
    TGPT_CHECK(e > n_ctx, source, ": prompt ", c, " has its EOT (largest id) at position ", e,
               ", which leaves no room after SOT for ", n_ctx, " context tokens");
    eot[static_cast<size_t>(c)] = e;
  }
  prompt_tokens_ = tokens.to(DType::i32).to(Device::CPU).contiguous();
  if (prompt_tokens_.is_same(tokens)) prompt_tokens_ = tokens.clone();
  eot_ = Tensor::from_data(eot.data(), {C});

  Tensor emb;  // [C,77,W] compute dtype, model's device
  {
    NoGradGuard no_grad;
    emb = clip_.embed_tokens(prompt_tokens_);
  }
  const Device dev = clip.device();
  ctx_ = params_.add("prompt_learner.ctx", Tensor::zeros({n_ctx, W}, DType::f32, dev), true);
  prefix_ = params_.add("prompt_learner.token_prefix", emb.narrow(1, 0, 1).contiguous(), false);
  suffix_ = params_.add("prompt_learner.token_suffix",
                        emb.narrow(1, 1 + n_ctx, ctx_len - 1 - n_ctx).contiguous(), false);
}

// ---- forward ----------------------------------------------------------------------------------

Tensor CoopModel::prompts(int64_t first, int64_t count) const {
  TGPT_CHECK(first >= 0 && count >= 1 && first + count <= num_classes_,
             "CoopModel::prompts: classes [", first, ", ", first + count, ") outside [0, ",
             num_classes_, ")");
  const int64_t W = ctx_.size(1);
  Tensor ctx = ctx_.dtype() == prefix_.dtype() ? ctx_ : ctx_.to(prefix_.dtype());  // [n_ctx,W]
  Tensor ctx_b = broadcast_to(ctx.reshape({1, n_ctx_, W}), {count, n_ctx_, W});
  Tensor prefix = first == 0 && count == num_classes_ ? prefix_ : prefix_.narrow(0, first, count);
  Tensor suffix = first == 0 && count == num_classes_ ? suffix_ : suffix_.narrow(0, first, count);
  return concat({prefix, ctx_b, suffix}, 1);  // [count,77,W]
}

Tensor CoopModel::text_features() const {
  return clip_.encode_text_embeddings(prompts(0, num_classes_), eot_);  // [C,E]
}

Tensor CoopModel::class_text_features(int64_t chunk) const {
  TGPT_CHECK(chunk >= 0, "CoopModel::class_text_features: chunk = ", chunk, " is negative");
  NoGradGuard no_grad;
  if (chunk == 0 || chunk >= num_classes_) return text_features();
  std::vector<Tensor> parts;
  for (int64_t first = 0; first < num_classes_; first += chunk) {
    const int64_t count = std::min(chunk, num_classes_ - first);
    parts.push_back(
        clip_.encode_text_embeddings(prompts(first, count), eot_.narrow(0, first, count)));
  }
  return concat(parts, 0);  // [C,E]
}

Tensor CoopModel::image_input(const Tensor& image_features, const char* what) const {
  const int64_t E = clip_.config().embed_dim;
  TGPT_CHECK(image_features.defined(), what, ": image features are undefined");
  TGPT_CHECK(dtype_is_float(image_features.dtype()), what, ": image features must be float, got ",
             dtype_name(image_features.dtype()));
  TGPT_CHECK(image_features.dim() == 2 && image_features.size(1) == E, what,
             ": image features must be [B, ", E, "], got ", image_features.shape().str());
  Tensor x = image_features;
  if (x.device() != clip_.device()) x = x.to(clip_.device());
  return x.dtype() == DType::f32 ? x : x.to(DType::f32);
}

Tensor CoopModel::logits(const Tensor& image_features) const {
  Tensor img = image_input(image_features, "CoopModel::logits");  // checked before the encoder runs
  return logits(img, text_features());
}

Tensor CoopModel::logits(const Tensor& image_features, const Tensor& text_features) const {
  const char* what = "CoopModel::logits";
  Tensor img = image_input(image_features, what);  // [B,E] f32
  const int64_t E = clip_.config().embed_dim;
  TGPT_CHECK(text_features.defined() && dtype_is_float(text_features.dtype()) &&
                 text_features.dim() == 2 && text_features.size(1) == E,
             what, ": text features must be float [C, ", E, "], got ",
             text_features.defined() ? text_features.str() : "undefined");
  TGPT_CHECK(text_features.size(0) == num_classes_, what, ": text features have ",
             text_features.size(0), " classes, the model has ", num_classes_);
  Tensor txt = text_features;
  if (txt.device() != clip_.device()) txt = txt.to(clip_.device());
  if (txt.dtype() != DType::f32) txt = txt.to(DType::f32);
  // exp(logit_scale) · normalize(img) · normalize(txt)ᵀ
  return mul(linear(l2_normalize(img), l2_normalize(txt)), clip_.logit_scale());  // [B,C]
}

Tensor CoopModel::loss(const Tensor& image_features, const Tensor& labels) const {
  const char* what = "CoopModel::loss";
  Tensor img = image_input(image_features, what);
  const int64_t B = img.size(0);
  TGPT_CHECK(B >= 1, what, ": no images");
  TGPT_CHECK(labels.defined() && (labels.dtype() == DType::i32 || labels.dtype() == DType::i64),
             what, ": labels must be i32 or i64",
             labels.defined() ? str_cat(", got ", dtype_name(labels.dtype())) : "");
  TGPT_CHECK(labels.dim() == 1 && labels.size(0) == B, what, ": labels must be [", B,
             "] (one per image), got ", labels.shape().str());
  const std::vector<int64_t> y = int_values(labels);
  for (int64_t b = 0; b < B; ++b)
    TGPT_CHECK(y[b] >= 0 && y[b] < num_classes_, what, ": label ", y[b], " of image ", b,
               " is outside [0, ", num_classes_, ")");
  return cross_entropy(logits(img), labels);  // []
}

int64_t CoopModel::text_encoder_tokens() const {
  const std::vector<int64_t> e = int_values(eot_);
  return num_classes_ * (*std::max_element(e.begin(), e.end()) + 1);
}

}  // namespace tgpt

/*
 * zeroshot.cpp — batched CLIP feature extraction, zero-shot classifier construction (mean of
 * unnormalised prompt features per class, then L2 normalisation), logits and accuracy counting.
 */
#include "models/clip/zeroshot.h"

#include <cmath>
#include <cstring>

#include "engine/autograd.h"
#include "base/error.h"
#include "engine/ops.h"
#include "base/parallel.h"
#include "engine/safetensors.h"

namespace tgpt {

namespace {

// CLIP's vocabulary is bytes, bytes+</w>, merges, SOT, EOT: a tokenizer of another size gives
// SOT/EOT (and merged tokens) ids the model does not have.
ClipTokenizer checked_tokenizer(ClipTokenizer tok, int64_t model_vocab, const std::string& source,
                                const std::string& weights_name) {
  TGPT_CHECK(tok.vocab_size() == model_vocab, "tokenizer from ", source, " has ", tok.vocab_size(),
             " tokens (", tok.num_merges(), " merges) but the model in ", weights_name,
             " has vocab_size ", model_vocab, "; these merges do not belong to this model");
  return tok;
}

ClipTokenizer embedded_tokenizer(const std::string& merges, int64_t model_vocab,
                                 const std::string& weights_name) {
  TGPT_CHECK(!merges.empty(), weights_name,
             " has no embedded BPE merges (tgpt.bpe_merges); give the merges with --vocab "
             "(bpe_simple_vocab_16e6.txt.gz or merges.txt)");
  // The weight file stores the merges without the '#version' header line the parser expects.
  const std::string text =
      merges.compare(0, 8, "#version") == 0 ? merges : "#version: 0.2\n" + merges;
  const std::string source = "the merges embedded in " + weights_name;
  return checked_tokenizer(ClipTokenizer(text, source), model_vocab, source, weights_name);
}

}  // namespace

ClipTokenizer clip_tokenizer_for(const ClipModel& model, const std::string& merges_path,
                                 const std::string& weights_name) {
  const int64_t model_vocab = model.config().vocab_size;
  if (!merges_path.empty())
    return checked_tokenizer(ClipTokenizer::from_file(merges_path), model_vocab,
                             "'" + merges_path + "'", weights_name);
  return embedded_tokenizer(model.bpe_merges(), model_vocab, weights_name);
}

ClipTokenizer clip_tokenizer_from_weights(const std::string& weights_path) {
  SafetensorsFile f = SafetensorsFile::open(weights_path);
  auto cfg = f.metadata().find("tgpt.config");
  TGPT_CHECK(cfg != f.metadata().end(), weights_path,
             ": not a tgpt CLIP weight file (no tgpt.config metadata; convert it with "
             "tgpt-convert)");
  const ClipConfig config = ClipConfig::from_json(cfg->second);
  auto merges = f.metadata().find("tgpt.bpe_merges");
  return embedded_tokenizer(merges == f.metadata().end() ? std::string() : merges->second,
                            config.vocab_size, weights_path);
}

Tensor tokenize_for_model(const ClipModel& model, const ClipTokenizer& tokenizer,
                          const std::vector<std::string>& texts, bool truncate) {
  const int64_t ctx = model.config().context_length;
  TGPT_CHECK(ctx > 0 && ctx <= 4096, "tokenize: model context length ", ctx, " is not usable");
  if (!truncate) {
    // Check each text so the error names the one that is too long.
    for (const auto& t : texts) {
      const size_t n = tokenizer.encode(t).size() + 2;
      TGPT_CHECK(n <= static_cast<size_t>(ctx), "text \"", t.substr(0, 200), "\" is ", n,
                 " tokens long with start/end tokens; the model's context length is ", ctx);
    }
  }
  return tokenizer.tokenize_tensor(texts, static_cast<int>(ctx), truncate);
}

namespace {

// Runs `encode` on row blocks of `input` [N,...] and gathers its [b,E] outputs into f32 [N,E].
template <typename Encode>
Tensor encode_in_batches(const Tensor& input, int64_t batch_size, int64_t embed_dim,
                         const char* what, Encode encode) {
  TGPT_CHECK(batch_size > 0, what, ": batch size must be positive, got ", batch_size);
  TGPT_CHECK(input.defined() && input.dim() >= 1, what, ": input must be at least 1-D");
  const int64_t n = input.size(0);
  Tensor out = Tensor::empty({n, embed_dim}, DType::f32);
  NoGradGuard no_grad;
  for (int64_t b = 0; b < n; b += batch_size) {
    const int64_t len = std::min(batch_size, n - b);
    Tensor f = encode(input.narrow(0, b, len).contiguous());
    f = f.to(Device::CPU).to(DType::f32).contiguous();
    TGPT_CHECK(f.dim() == 2 && f.size(0) == len && f.size(1) == embed_dim, what,
               ": encoder returned ", f.shape().str(), ", expected [", len, ", ", embed_dim, "]");
    std::memcpy(out.data<float>() + b * embed_dim, f.data<float>(),
                static_cast<size_t>(len * embed_dim) * sizeof(float));
  }
  return out;
}

}  // namespace

Tensor encode_images_batched(const ClipModel& model, const Tensor& images, int64_t batch_size) {
  return encode_in_batches(images, batch_size, model.config().embed_dim, "encode_images_batched",
                           [&](const Tensor& x) { return model.encode_image(x); });
}

Tensor encode_text_batched(const ClipModel& model, const Tensor& tokens, int64_t batch_size) {
  return encode_in_batches(tokens, batch_size, model.config().embed_dim, "encode_text_batched",
                           [&](const Tensor& x) { return model.encode_text(x); });
}

Tensor l2_normalize_rows(const Tensor& x) {
  TGPT_CHECK(x.defined() && x.dim() == 2, "l2_normalize_rows: expected a [N,D] tensor");
  NoGradGuard no_grad;
  return l2_normalize(x.to(Device::CPU).to(DType::f32).contiguous()).contiguous();
}

ZeroShotClassifier build_zeroshot_classifier(
    const ClipModel& model, const ClipTokenizer& tokenizer,
    const std::vector<std::vector<std::string>>& class_prompts, int64_t batch_size) {
  const int64_t k = static_cast<int64_t>(class_prompts.size());
  const int64_t e = model.config().embed_dim;
  TGPT_CHECK(k > 0, "zero-shot classifier: no classes");
  std::vector<std::string> all;
  for (int64_t c = 0; c < k; ++c) {
    TGPT_CHECK(!class_prompts[c].empty(), "zero-shot classifier: class ", c, " has no prompts");
    all.insert(all.end(), class_prompts[c].begin(), class_prompts[c].end());
  }
  const Tensor tokens = tokenize_for_model(model, tokenizer, all);
  const Tensor feats = encode_text_batched(model, tokens, batch_size);  // [sum_c T_c, E]
  ZeroShotClassifier zs;
  zs.class_features = Tensor::empty({k, e}, DType::f32);
  const float* f = feats.data<float>();
  float* mean = zs.class_features.data<float>();
  int64_t row = 0;
  std::vector<double> acc(static_cast<size_t>(e));
  for (int64_t c = 0; c < k; ++c) {
    const int64_t t = static_cast<int64_t>(class_prompts[c].size());
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t j = 0; j < t; ++j, ++row)
      for (int64_t d = 0; d < e; ++d) acc[d] += f[row * e + d];
    for (int64_t d = 0; d < e; ++d) mean[c * e + d] = static_cast<float>(acc[d] / t);
  }
  zs.weights = l2_normalize_rows(zs.class_features);
  return zs;
}

Tensor zeroshot_logits(const Tensor& image_features, const Tensor& weights, double scale) {
  TGPT_CHECK(image_features.defined() && image_features.dim() == 2,
             "zeroshot_logits: image features must be [B,E]");
  TGPT_CHECK(weights.defined() && weights.dim() == 2 && weights.size(1) == image_features.size(1),
             "zeroshot_logits: weights must be [K,", image_features.size(1), "], got ",
             weights.defined() ? weights.shape().str() : std::string("undefined"));
  NoGradGuard no_grad;
  const Tensor x = l2_normalize_rows(image_features);
  const Tensor w = weights.to(Device::CPU).to(DType::f32);
  return mul(matmul(x, w.transpose(0, 1)), scale).contiguous();
}

AccuracyMeter::AccuracyMeter(int64_t num_classes)
    : num_classes_(num_classes),
      class_count_(static_cast<size_t>(num_classes > 0 ? num_classes : 0)),
      class_correct_(static_cast<size_t>(num_classes > 0 ? num_classes : 0)) {
  TGPT_CHECK(num_classes > 0, "AccuracyMeter: number of classes must be positive");
}

void AccuracyMeter::add(const Tensor& logits, const std::vector<int64_t>& labels) {
  TGPT_CHECK(logits.defined() && logits.dim() == 2 && logits.size(1) == num_classes_,
             "AccuracyMeter: logits must be [B,", num_classes_, "]");
  const int64_t b = logits.size(0);
  TGPT_CHECK(static_cast<int64_t>(labels.size()) == b, "AccuracyMeter: ", labels.size(),
             " labels for ", b, " rows of logits");
  const Tensor l = logits.to(Device::CPU).to(DType::f32).contiguous();
  const float* p = l.data<float>();
  const int64_t k = num_classes_;
  const int64_t top = std::min<int64_t>(5, k);
  for (int64_t i = 0; i < b; ++i) {
    const int64_t y = labels[i];
    TGPT_CHECK(y >= 0 && y < k, "AccuracyMeter: label ", y, " out of range [0, ", k, ")");
    const float* row = p + i * k;
    TGPT_CHECK(!std::isnan(row[y]), "AccuracyMeter: NaN logit in row ", i);
    int64_t rank = 0, best = 0;
    for (int64_t j = 0; j < k; ++j) {
      if (row[j] > row[y] || (row[j] == row[y] && j < y)) ++rank;
      if (row[j] > row[best]) best = j;
    }
    ++count_;
    ++class_count_[y];
    if (rank == 0) ++correct_top1_, ++class_correct_[y];
    if (rank < top) ++correct_top5_;
    predictions_.push_back(best);
  }
}

double AccuracyMeter::top1() const {
  return count_ ? 100.0 * static_cast<double>(correct_top1_) / static_cast<double>(count_) : 0.0;
}

double AccuracyMeter::top5() const {
  return count_ ? 100.0 * static_cast<double>(correct_top5_) / static_cast<double>(count_) : 0.0;
}

}  // namespace tgpt

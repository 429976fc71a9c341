/*
 * zeroshot.cpp — the tokenizer for a model, zero-shot classifier construction (mean of
 * unnormalised prompt features per class, then L2 normalisation) and logits.
 */
#include "models/clip/zeroshot.h"

#include <algorithm>
#include <cmath>

#include "engine/autograd.h"
#include "base/error.h"
#include "engine/ops.h"
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

Tensor l2_normalize_rows(const Tensor& x) {
  TGPT_CHECK(x.defined() && x.dim() == 2, "l2_normalize_rows: expected a [N,D] tensor");
  NoGradGuard no_grad;
  return l2_normalize(x.to(Device::CPU).to(DType::f32).contiguous()).contiguous();
}

ZeroShotClassifier build_zeroshot_classifier(const Tensor& prompt_features,
                                             const std::vector<int64_t>& prompts_per_class) {
  const int64_t k = static_cast<int64_t>(prompts_per_class.size());
  TGPT_CHECK(k > 0, "zero-shot classifier: no classes");
  int64_t rows = 0;
  for (int64_t c = 0; c < k; ++c) {
    TGPT_CHECK(prompts_per_class[c] > 0, "zero-shot classifier: class ", c, " has no prompts");
    rows += prompts_per_class[c];
  }
  TGPT_CHECK(prompt_features.defined() && prompt_features.dim() == 2 &&
                 prompt_features.size(0) == rows && dtype_is_float(prompt_features.dtype()),
             "zero-shot classifier: prompt features must be float [", rows, ", E] for ", k,
             " classes, got ",
             prompt_features.defined() ? prompt_features.str() : std::string("undefined"));
  NoGradGuard no_grad;
  const Tensor feats = prompt_features.to(Device::CPU).to(DType::f32).contiguous();
  const int64_t e = feats.size(1);
  ZeroShotClassifier zs;
  zs.class_features = Tensor::empty({k, e}, DType::f32);
  const float* f = feats.data<float>();
  float* mean = zs.class_features.data<float>();
  int64_t row = 0;
  std::vector<double> acc(static_cast<size_t>(e));
  for (int64_t c = 0; c < k; ++c) {
    const int64_t t = prompts_per_class[c];
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

}  // namespace tgpt

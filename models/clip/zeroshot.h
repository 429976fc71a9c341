/*
 * zeroshot.h — CLIP zero-shot classification on a ClipModel: the tokenizer for a model, the
 * classifier from prompt features, logits.
 *
 * Zero-shot classifier (TGP-T's head initialisation, ../shared/spec/method.md §1.2 point 7):
 *   for class c with prompts p_c1..p_cT (its name filled into each template):
 *     t̄_c = mean_j encode_text(tokenize(p_cj))        (unnormalised features, mean in f64)
 *     w_c = t̄_c / max(||t̄_c||, 1e-12)
 *   logits = 100 · normalize(image_features) · Wᵀ      (100 = exp(ln 100), CLIP's scale)
 * This is CoOp/TGP-T's template ensembling (average of UNnormalised features), which differs
 * from OpenAI's notebook (normalise each prompt feature before averaging).
 *
 * Models know nothing of datasets or files of images: callers pass prompt features and image
 * features. Batched encoding of prompts and images, the classifier built from prompts and the
 * accuracy metrics live in train/evaluator.h. Everything runs without autograd and returns f32.
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "models/clip/clip.h"
#include "models/tokenizer.h"

namespace tgpt {

// The tokenizer for `model`: from merges_path when non-empty (bpe_simple_vocab_16e6.txt.gz or a
// Hugging Face merges.txt), else from the merges embedded in the weight file (tgpt.bpe_merges;
// `weights_name` names it in errors). Throws when neither is available or when the tokenizer's
// vocabulary is larger than the model's (its ids would not fit the embedding table).
ClipTokenizer clip_tokenizer_for(const ClipModel& model, const std::string& merges_path,
                                 const std::string& weights_name = "weight file");
// The same from a weight file's metadata alone (tgpt.bpe_merges and tgpt.config's vocab_size),
// without loading the tensors.
ClipTokenizer clip_tokenizer_from_weights(const std::string& weights_path);

// clip.tokenize at the model's context length -> i32 [M, ctx]. A text that is too long throws
// (naming the text) unless truncate.
Tensor tokenize_for_model(const ClipModel& model, const ClipTokenizer& tokenizer,
                          const std::vector<std::string>& texts, bool truncate = false);

// Row-wise x / max(||x||_2, 1e-12) of a [N,D] tensor -> f32 [N,D].
Tensor l2_normalize_rows(const Tensor& x);

// Class weights from the text features of per-class prompts.
struct ZeroShotClassifier {
  Tensor class_features;  // [K,E] f32: mean over the class's prompts of unnormalised features
  Tensor weights;         // [K,E] f32: class_features with rows L2-normalised
};
// prompt_features [sum_c T_c, E] (float, any device): the unnormalised text features of the
// prompts of class 0 (T_0 rows), then class 1, ...; prompts_per_class[c] = T_c > 0.
ZeroShotClassifier build_zeroshot_classifier(const Tensor& prompt_features,
                                             const std::vector<int64_t>& prompts_per_class);

// image_features [B,E], weights [K,E] (rows normalised) -> logits [B,K] f32
// = scale · normalize(image_features) · weightsᵀ.
Tensor zeroshot_logits(const Tensor& image_features, const Tensor& weights, double scale = 100.0);

}  // namespace tgpt

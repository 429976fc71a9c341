/*
 * zeroshot.h — CLIP zero-shot classification and batched feature extraction on a ClipModel.
 *
 * Zero-shot classifier (TGP-T's head initialisation, ../shared/spec/method.md §1.2 point 7):
 *   for class c with prompts p_c1..p_cT (its name filled into each template):
 *     t̄_c = mean_j encode_text(tokenize(p_cj))        (unnormalised features, mean in f64)
 *     w_c = t̄_c / max(||t̄_c||, 1e-12)
 *   logits = 100 · normalize(image_features) · Wᵀ      (100 = exp(ln 100), CLIP's scale)
 * This is CoOp/TGP-T's template ensembling (average of UNnormalised features), which differs
 * from OpenAI's notebook (normalise each prompt feature before averaging).
 *
 * Models know nothing of datasets or files of images: callers pass class prompts and image
 * tensors (preprocessed [B,3,R,R] f32). Everything runs without autograd and returns f32.
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

// images [N,3,R,R] -> image features [N,E] f32, batch_size images per encode_image call.
Tensor encode_images_batched(const ClipModel& model, const Tensor& images, int64_t batch_size);
// tokens [M,ctx] -> text features [M,E] f32, batch_size rows per encode_text call.
Tensor encode_text_batched(const ClipModel& model, const Tensor& tokens, int64_t batch_size);

// Row-wise x / max(||x||_2, 1e-12) of a [N,D] tensor -> f32 [N,D].
Tensor l2_normalize_rows(const Tensor& x);

// Class weights from per-class prompts: class_prompts[c] = prompts of class c (non-empty).
struct ZeroShotClassifier {
  Tensor class_features;  // [K,E] f32: mean over the class's prompts of unnormalised features
  Tensor weights;         // [K,E] f32: class_features with rows L2-normalised
};
ZeroShotClassifier build_zeroshot_classifier(
    const ClipModel& model, const ClipTokenizer& tokenizer,
    const std::vector<std::vector<std::string>>& class_prompts, int64_t batch_size);

// image_features [B,E], weights [K,E] (rows normalised) -> logits [B,K] f32
// = scale · normalize(image_features) · weightsᵀ.
Tensor zeroshot_logits(const Tensor& image_features, const Tensor& weights, double scale = 100.0);

// Top-1/top-5 and per-class accuracy over batches of logits. Ties: class j outranks the true
// class y when logit[j] > logit[y], or when they are equal and j < y (a fixed, documented order).
class AccuracyMeter {
 public:
  explicit AccuracyMeter(int64_t num_classes);
  // logits [B,K] (float, any device), labels: B values in [0, K).
  void add(const Tensor& logits, const std::vector<int64_t>& labels);

  int64_t num_classes() const { return num_classes_; }
  int64_t count() const { return count_; }
  int64_t correct_top1() const { return correct_top1_; }
  int64_t correct_top5() const { return correct_top5_; }  // counts top-min(5, K)
  double top1() const;                                    // percent; 0 when count() == 0
  double top5() const;
  const std::vector<int64_t>& class_count() const { return class_count_; }
  const std::vector<int64_t>& class_correct() const { return class_correct_; }  // top-1
  const std::vector<int64_t>& predictions() const { return predictions_; }      // top-1 per image

 private:
  int64_t num_classes_ = 0, count_ = 0, correct_top1_ = 0, correct_top5_ = 0;
  std::vector<int64_t> class_count_, class_correct_, predictions_;
};

}  // namespace tgpt

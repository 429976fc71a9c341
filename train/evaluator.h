/*
 * evaluator.h — the one batching loop for CLIP features, and classification metrics.
 *
 * Batching (encode_batched): rows [0, N) of an input source are cut into blocks of batch_size;
 * each block is loaded ([b, ...], e.g. images [b,3,R,R] f32 from files or a tensor), encoded
 * without autograd to features [b,E] (any device, any float dtype), and written once into the
 * f32 CPU result [N,E] (rows [begin, begin + b)). An optional per-batch callback sees the block's
 * inputs and its rows of the result (a view, not a copy), so callers compute logits, save the
 * preprocessed inputs or report progress without a second pass or a second copy of the features.
 *
 * Metrics (AccuracyMeter): top-1/top-5 counts, per-class counts and top-1 hits, the top-1
 * prediction of every row, and the confusion matrix C [K,K] (C[y][p] = rows of true class y
 * predicted p). Ranking ties: class j outranks the true class y when logit[j] > logit[y], or when
 * they are equal and j < y (a fixed, documented order); the prediction is the first maximum.
 *   top1 = 100·correct_top1/N, top5 = 100·correct_top5/N (top-min(5, K)),
 *   mean per-class accuracy = mean over classes with images of 100·correct_c/count_c,
 *   macro F1 = mean over classes with images of 100·2·TP/(2·TP + FP + FN) (sklearn's
 *   f1_score(average="macro") over the labels present, as Dassl prints it).
 * write_metrics writes DIR/metrics.json, DIR/per_class.csv and DIR/confusion.csv, each atomically
 * (temporary file, fsync, rename).
 */
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "models/clip/clip.h"
#include "models/clip/zeroshot.h"
#include "models/tokenizer.h"

namespace tgpt {

// ---------------------------------------------------------------------------------------------
// Batching

// Rows [begin, begin + count) of the input as one tensor [count, ...].
using BatchLoader = std::function<Tensor(int64_t begin, int64_t count)>;
// One block of inputs -> its features [count, E] (any device, any float dtype).
using BatchEncoder = std::function<Tensor(const Tensor& inputs)>;
// Called after each block: its first row, its inputs and its rows [count, E] of the result.
using BatchCallback =
    std::function<void(int64_t begin, const Tensor& inputs, const Tensor& features)>;

// A source of N input rows, loaded block by block.
struct BatchSource {
  int64_t count = 0;
  BatchLoader load;
};
// Image files, decoded and preprocessed (CLIP eval transform at `resolution`) block by block.
BatchSource image_file_source(std::vector<std::string> paths, int64_t resolution);
// Rows of a tensor [N, ...] (converted to f32 block by block).
BatchSource tensor_source(const Tensor& inputs);

// The batching loop: returns features [N, embed_dim] f32 on the CPU. `what` names the caller in
// errors (batch size not positive, an encoder output of the wrong shape).
Tensor encode_batched(const BatchSource& source, int64_t batch_size, int64_t embed_dim,
                      const BatchEncoder& encode, const BatchCallback& on_batch = {},
                      const char* what = "encode_batched");

// CLIP encoders through the loop. images [N,3,R,R] / tokens [M,ctx] -> [N,E] / [M,E] f32.
Tensor encode_images_batched(const ClipModel& model, const BatchSource& images, int64_t batch_size,
                             const BatchCallback& on_batch = {});
Tensor encode_images_batched(const ClipModel& model, const Tensor& images, int64_t batch_size);
Tensor encode_text_batched(const ClipModel& model, const Tensor& tokens, int64_t batch_size);

// The zero-shot classifier of models/clip/zeroshot.h from prompts: tokenises every prompt at the
// model's context length, encodes them batch_size at a time, averages per class.
ZeroShotClassifier build_zeroshot_classifier(
    const ClipModel& model, const ClipTokenizer& tokenizer,
    const std::vector<std::vector<std::string>>& class_prompts, int64_t batch_size);

// ---------------------------------------------------------------------------------------------
// Metrics

class AccuracyMeter {
 public:
  explicit AccuracyMeter(int64_t num_classes);
  // logits [B,K] (float, any device), labels: B values in [0, K). A NaN logit of the true class
  // throws; nothing is counted for a batch that throws.
  void add(const Tensor& logits, const std::vector<int64_t>& labels);

  int64_t num_classes() const { return num_classes_; }
  int64_t count() const { return count_; }
  int64_t correct_top1() const { return correct_top1_; }
  int64_t correct_top5() const { return correct_top5_; }  // counts top-min(5, K)
  double top1() const;                                    // percent; 0 when count() == 0
  double top5() const;
  // Mean over classes with at least one image of their top-1 accuracy (percent); 0 when empty.
  double mean_per_class_accuracy() const;
  double macro_f1() const;  // percent, over classes with at least one image; 0 when empty
  const std::vector<int64_t>& class_count() const { return class_count_; }
  const std::vector<int64_t>& class_correct() const { return class_correct_; }  // top-1
  const std::vector<int64_t>& predictions() const { return predictions_; }      // top-1 per image
  // confusion()[y * K + p]: images of true class y predicted as p.
  const std::vector<int64_t>& confusion() const { return confusion_; }

 private:
  int64_t num_classes_ = 0, count_ = 0, correct_top1_ = 0, correct_top5_ = 0;
  std::vector<int64_t> class_count_, class_correct_, predictions_, confusion_;
};

// The metrics as JSON: num_images, num_classes, top1_correct, accuracy, error, top5_correct and
// top5_accuracy (null with fewer than 5 classes), mean_per_class_accuracy, macro_f1 (null when
// empty), per_class [{label, classname, count, correct, accuracy (null without images)}].
// classnames: K names (index = label).
nlohmann::json metrics_json(const AccuracyMeter& meter, const std::vector<std::string>& classnames);

// Creates `dir` if needed and writes atomically:
//   metrics.json   metrics_json(meter, classnames) with the keys of `extra` added (extra wins);
//   per_class.csv  label,classname,count,correct,accuracy (accuracy empty without images);
//   confusion.csv  a header "true\pred,<classname>..." then one row per true class: its name and
//                  K counts (raw counts; divide by the row sum for Dassl's row-normalised cmat).
// Class names are quoted as CSV fields (RFC 4180). Returns the path of metrics.json.
std::string write_metrics(const std::string& dir, const AccuracyMeter& meter,
                          const std::vector<std::string>& classnames,
                          const nlohmann::json& extra = nlohmann::json::object());

// Dassl's result block on stdout ("=> result", "* total: N", "* correct: C", "* accuracy: A%",
// "* error: E%", "* macro_f1: F%"), then "* top-5 accuracy: T%" with at least 5 classes; the
// accuracy line is what parse_test_res.py reads.
std::string result_block(const AccuracyMeter& meter);

}  // namespace tgpt

/*
 * tgpt_run.h — a whole TGP-T few-shot run (method.md §4): zero-shot head, iteration-based
 * training with validation, best-val selection, final test with the plain and the WiSE-FT head,
 * and every output file.
 *
 * Given the few-shot data (train items with captions, val, test) and the options:
 *   1. CLIP (frozen) and its tokenizer; TgptModel (models/tgpt/tgpt.h) initialised from a seeded
 *      generator; the zero-shot head from the templates (mean of unnormalised text features over
 *      the templates per class, raw class names); the category targets; the training captions
 *      tokenized once (clip.tokenize with truncation: only tokens 1..64 are targets, so a longer
 *      caption loses nothing but its EOT, which lies outside the targets anyway).
 *   2. Training (train/trainer.h): AdamW (0.9, 0.999, eps 1e-7, wd 1e-4) on every trainable
 *      tensor, warm-up + cosine (engine/schedule.h), batches of batch_size from a reshuffled
 *      sampler (drop_last = False, as the official RandomSampler), RandomResizedCrop + flip
 *      (data/preprocess.h) seeded from the trainer's generator, the frozen image encoder without
 *      a tape, loss = cls + category + content. Log lines every print_every iterations:
 *        Iter [k/N] time .. loss .. cls_loss .. category_loss .. content_loss .. acc .. lr .. eta
 *   3. Validation every eval_every iterations (and at the end) on the val split with the plain
 *      head ("Evaluate on the *val* set" + Dassl's result block); the best (strictly greater)
 *      trainable parameters are kept. Val images do not change during training: their encoder
 *      outputs (CLS and tokens) are computed once and kept in memory when they fit
 *      val_cache_bytes, else recomputed at each validation.
 *   4. Checkpoints (train/checkpoint.h) to OUT/checkpoint-last.safetensors every save_every
 *      iterations, at the end, and when Ctrl-C stops the run (exit status 130 in the tools);
 *      resume continues bit for bit from it.
 *   5. Test: the best-val parameters (the last ones without validation) on the test split, plain
 *      and WiSE-FT heads; "Finish training" then the result blocks, in the tail format
 *      parse_test_res.py reads ("* accuracy: x%"; WiSE-FT as "* accuracy_wiseft: y%").
 * Output folder OUT: log.txt (an existing one is kept as log.txt-YYYY-MM-DD-HH-MM-SS, as Dassl
 * does, unless resuming, which appends), metrics.json / per_class.csv / confusion.csv (the plain
 * head; metrics.json also holds accuracy_wiseft and the run's identity), test.json
 * ({"test acc", "test acc (wiseft_0.5)"} as the official code writes), model-best.safetensors and
 * model-last.safetensors (every TGP-T tensor under the official names + tgpt.tgpt metadata),
 * checkpoint-last.safetensors. All written atomically.
 */
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/device.h"
#include "base/dtype.h"
#include "data/dataset.h"
#include "models/tgpt/tgpt.h"
#include "train/evaluator.h"
#include "train/trainer.h"

namespace tgpt {

struct TgptTrainData {
  std::string dataset;                      // DATASET.NAME (for the log and metrics)
  std::vector<std::string> classnames;      // raw names, index = label
  std::vector<LabeledImage> train, val, test;
  std::vector<std::string> train_captions;  // one per train item; empty: no content loss
};

struct TgptTrainOptions {
  std::string weights;                 // tgpt CLIP weight file
  std::string merges;                  // BPE merges (empty: embedded in the weight file)
  std::vector<std::string> templates;  // zero-shot head templates, "{}" = class name
  std::string output_dir;              // the run folder (created)
  std::string header;                  // text written at the top of log.txt (resolved config)
  TgptConfig model;                    // num_classes is taken from the data
  std::string init_text = "a photo of a";  // TRAINER.CTX_INIT
  double lr = 0;                           // OPTIM.LR
  int64_t max_iter = 0;                    // OPTIM.MAX_ITER
  int64_t warmup_iter = 100;               // OPTIM.WARMUP_ITER
  int64_t batch_size = 8;                  // DATALOADER.TRAIN_X.BATCH_SIZE
  int64_t test_batch_size = 128;           // DATALOADER.TEST.BATCH_SIZE
  int64_t eval_every = 200;                // TRAIN.TEST_FREQ (0: only at the end)
  int64_t print_every = 50;                // TRAIN.PRINT_FREQ
  int64_t save_every = 0;                  // TRAIN.SAVE_FREQ (0: at the end and on Ctrl-C)
  uint64_t seed = 1;
  bool resume = false;  // continue from OUT/checkpoint-last.safetensors (error when absent)
  Device device = Device::CPU;
  DType compute_dtype = DType::f32;  // of the frozen CLIP
  int64_t val_cache_bytes = int64_t{2} << 30;
  nlohmann::json run_info = nlohmann::json::object();  // merged into metrics.json (method, ...)
  std::FILE* console = stdout;
};

struct TgptTrainResult {
  TrainStatus status = TrainStatus::finished;
  int64_t iteration = 0;
  double best_val = 0;          // percent (0 without validation)
  int64_t best_iteration = 0;   // 0: no validation ran
  double test_accuracy = 0;     // percent, plain head
  double test_accuracy_wiseft = 0;
  double seconds = 0;
};

TgptTrainResult run_tgpt_training(const TgptTrainOptions& options, const TgptTrainData& data);

// Accuracy of a model on images (evaluation transform, batched, no tape) with the plain and
// the WiSE-FT head, counted into the two meters. progress (may be null) gets the bar.
void evaluate_tgpt(const TgptModel& model, const std::vector<LabeledImage>& items,
                   int64_t batch_size, AccuracyMeter& plain, AccuracyMeter& wiseft,
                   TrainLog* progress = nullptr);

}  // namespace tgpt

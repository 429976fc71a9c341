/*
 * fewshot_run.h — a whole few-shot prompt-tuning run on a frozen CLIP: TGP-T (method.md §4) or
 * the CoOp baseline, with validation, best-val selection, the final test and every output file.
 *
 * Given the few-shot data (train items, with captions for TGP-T; val; test) and the options:
 *   1. CLIP (frozen) and its tokenizer, then the method's model from a seeded generator:
 *      TGP-T (models/tgpt/tgpt.h): the zero-shot head from the templates (mean of unnormalised
 *        text features over the templates per class, raw class names), the category targets,
 *        the training captions tokenized once (clip.tokenize with truncation: only tokens 1..64
 *        are targets, so a longer caption loses nothing but an EOT outside the targets);
 *      CoOp (models/coop/coop.h): n_ctx shared context vectors (or the init text's), class token
 *        at the end; every step encodes all C class prompts.
 *   2. Training (train/trainer.h), iteration-based, batches of batch_size from a reshuffled
 *      sampler (drop_last = False, as the official RandomSampler), RandomResizedCrop + flip
 *      (data/preprocess.h) seeded from the trainer's generator, the frozen image encoder without
 *      a tape. The batches are decoded and augmented ahead on loader_threads worker threads
 *      (data/batch_prefetcher.h), the same bit for bit as on the training thread; an image that
 *      cannot be read stops training with an error naming every bad file of its batch.
 *      TGP-T: AdamW (0.9, 0.999, eps 1e-7, wd 1e-4), linear warm-up + cosine (engine/
 *        schedule.h), loss = cls + category + content;
 *      CoOp: SGD (momentum 0.9, wd 5e-4), constant warm-up at warmup_lr then cosine, loss = CE.
 *      Log lines every print_every iterations:
 *        Iter [k/N] time .. loss .. cls_loss .. category_loss .. content_loss .. acc .. lr .. eta
 *   3. Validation every eval_every iterations (and at the end) on the val split ("Evaluate on
 *      the *val* set" + Dassl's result block); the best (strictly greater) trainable parameters
 *      are kept. Val images do not change during training: their encoder outputs are computed
 *      once and kept in memory when they fit val_cache_bytes, else recomputed each time.
 *   4. Checkpoints (train/checkpoint.h) to OUT/checkpoint-last.safetensors every save_every
 *      iterations, at the end, and when Ctrl-C stops the run; resume continues bit for bit.
 *   5. Test: the best-val parameters (the last ones without validation) on the test split;
 *      TGP-T with the plain and the WiSE-FT head. "Finish training" then the result block in
 *      the tail format parse_test_res.py reads ("* accuracy: x%"; WiSE-FT as
 *      "* accuracy_wiseft: y%").
 * Output folder OUT: log.txt (an existing one is kept as log.txt-YYYY-MM-DD-HH-MM-SS, as Dassl
 * does, unless resuming, which appends), metrics.json / per_class.csv / confusion.csv (metrics
 * also hold accuracy_wiseft and run_info: method, dataset, shots, seed), test.json (TGP-T:
 * {"test acc", "test acc (wiseft_0.5)"} as the official code writes), model-best.safetensors and
 * model-last.safetensors (TGP-T: every tensor under the official names, format "tgpt-prompt";
 * CoOp: prompt_learner.ctx, format "tgpt-coop"), checkpoint-last.safetensors. All written
 * atomically.
 */
#pragma once

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/device.h"
#include "base/dtype.h"
#include "data/dataset.h"
#include "data/preprocess.h"
#include "models/coop/coop.h"
#include "models/tgpt/tgpt.h"
#include "train/evaluator.h"
#include "train/trainer.h"

namespace tgpt {

// probe: the linear-probe baseline (train/linear_probe.h), run by run_linear_probe.
enum class FewshotMethod { tgpt, coop, probe };
const char* fewshot_method_name(FewshotMethod m);  // "tgpt", "coop", "probe"
FewshotMethod parse_fewshot_method(const std::string& s);

struct FewshotData {
  std::string dataset;                  // DATASET.NAME (for the log and metrics)
  std::vector<std::string> classnames;  // raw names, index = label
  std::vector<LabeledImage> train, val, test;
  std::vector<std::string> train_captions;  // TGP-T: one per train item; empty: no content loss
};

struct FewshotRunOptions {
  FewshotMethod method = FewshotMethod::tgpt;
  std::string weights;                     // tgpt CLIP weight file
  std::string merges;                      // BPE merges (empty: embedded in the weight file)
  std::vector<std::string> templates;      // TGP-T's zero-shot head templates, "{}" = class name
  std::string output_dir;                  // the run folder (created)
  std::string header;                      // text written at the top of log.txt (resolved config)
  TgptConfig tgpt;                         // num_classes is taken from the data
  CoopOptions coop;                        // n_ctx, init text (seed: the run's)
  std::string init_text = "a photo of a";  // TGP-T's TRAINER.CTX_INIT
  double lr = 0;                           // OPTIM.LR
  int64_t max_iter = 0;                    // OPTIM.MAX_ITER
  int64_t warmup_iter = 100;               // OPTIM.WARMUP_ITER
  double warmup_lr = 1e-5;                 // CoOp's constant warm-up lr
  double momentum = 0.9;                   // CoOp's SGD
  double weight_decay = -1;                // < 0: the method's (TGP-T 1e-4, CoOp 5e-4)
  int64_t batch_size = 8;                  // DATALOADER.TRAIN_X.BATCH_SIZE
  TrainTransform train_transform;          // INPUT.TRANSFORMS, INPUT.RRCROP_SCALE
  // Input pipeline (data/batch_prefetcher.h): worker threads preparing training batches ahead;
  // 0: each batch on the training thread when the step needs it; < 0: default_loader_threads.
  // The batches are the same bit for bit whatever the number.
  int loader_threads = -1;
  int64_t test_batch_size = 128;  // DATALOADER.TEST.BATCH_SIZE
  int64_t eval_every = 200;       // TRAIN.TEST_FREQ (0: only at the end)
  int64_t print_every = 50;       // TRAIN.PRINT_FREQ
  int64_t save_every = 0;         // TRAIN.SAVE_FREQ (0: at the end and on Ctrl-C)
  uint64_t seed = 1;
  bool resume = false;  // continue from OUT/checkpoint-last.safetensors (error when absent)
  Device device = Device::CPU;
  DType compute_dtype = DType::f32;            // of the frozen CLIP
  int64_t val_cache_bytes = int64_t{2} << 30;  // in-memory features of a val or test set at most
  // The on-disk image feature cache (train/feature_cache.h) for the val and test sets; empty:
  // none. The test set goes through it when its features fit val_cache_bytes.
  std::string feature_cache_dir;
  nlohmann::json run_info = nlohmann::json::object();  // merged into metrics.json
  std::FILE* console = stdout;
};

struct FewshotRunResult {
  TrainStatus status = TrainStatus::finished;
  int64_t iteration = 0;
  double best_val = 0;              // percent (0 without validation)
  int64_t best_iteration = 0;       // 0: no validation ran
  double test_accuracy = 0;         // percent, plain head
  double test_accuracy_wiseft = 0;  // TGP-T's WiSE-FT head (CoOp: = test_accuracy)
  double seconds = 0;
};

FewshotRunResult run_fewshot_training(const FewshotRunOptions& options, const FewshotData& data);

// TGP-T's zero-shot head [C,2E] for raw class names (method.md §1.2 point 7): every template
// filled with each name, encoded batch_size prompts at a time, the mean of the unnormalised
// features per class, then tgpt_zeroshot_head.
Tensor tgpt_zeroshot_head_from_templates(const ClipModel& clip, const ClipTokenizer& tokenizer,
                                         const std::vector<std::string>& classnames,
                                         const std::vector<std::string>& templates,
                                         int64_t batch_size);

// Accuracy of a TGP-T model on images (evaluation transform, batched, no tape) with the plain
// and the WiSE-FT head, counted into the two meters. progress (may be null) gets the bar.
void evaluate_tgpt(TgptModel& model, const std::vector<LabeledImage>& items, int64_t batch_size,
                   AccuracyMeter& plain, AccuracyMeter& wiseft, TrainLog* progress = nullptr);

}  // namespace tgpt

/*
 * clip_pretrain.h — contrastive CLIP pretraining from scratch on an image folder with captions
 * (issue 11 item 2; the entry point of `tgpt-train --method clip`).
 *
 * Data: image_dir holds the images; captions.txt (default image_dir/captions.txt) has one pair
 * per line, "key<TAB>caption", key = an image file name relative to image_dir (an image may have
 * several lines: several pairs). Blank lines are skipped; a line without a tab, with an empty key
 * or caption, a key leaving the folder or naming no file is an error naming the line. Images are
 * decoded once (kept as uint8 in memory; the pretraining sets are small), captions tokenized once
 * (clip.tokenize at the model's context length, truncated).
 *
 * Tokenizer: BPE merges from `merges` — a plain merges text (an optional "#version" header, then
 * "a b" per line; any number of merges, so a small world gets a small vocabulary) or OpenAI's
 * bpe_simple_vocab_16e6.txt.gz. The model's vocab_size is the tokenizer's; the merges are
 * embedded in the weight file (tgpt.bpe_merges), so every tool tokenizes with them.
 *
 * Model: ClipModel::init_random(config, seed) (OpenAI's initialisation, logit_scale ln(1/0.07)).
 * Step k: a batch of batch_size pairs from a RandomSampler (reshuffled every epoch, the last
 * batch of an epoch may be smaller), each image augmented by a random resized crop with scale
 * (crop_scale_min, 1) and ratio (3/4, 4/3), bicubic to the model's resolution (no flip: captions
 * may say left and right), CLIP-normalised; loss = clip_contrastive_loss(encode_image,
 * encode_text, logit_scale) (symmetric InfoNCE, scale clamped at 100). AdamW (CLIP's betas
 * 0.9/0.98, eps 1e-6) with weight decay on the weights of rank >= 2 only (open_clip: no decay for
 * gains, biases and logit_scale), linear warm-up over warmup_iter then cosine
 * (WarmupCosineSchedule), optional global gradient-norm clipping. Log lines through TrainLog:
 *   Iter [k/N] time .. loss .. (avg) scale .. acc .. lr .. eta
 * with acc the in-batch image->text retrieval top-1 (percent) and scale = exp(logit_scale).
 * An optional evaluate callback (e.g. zero-shot accuracy on a validation set) runs every
 * eval_every iterations on the model being trained (no tape); the last weights are written either
 * way.
 *
 * Output folder: log.txt, checkpoint-last.safetensors (train/checkpoint.h: every weight, AdamW
 * state, sampler and generators; every save_every iterations, at the end and on Ctrl-C; resume
 * continues bit for bit) and clip.safetensors, a normal tgpt CLIP weight file
 * (ClipModel::save: f32, tgpt.config, tgpt.bpe_merges) usable by every tool. All written
 * atomically.
 */
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "base/device.h"
#include "base/dtype.h"
#include "models/clip/clip.h"
#include "train/trainer.h"

namespace tgpt {

// One (image, caption) pair of captions.txt.
struct CaptionPair {
  std::string path;  // image_dir / key
  std::string caption;
};

// Reads captions.txt (format above); every problem is a tgpt::Error naming the file and line.
std::vector<CaptionPair> read_caption_pairs(const std::string& image_dir,
                                            const std::string& captions_path);

struct ClipPretrainOptions {
  std::string image_dir;
  std::string captions;    // empty: image_dir/captions.txt
  std::string merges;      // BPE merges (plain text or bpe_simple_vocab_16e6.txt.gz)
  std::string output_dir;  // created
  ClipConfig config;       // vocab_size is set from the tokenizer (0 or equal; else an error)
  double lr = 5e-4;
  double weight_decay = 0.2;
  double beta1 = 0.9, beta2 = 0.98, adam_eps = 1e-6;
  int64_t max_iter = 0;
  int64_t warmup_iter = 0;      // linear warm-up iterations (0: none)
  int64_t batch_size = 64;      // pairs per step (>= 2)
  double crop_scale_min = 0.8;  // RandomResizedCrop scale range (crop_scale_min, 1]
  double clip_grad_norm = 0;    // > 0: max global gradient norm
  int64_t print_every = 10;
  int64_t save_every = 0;  // checkpoint period (0: at the end and on Ctrl-C)
  int64_t eval_every = 0;  // evaluate period (0: only at the end, when evaluate is set)
  uint64_t seed = 1;
  // Input pipeline (data/batch_prefetcher.h): worker threads cropping and resizing batches ahead;
  // 0: on the training thread; < 0: default_loader_threads. The same batches bit for bit.
  int loader_threads = -1;
  bool resume = false;  // continue from output_dir/checkpoint-last.safetensors
  Device device = Device::CPU;
  DType compute_dtype = DType::f32;  // of the trained weights: f32 (f64 on the CPU; 16-bit refused)
  std::string header;                // written at the top of log.txt
  std::FILE* console = stdout;
  // Validation score of the model being trained (higher is better), e.g. zero-shot accuracy in
  // percent; run without a tape, logged by the trainer ("Validation at iteration k: ..."). Empty:
  // none.
  std::function<double(const ClipModel& model)> evaluate;
};

struct ClipPretrainResult {
  TrainStatus status = TrainStatus::finished;
  int64_t iteration = 0;
  double first_loss = 0;     // loss of the first step run (NaN when resuming past it)
  double last_loss = 0;      // mean loss of the last min(10, steps) steps of this call
  double last_eval = 0;      // score of the last evaluation (0 without evaluate)
  std::string weights_path;  // output_dir/clip.safetensors (written when finished)
  double seconds = 0;
};

ClipPretrainResult run_clip_pretraining(const ClipPretrainOptions& options);

}  // namespace tgpt

/*
 * tgpt_replay.h — replay: N TGP-T training steps on one fixed batch from a given initial state,
 * with everything recorded, for checking tgpt against the official code step by step.
 *
 * Inputs (`tgpt-train replay`):
 *   weights  a tgpt CLIP weight file (tgpt-convert of any supported format); its tokenizer (the
 *            merges embedded in it, or `merges`) gives SOT, EOT and "." for the prompts.
 *   init     safetensors, the initial TGP-T state under the official names (models/tgpt/tgpt.h):
 *            every trainable tensor and zs_weights [C,2E] (required); query counts and C are read
 *            from it. Other official tensors (prompt_learner.vocab_head.weight, token prefixes and
 *            suffixes, tokenized queries, logit_scale, wiseft_head.*) are ignored and listed.
 *   batch    safetensors: images f32 [B,3,R,R] (already normalised), labels i64 [B],
 *            caption_tokens i64 [B,ctx], category_sentence_tokens i64 [C,ctx] ("a photo of a
 *            {classname}." tokenized). The same batch at every step, no augmentation.
 * Training: train/trainer.h with AdamW (TGP-T's: betas 0.9/0.999, eps 1e-7, wd 1e-4) and the
 * warm-up + cosine schedule (engine/schedule.h) of base lr `lr`, T = max_iter, W = warmup_iter;
 * step k (1-based) encodes the images (frozen, no tape), runs the forward and the three losses.
 * Output (safetensors, written atomically; metadata tgpt.replay = the options as JSON):
 *   step.loss_cls, step.loss_category, step.loss_content, step.loss_total  f32 [N]
 *   step.lr f64 [N]; step.seconds f64 [N] (wall time of each whole iteration)
 *   fwd1.image_cls [B,E], fwd1.t_cat, fwd1.t_con [B,E], fwd1.fused_features [B,2E],
 *   fwd1.logits [B,C]                                      (the first forward)
 *   grad1.<name>   the first backward's gradient of every trainable tensor that receives one
 *   paramK.<name>  the same tensors after step K, K = 1..N
 *   eval.logits, eval.logits_wiseft [B,C]                   after the last step
 */
#pragma once

#include <cstdint>
#include <string>

#include "base/device.h"
#include "base/dtype.h"
#include "train/trainer.h"

namespace tgpt {

struct TgptReplayOptions {
  std::string weights;  // tgpt CLIP weight file
  std::string merges;   // BPE merges file (empty: the ones embedded in the weight file)
  std::string init;     // initial TGP-T state
  std::string batch;    // the fixed batch
  std::string trace;    // output file
  int64_t steps = 1;    // N
  double lr = 0;        // base learning rate
  int64_t max_iter = 0;     // T (>= steps)
  int64_t warmup_iter = 100;  // W
  Device device = Device::CPU;
  DType compute_dtype = DType::f32;  // of the frozen CLIP
};

// Runs the replay and writes the trace; log (may be null) gets one line per step.
void run_tgpt_replay(const TgptReplayOptions& options, TrainLog* log);

}  // namespace tgpt

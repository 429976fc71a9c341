/*
 * coop.h — CoOp (Zhou et al., "Learning to Prompt for Vision-Language Models", KaiyangZhou/CoOp)
 * on a frozen ClipModel: unified learnable context, class token at the end. The baseline whose
 * memory TGP-T is compared against (../shared/spec/method.md §4.5).
 *
 * Prompts (CoOp's PromptLearner, class_token_position "end", csc False):
 *   text_c   = "<prefix> {name_c}."  with prefix = n_ctx times "X" (generic context) or the init
 *              text ("a photo of a": n_ctx = its word count); '_' in a class name becomes ' '.
 *   tokens_c = clip.tokenize(text_c)                                [C,77]
 *   emb_c    = token_embedding(tokens_c)                            [C,77,W], frozen
 *   prompt_learner.token_prefix = emb[:, :1]                        [C,1,W]   (SOT)
 *   prompt_learner.token_suffix = emb[:, 1+n_ctx:]                  [C,77-1-n_ctx,W]
 *                                 (class-name tokens, '.', EOT, padding)
 *   prompt_learner.ctx                                              [n_ctx,W], trainable, f32;
 *              generic: N(0, 0.02²) from a seeded tgpt::Generator; init text: the token
 *              embeddings of tokens 1..n_ctx of its tokenization.
 *   prompt_c = concat(prefix_c, ctx, suffix_c)                      [C,77,W]
 * Text features: the frozen text encoder run from the prompt embeddings, pooled at each prompt's
 * EOT (argmax of its token ids): t = encode_text_embeddings(prompt, eot)   [C,E], differentiable
 * with respect to ctx.
 * Logits: exp(logit_scale) · normalize(image_features) · normalize(t)ᵀ  [B,C], logit_scale being
 * CLIP's own (100 for OpenAI's weights). Loss: mean cross-entropy over all C classes.
 *
 * Cost: every training step runs the text encoder forward and backward on all C class prompts
 * (text_encoder_sequences() = C), which is why CoOp's memory grows with the number of classes.
 * For evaluation, class_text_features(chunk) encodes the prompts a chunk of classes at a time
 * without recording a tape.
 *
 * (The text encoder stops at the last pooled position, so a step costs C · (max EOT + 1) token
 * positions, text_encoder_tokens(), rather than C · 77 as in CoOp's PyTorch code.)
 *
 * Training (train/trainer.h; CoOp's configs/trainers/CoOp/vit_b16_ep50.yaml as data.md §2 lists
 * it): the only trainable tensor is prompt_learner.ctx; SGD lr 0.002 with cosine decay, one
 * constant warm-up epoch at 1e-5, batch 32 (momentum 0.9 and weight decay 5e-4 are Dassl's
 * defaults, not in our spec files). CoOp's own default precision is fp16 with an fp16 ctx; here
 * ctx stays f32 whatever the compute dtype.
 *
 * Device: everything lives on the ClipModel's device. The buffers are in its compute dtype (as
 * embed_tokens returns them); ctx is an f32 master copy, cast to the compute dtype inside the
 * forward (the cast is recorded, so its gradient reaches ctx in f32). Results are f32.
 * The CoopModel keeps its own handle to the ClipModel (weights shared, not copied).
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "models/clip/clip.h"
#include "models/nn/parameters.h"
#include "models/tokenizer.h"

namespace tgpt {

struct CoopOptions {
  // Generic context length (CoOp's TRAINER.COOP.N_CTX); ignored when init_text is set.
  int64_t n_ctx = 16;
  // CoOp's CTX_INIT, e.g. "a photo of a" ('_' becomes ' '): n_ctx = its word count, ctx = the
  // token embeddings of its words, and the prompts start with it instead of the X's. Each word
  // must be one BPE token. Empty: generic context.
  std::string init_text;
  // Seed and standard deviation of the generic context's N(0, std²) initialisation.
  uint64_t seed = 0;
  double init_std = 0.02;
};

class CoopModel {
 public:
  // Tokenizes the class prompts with `tokenizer` (ids must fit the model's vocabulary). Throws a
  // tgpt::Error for no classes, an empty class name, an n_ctx outside [1, context_length - 3],
  // an init text with a word that is not one BPE token, or a class whose prompt does not fit the
  // context length (naming the class and the token counts).
  CoopModel(const ClipModel& clip, const ClipTokenizer& tokenizer,
            const std::vector<std::string>& class_names, const CoopOptions& options = {});

  // From prompts already tokenized ([C, context_length], i32/i64): positions 1..n_ctx of each row
  // are the context slots and each row's EOT (its argmax) must come after them. ctx is drawn
  // from N(0, options.init_std²) with options.seed (options.init_text is refused here: pass
  // the init embeddings through parameters().load instead).
  static CoopModel from_prompt_tokens(const ClipModel& clip, const Tensor& prompt_tokens,
                                      const CoopOptions& options = {});

  int64_t num_classes() const { return num_classes_; }
  int64_t n_ctx() const { return n_ctx_; }
  const ClipModel& clip() const { return clip_; }
  double logit_scale() const { return clip_.logit_scale(); }
  // The tokenized class prompts [C,77] i32 (CPU) and their EOT positions [C] i64 (CPU).
  const Tensor& prompt_tokens() const { return prompt_tokens_; }
  const Tensor& eot_positions() const { return eot_; }

  // prompt_learner.ctx [n_ctx,W] (trainable, f32), prompt_learner.token_prefix [C,1,W] and
  // prompt_learner.token_suffix [C,77-1-n_ctx,W] (frozen buffers, compute dtype), on the
  // model's device.
  nn::ParameterSet& parameters() { return params_; }
  const nn::ParameterSet& parameters() const { return params_; }
  const Tensor& ctx() const { return ctx_; }

  // The assembled prompt embeddings of classes [first, first+count): [count,77,W] in the
  // compute dtype, differentiable with respect to ctx.
  Tensor prompts(int64_t first, int64_t count) const;
  // Text features of every class [C,E] f32, unnormalised; records the tape through the text
  // encoder when ctx requires grad (training).
  Tensor text_features() const;
  // The same without a tape, `chunk` classes per text-encoder call (0: all at once) [C,E] f32.
  Tensor class_text_features(int64_t chunk = 0) const;

  // image_features [B,E] (float, either device) -> logits [B,C] f32 with the text features of
  // text_features() (differentiable), or with given class text features [C,E] (evaluation).
  Tensor logits(const Tensor& image_features) const;
  Tensor logits(const Tensor& image_features, const Tensor& text_features) const;
  // Mean cross-entropy of logits(image_features) against labels [B] (i32/i64, in [0, C)) -> [].
  Tensor loss(const Tensor& image_features, const Tensor& labels) const;

  // Sequences one training step pushes through the text encoder (forward, and again backward):
  // one per class, whatever the batch size.
  int64_t text_encoder_sequences() const { return num_classes_; }
  // Token positions those sequences occupy: C · (max EOT + 1), since the encoder stops at the
  // last pooled position (the causal mask makes the rest irrelevant).
  int64_t text_encoder_tokens() const;

 private:
  CoopModel(const ClipModel& clip, const Tensor& prompt_tokens, int64_t n_ctx,
            const std::string& source);
  // Checks image features [B,E] and returns them as f32 on the model's device.
  Tensor image_input(const Tensor& image_features, const char* what) const;

  ClipModel clip_;  // a handle copy: the weights are shared with the caller's model
  int64_t num_classes_ = 0;
  int64_t n_ctx_ = 0;
  Tensor prompt_tokens_;  // [C,77] i32, CPU
  Tensor eot_;            // [C] i64, CPU
  nn::ParameterSet params_;
  Tensor ctx_;     // prompt_learner.ctx [n_ctx,W] f32
  Tensor prefix_;  // prompt_learner.token_prefix [C,1,W]
  Tensor suffix_;  // prompt_learner.token_suffix [C,77-1-n_ctx,W]
};

}  // namespace tgpt

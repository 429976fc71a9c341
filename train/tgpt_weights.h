/*
 * tgpt_weights.h — reading trained TGP-T weights for evaluation: tgpt's own model files and the
 * official code's checkpoints.
 *
 * Accepted sources (read_tgpt_weights):
 *   - a tgpt model file (model-best.safetensors / model-last.safetensors written by a tgpt run:
 *     every TGP-T tensor under the official names, zs_weights included, metadata tgpt.tgpt);
 *   - a tgpt run folder: its model-best.safetensors;
 *   - an official TGP-T output folder: prompt_learner/model-best.pth.tar and
 *     cls_head/model-best.pth.tar (Dassl-style torch.save dicts {'state_dict': ..., ...} of the
 *     trainable tensors; keys relative to the module, "bonder_category.norm1.weight", or with its
 *     prefix);
 *   - one torch file (torch.save of the model's state dict, or a dict with 'state_dict'), keys
 *     under the official names; a file inside a prompt_learner/ or cls_head/ folder may use
 *     relative keys.
 * Torch files are read without executing any pickle code (convert/torch_checkpoint.h).
 *
 * Loading (load_tgpt_weights): every trainable tensor of the model must be present with its
 * shape (one error lists what is missing or misshapen; a classifier of another class count is
 * named as such); zs_weights is taken when present (the official checkpoints do not hold it: the
 * caller builds it from the templates, as the official code does at model construction); the
 * frozen extras of a full state dict (image_encoder.*, text_encoder.*, vocab_head, token
 * prefixes, logit_scale, wiseft_head.*) are ignored.
 */
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "models/tgpt/tgpt.h"

namespace tgpt {

struct TgptWeights {
  std::map<std::string, Tensor> tensors;  // official names
  std::vector<std::string> files;         // what was read
  std::string metadata;                   // tgpt.tgpt JSON of a tgpt model file ("" otherwise)
};

TgptWeights read_tgpt_weights(const std::string& path);

struct TgptLoadReport {
  std::vector<std::string> loaded, ignored;
  bool has_zeroshot_head = false;  // zs_weights came from the file
};
TgptLoadReport load_tgpt_weights(TgptModel& model, const TgptWeights& weights);

// The sizes the weights fix: category_queries and content_queries from
// prompt_learner.query_category / query_content [1,N,W], num_classes from cls_head.fc.weight
// [C,2E]; the other fields keep their defaults. Errors name the missing or misshapen tensor.
TgptConfig tgpt_config_from_weights(const TgptWeights& weights);

// Every parameter of a model (zs_weights included; the model's tensors, not copies).
TgptWeights tgpt_model_weights(const TgptModel& model);

// The weights restricted to a subset of the classes (an ImageNet model on ImageNet-A/-R's 200
// classes: rows = DatasetSplit::imagenet_index): cls_head.fc.weight and zs_weights, when present,
// become their `rows` (tgpt_select_head_rows, [R,2E]); every other tensor is shared. Errors: no
// cls_head.fc.weight, an index outside the head.
TgptWeights select_tgpt_classes(const TgptWeights& weights, const std::vector<int64_t>& rows);

}  // namespace tgpt

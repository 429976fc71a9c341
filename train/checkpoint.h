/*
 * checkpoint.h — training checkpoints: everything needed to continue a run bit for bit.
 *
 * One safetensors file (engine/safetensors.h; written atomically: temporary file in the same
 * folder, fsync, rename, so a failed write leaves the previous checkpoint as it was):
 *   tensors
 *     param.<name>                     trainable parameters of the ParameterSet (their dtype)
 *     optim.<group>.<name>.exp_avg     AdamW first moment   } for parameters that have had an
 *     optim.<group>.<name>.exp_avg_sq  AdamW second moment  } update (step count > 0)
 *     optim.<group>.<name>.momentum    SGD momentum buffer (when the parameter has one)
 *     best.<name>                      best-validation copy of each trainable parameter (if any)
 *     sampler.permutation              i64 [N], the sampler's current epoch order (if drawn)
 *   metadata
 *     tgpt.format = "checkpoint", tgpt.format_version = "1"
 *     tgpt.checkpoint_sha256 = checkpoint_content_hash(record, tensors): any damage to the file,
 *       tensor data included, is detected on loading
 *     tgpt.checkpoint = JSON {
 *       "iteration": k (steps done; the next step is k+1 and uses schedule.lr_at(k+1)),
 *       "max_iter", "num_classes",
 *       "optimizer": {"kind": "adamw"|"sgd", "groups": [{"name", "lr_scale", "params": [names],
 *                     "steps": [AdamW step count per parameter]}]},
 *       "best": null | {"score", "iteration"},
 *       "sampler": null | {"size", "batch_size", "seed", "epoch", "index"},
 *       "rng": {"<generator name>": "<std::mt19937_64 state as its operator<< writes it>"}
 *     }
 * Generators: "trainer" (Trainer::rng()), "sampler" (the sampler's), and any the caller names.
 *
 * Loading checks everything before changing anything, and any problem is one tgpt::Error naming
 * the file: not a checkpoint or another format version, a damaged or truncated file (the
 * SHA-256 does not match: tensor data included), parameter names or shapes that differ from the
 * model's trainable parameters, another class count, another max_iter, other optimizer groups,
 * missing or unexpected optimizer state, a sampler of another size, unreadable generator
 * states, generators missing or unknown. On error the model, optimizers, trainer, sampler and
 * generators are unchanged.
 */
#pragma once

#include <random>
#include <string>
#include <utility>
#include <vector>

#include "train/sampler.h"
#include "train/trainer.h"

namespace tgpt {

constexpr int kCheckpointFormatVersion = 1;

// What a checkpoint saves and restores. The trainer brings the parameters, the optimizers, the
// loop position, the best-validation record and its generator.
struct TrainingState {
  Trainer* trainer = nullptr;
  RandomSampler* sampler = nullptr;                                  // optional
  std::vector<std::pair<std::string, std::mt19937_64*>> generators;  // more, by unique name
};

void save_checkpoint(const std::string& path, const TrainingState& state);
void load_checkpoint(const std::string& path, const TrainingState& state);

// The value of tgpt.checkpoint_sha256: SHA-256 (hex) over the record text, then every tensor in
// name order as its name, dtype name, shape text and raw little-endian bytes.
std::string checkpoint_content_hash(const std::string& record,
                                    std::vector<std::pair<std::string, Tensor>> tensors);

// std::mt19937_64 state <-> its exact text form (operator<< / operator>>). parse throws a
// tgpt::Error naming `what` when the text is not a complete state.
std::string rng_state_text(const std::mt19937_64& rng);
std::mt19937_64 parse_rng_state(const std::string& text, const std::string& what);

}  // namespace tgpt

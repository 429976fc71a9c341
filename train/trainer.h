/*
 * trainer.h — an iteration-based training loop (TGP-T's, ../shared/spec/method.md §4.1, §4.4).
 *
 * For k = iteration()+1 .. until (at most max_iter), one step is:
 *   lr_g = schedule.lr_at(k) · lr_scale_g for every parameter group g (set before the update, as
 *          TGP-T calls scheduler.step() before each forward);
 *   zero the gradients; out = step(k) (the model's forward: a one-element loss tensor);
 *   a NaN or infinite loss stops training with a tgpt::Error naming the step (nothing of step k
 *          is applied: the parameters stay those after step k-1 and no checkpoint is written, so
 *          the last good checkpoint on disk stays);
 *   loss.backward(); optional global-norm clipping (torch.nn.utils.clip_grad_norm_: total =
 *          ||(||g_1||, ..., ||g_n||)||_2, every gradient scaled by min(1, max_norm/(total+1e-6)));
 *   each group's optimizer steps; iteration() = k; the step observer (if any) sees step k;
 *   every eval_every steps (and at max_iter): score = evaluate(k) (higher is better); a score
 *          strictly greater than the best so far keeps a copy of the trainable parameters
 *          (best_parameters(); restore_best() loads them back);
 *   every checkpoint_every steps: the checkpoint callback (train/checkpoint.h writes one).
 * Between steps the loop checks the stop flag (request_stop(), set by the SIGINT handler of
 * install_interrupt_handler()): when set, it calls the checkpoint callback and returns
 * TrainStatus::interrupted; tools then exit with kInterruptedExitCode (130, as a shell reports
 * a SIGINT).
 *
 * Parameter groups: named lists of trainable parameters of the ParameterSet with their own lr
 * scale and, optionally, weight decay; trainable parameters in no group form a group "default"
 * (with no groups given, every trainable parameter). Each group has its own optimizer
 * (AdamW or SGD, engine/optim.h), created with the group's weight decay.
 *
 * Generators: the trainer owns one std::mt19937_64 (rng(), seeded from options.seed) for
 * randomness inside steps (augmentation seeds, dropout); checkpoints save and restore it.
 *
 * Logging (TrainLog): every log_every steps a line in the grammar of TGP-T/Dassl logs
 *   Iter [k/N] time 0.231 (0.240) loss 2.3450 (2.5120) <metric> v (avg) lr 1.0000e-05 eta 0:51:02
 * plus items/s; on a terminal the console shows a progress bar (redrawn every step) instead of
 * these lines; a log file, when given, always gets the plain lines.
 */
#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "data/batch_prefetcher.h"
#include "engine/optim.h"
#include "engine/schedule.h"
#include "engine/tensor.h"
#include "models/nn/parameters.h"
#include "train/sampler.h"

namespace tgpt {

// ---------------------------------------------------------------------------------------------
// Stop requests (Ctrl-C)

constexpr int kInterruptedExitCode = 130;
// SIGINT sets the stop flag; a second SIGINT while the flag is set ends the process at once
// (the default action).
void install_interrupt_handler();
void request_stop();  // what the handler does (async-signal-safe)
bool stop_requested();
void clear_stop_request();

// ---------------------------------------------------------------------------------------------
// Log sink

class TrainLog {
 public:
  // console: where lines and the bar go (nullptr: nowhere). terminal: draw a progress bar on the
  // console instead of step lines (default: whether console is a terminal). log_path: a file the
  // plain lines are appended to (created if needed; empty: none).
  explicit TrainLog(std::FILE* console = stdout, std::optional<bool> terminal = std::nullopt,
                    const std::string& log_path = "");
  ~TrainLog();
  TrainLog(const TrainLog&) = delete;
  TrainLog& operator=(const TrainLog&) = delete;

  // A line on the console (the bar, if shown, is cleared and redrawn below it) and in the file.
  void line(const std::string& text);
  // A step line: in the file always, on the console only when it is not a terminal.
  void step_line(const std::string& text);
  // Redraws the bar on a terminal console (nothing otherwise).
  void bar(const std::string& text);
  // Leaves the last bar on screen (ends its line).
  void end_bar();
  bool terminal() const { return terminal_; }

 private:
  void clear_bar();
  std::FILE* console_;
  bool terminal_;
  std::FILE* file_ = nullptr;
  bool bar_shown_ = false;
  std::string last_bar_;
};

// Before a new run writes `path` (log.txt): an existing file is kept as
// path-YYYY-MM-DD-HH-MM-SS (local time), as Dassl does.
void keep_existing_log(const std::string& path);

// "H:MM:SS" for a duration in seconds (negative and non-finite give "0:00:00").
std::string format_eta(double seconds);

// ---------------------------------------------------------------------------------------------
// Trainer

enum class OptimizerKind { adamw, sgd };

struct ParamGroup {
  std::string name;                    // unique, non-empty
  std::vector<std::string> params;     // trainable parameters of the set (each in one group)
  double lr_scale = 1.0;               // lr = schedule.lr_at(k) * lr_scale, >= 0
  std::optional<double> weight_decay;  // default: the optimizer options'
};

struct TrainerOptions {
  int64_t max_iter = 0;  // N >= 1; the schedule must accept k = 1..N
  OptimizerKind optimizer = OptimizerKind::adamw;
  AdamWOptions adamw = AdamWOptions::tgpt(0);  // its lr is unused (the schedule's)
  SGDOptions sgd;
  double clip_grad_norm = 0;        // > 0: max global gradient norm; 0: no clipping
  int64_t eval_every = 0;           // TEST_FREQ; 0: no periodic evaluation
  int64_t log_every = 50;           // PRINT_FREQ (plain lines); 0: none
  int64_t checkpoint_every = 0;     // 0: only on a stop request
  int64_t num_classes = 0;          // recorded in checkpoints (0: not a classifier)
  uint64_t seed = 0;                // seeds rng()
  std::string metric_name = "acc";  // name of StepOutput::metric in the log
};

// What a step returns: the loss (one element, float) and what to log.
struct StepOutput {
  Tensor loss;
  int64_t items = 0;             // images in the step (for items/s)
  std::optional<double> metric;  // e.g. the batch accuracy in percent
  // Parts of the loss logged after it as "name v (avg)" (TGP-T: cls_loss, category_loss,
  // content_loss); the same names at every step.
  std::vector<std::pair<std::string, double>> parts;
};

using StepFn = std::function<StepOutput(int64_t iteration)>;
using EvalFn = std::function<double(int64_t iteration)>;  // validation score, higher is better
using CheckpointFn = std::function<void(int64_t iteration)>;
// Called after the optimizer update of each iteration, before logging and validation; the
// gradients of that iteration are still in place (replay traces read them).
using StepObserverFn = std::function<void(int64_t iteration, const StepOutput& out)>;

enum class TrainStatus { finished, interrupted };

struct TrainResult {
  TrainStatus status = TrainStatus::finished;
  int64_t iteration = 0;  // steps completed
};

class Trainer {
 public:
  // `params` and `schedule` must outlive the trainer. log == nullptr: no logging.
  Trainer(nn::ParameterSet& params, const Scheduler& schedule, TrainerOptions options,
          std::vector<ParamGroup> groups = {}, TrainLog* log = nullptr);

  // Runs steps iteration()+1 .. until (-1: max_iter). evaluate may be empty (no evaluation).
  TrainResult run(const StepFn& step, const EvalFn& evaluate = {}, int64_t until = -1);

  int64_t iteration() const { return iteration_; }
  const TrainerOptions& options() const { return options_; }
  nn::ParameterSet& parameters() const { return params_; }
  std::mt19937_64& rng() { return rng_; }
  const std::mt19937_64& rng() const { return rng_; }

  size_t num_groups() const { return groups_.size(); }
  const ParamGroup& group(size_t g) const { return groups_.at(g); }
  Optimizer& optimizer(size_t g) const { return *optimizers_.at(g); }

  // Best validation so far (none before the first evaluation).
  bool has_best() const { return best_iteration_ > 0; }
  double best_score() const { return best_score_; }
  int64_t best_iteration() const { return best_iteration_; }
  const std::map<std::string, Tensor>& best_parameters() const { return best_params_; }
  // Copies the best parameters back into the set; throws when there are none.
  void restore_best();

  void set_checkpoint_fn(CheckpointFn fn) { checkpoint_fn_ = std::move(fn); }
  void set_step_observer(StepObserverFn fn) { step_observer_ = std::move(fn); }
  // The iteration of the last checkpoint the callback wrote (0: none).
  int64_t last_checkpoint() const { return last_checkpoint_; }

  // For train/checkpoint.cpp: restoring the loop's position and best-val record (checked there).
  void restore_position(int64_t iteration, double best_score, int64_t best_iteration,
                        std::map<std::string, Tensor> best_params);

 private:
  void checkpoint(int64_t iteration);
  double clip_gradients(int64_t k);

  nn::ParameterSet& params_;
  const Scheduler& schedule_;
  TrainerOptions options_;
  std::vector<ParamGroup> groups_;
  std::vector<std::unique_ptr<Optimizer>> optimizers_;
  TrainLog* log_;
  std::mt19937_64 rng_;
  int64_t iteration_ = 0;
  double best_score_ = 0;
  int64_t best_iteration_ = 0;
  std::map<std::string, Tensor> best_params_;
  CheckpointFn checkpoint_fn_;
  StepObserverFn step_observer_;
  int64_t last_checkpoint_ = 0;
};

// The input pipeline of a training run (data/batch_prefetcher.h). With `threads` > 0 (-1: the
// default_loader_threads for the device) batches are predicted from copies of `sampler` and of
// the trainer's generator as they stand now (after a resume, too) and prepared ahead on that many
// worker threads, up to max(3, threads) batches, for the iterations left until `max_iter`; with 0
// each batch is prepared when asked for, on the training thread (prepare_batch). The same images
// either way. The constructor writes the choice to the log. The step must draw each batch exactly
// as the plan does: sampler.next_batch(), then trainer.rng()() as the seed.
class TrainingBatches {
 public:
  TrainingBatches(int threads, bool gpu_training, const RandomSampler& sampler, Trainer& trainer,
                  int64_t max_iter, std::vector<int64_t> image_shape,
                  BatchPrefetcher::PrepareFn prepare, std::string what, TrainLog& log);
  // The batch of `request`: f32 [B, image_shape...] on the CPU.
  Tensor next(const BatchRequest& request);
  // After training: says in the log when a batch differed from the prediction (the later ones
  // were then prepared on demand, not ahead).
  void log_prediction_dropped(TrainLog& log) const;

 private:
  std::vector<int64_t> image_shape_;
  BatchPrefetcher::PrepareFn prepare_;
  std::string what_;
  std::unique_ptr<BatchPrefetcher> loader_;  // null: prepared on the training thread
};

}  // namespace tgpt

/*
 * trainer.cpp — the training loop (see trainer.h): parameter groups and their optimizers, the
 * step sequence, gradient clipping, best-validation tracking, stop requests and the log sink.
 */
#include "train/trainer.h"

#include <unistd.h>

#include <cmath>
#include <ctime>
#include <filesystem>
#include <set>

#include "base/error.h"
#include "engine/autograd.h"
#include "engine/ops.h"

namespace tgpt {

// ---------------------------------------------------------------------------------------------
// Stop requests

namespace {

volatile std::sig_atomic_t g_stop = 0;

extern "C" void on_sigint(int) {
  if (g_stop) {
    std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C: the default action
    std::raise(SIGINT);
    return;
  }
  g_stop = 1;
}

}  // namespace

void install_interrupt_handler() {
  std::signal(SIGINT, on_sigint);
}
void request_stop() {
  g_stop = 1;
}
bool stop_requested() {
  return g_stop != 0;
}
void clear_stop_request() {
  g_stop = 0;
}

// ---------------------------------------------------------------------------------------------
// Log sink

TrainLog::TrainLog(std::FILE* console, std::optional<bool> terminal, const std::string& log_path)
    : console_(console),
      terminal_(console != nullptr &&
                terminal.value_or(::isatty(::fileno(console ? console : stdout)) == 1)) {
  if (!log_path.empty()) {
    file_ = std::fopen(log_path.c_str(), "a");
    TGPT_CHECK(file_ != nullptr, "cannot open log file '", log_path, "' for appending");
  }
}

TrainLog::~TrainLog() {
  end_bar();
  if (file_) std::fclose(file_);
}

void TrainLog::clear_bar() {
  if (bar_shown_ && console_) {
    std::fputs("\r\033[K", console_);
    std::fflush(console_);
  }
  bar_shown_ = false;
}

void TrainLog::line(const std::string& text) {
  if (console_) {
    const bool redraw = bar_shown_;
    clear_bar();
    std::fprintf(console_, "%s\n", text.c_str());
    if (redraw) bar(last_bar_);
    std::fflush(console_);
  }
  if (file_) {
    std::fprintf(file_, "%s\n", text.c_str());
    std::fflush(file_);
  }
}

void TrainLog::step_line(const std::string& text) {
  if (console_ && !terminal_) {
    std::fprintf(console_, "%s\n", text.c_str());
    std::fflush(console_);
  }
  if (file_) {
    std::fprintf(file_, "%s\n", text.c_str());
    std::fflush(file_);
  }
}

void TrainLog::bar(const std::string& text) {
  if (!console_ || !terminal_) return;
  std::fprintf(console_, "\r\033[K%s", text.c_str());
  std::fflush(console_);
  bar_shown_ = true;
  last_bar_ = text;
}

void TrainLog::end_bar() {
  if (bar_shown_ && console_) {
    std::fputs("\n", console_);
    std::fflush(console_);
  }
  bar_shown_ = false;
}

void keep_existing_log(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) return;
  const std::time_t now = std::time(nullptr);
  char stamp[64];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d-%H-%M-%S", std::localtime(&now));
  fs::rename(path, path + "-" + stamp);
}

std::string format_eta(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) seconds = 0;
  const auto s = static_cast<long long>(seconds + 0.5);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Trainer

Trainer::Trainer(nn::ParameterSet& params, const Scheduler& schedule, TrainerOptions options,
                 std::vector<ParamGroup> groups, TrainLog* log)
    : params_(params),
      schedule_(schedule),
      options_(std::move(options)),
      log_(log),
      rng_(options_.seed) {
  const TrainerOptions& o = options_;
  TGPT_CHECK(o.max_iter >= 1, "Trainer: max_iter must be at least 1, got ", o.max_iter);
  TGPT_CHECK(std::isfinite(o.clip_grad_norm) && o.clip_grad_norm >= 0,
             "Trainer: clip_grad_norm must be finite and >= 0, got ", o.clip_grad_norm);
  TGPT_CHECK(o.eval_every >= 0 && o.log_every >= 0 && o.checkpoint_every >= 0,
             "Trainer: eval_every, log_every and checkpoint_every must be >= 0");
  TGPT_CHECK(o.num_classes >= 0, "Trainer: negative num_classes ", o.num_classes);

  // Groups: every named parameter must be trainable and in one group only; the rest of the
  // trainable parameters form "default".
  std::set<std::string> group_names, placed;
  for (const ParamGroup& g : groups) {
    TGPT_CHECK(!g.name.empty(), "Trainer: a parameter group has no name");
    TGPT_CHECK(group_names.insert(g.name).second, "Trainer: two parameter groups are named \"",
               g.name, "\"");
    TGPT_CHECK(!g.params.empty(), "Trainer: parameter group \"", g.name, "\" is empty");
    TGPT_CHECK(std::isfinite(g.lr_scale) && g.lr_scale >= 0, "Trainer: parameter group \"", g.name,
               "\" has lr_scale ", g.lr_scale, " (must be finite and >= 0)");
    for (const std::string& p : g.params) {
      TGPT_CHECK(params.contains(p), "Trainer: parameter group \"", g.name,
                 "\" names an unknown parameter \"", p, "\"");
      TGPT_CHECK(params.trainable(p), "Trainer: parameter group \"", g.name,
                 "\" names the frozen parameter \"", p, "\"");
      TGPT_CHECK(placed.insert(p).second, "Trainer: parameter \"", p,
                 "\" is in more than one group");
    }
    groups_.push_back(g);
  }
  ParamGroup rest{"default", {}, 1.0, std::nullopt};
  for (const auto& [name, t] : params.items(/*trainable_only=*/true))
    if (!placed.count(name)) rest.params.push_back(name);
  if (!rest.params.empty()) {
    TGPT_CHECK(!group_names.count("default"), "Trainer: the group name \"default\" is reserved ",
               "for trainable parameters in no group, and some are: \"", rest.params.front(), "\"");
    groups_.push_back(std::move(rest));
  }
  TGPT_CHECK(!groups_.empty(), "Trainer: the model has no trainable parameters");

  for (const ParamGroup& g : groups_) {
    std::vector<Tensor> tensors;
    for (const std::string& p : g.params) tensors.push_back(params.get(p));
    if (o.optimizer == OptimizerKind::adamw) {
      AdamWOptions a = o.adamw;
      a.lr = 0;
      if (g.weight_decay) a.weight_decay = *g.weight_decay;
      optimizers_.push_back(std::make_unique<AdamW>(std::move(tensors), a));
    } else {
      SGDOptions s = o.sgd;
      if (g.weight_decay) s.weight_decay = *g.weight_decay;
      optimizers_.push_back(std::make_unique<SGD>(std::move(tensors), 0.0, s));
    }
  }
}

void Trainer::checkpoint(int64_t iteration) {
  if (!checkpoint_fn_) return;
  checkpoint_fn_(iteration);
  last_checkpoint_ = iteration;
}

double Trainer::clip_gradients(int64_t k) {
  NoGradGuard no_grad;
  double total_sq = 0;
  std::vector<std::pair<Tensor, Tensor>> with_grad;  // (parameter, gradient)
  for (const auto& opt : optimizers_)
    for (const Tensor& p : opt->params()) {
      const Tensor g = p.grad();
      if (!g.defined()) continue;
      const double n = std::sqrt(sum(mul(g, g)).to(Device::CPU).to(DType::f64).item());
      total_sq += n * n;
      with_grad.emplace_back(p, g);
    }
  const double total = std::sqrt(total_sq);
  TGPT_CHECK(std::isfinite(total), "training stopped at iteration ", k, ": the gradient norm is ",
             total, " (the loss was finite); ",
             last_checkpoint_
                 ? "the last checkpoint is from iteration " + std::to_string(last_checkpoint_)
                 : std::string("no checkpoint was written"));
  const double coef = options_.clip_grad_norm / (total + 1e-6);
  if (coef < 1.0)
    for (auto& [p, g] : with_grad) p.set_grad(mul(g, coef));
  return total;
}

TrainResult Trainer::run(const StepFn& step, const EvalFn& evaluate, int64_t until) {
  const TrainerOptions& o = options_;
  if (until < 0) until = o.max_iter;
  TGPT_CHECK(until <= o.max_iter, "Trainer::run: until ", until, " is past max_iter ", o.max_iter);
  TGPT_CHECK(static_cast<bool>(step), "Trainer::run: no step function");
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  auto last = start;
  const int64_t first = iteration_ + 1;
  double loss_sum = 0, metric_sum = 0, time_sum = 0;
  std::vector<double> part_sums;
  int64_t metric_count = 0, items = 0;
  char buf[512];

  for (int64_t k = first; k <= until; ++k) {
    if (stop_requested()) {
      checkpoint(iteration_);
      if (log_)
        log_->line("Stopped at iteration " + std::to_string(iteration_) +
                   (checkpoint_fn_ ? " (checkpoint saved)" : ""));
      return {TrainStatus::interrupted, iteration_};
    }
    const double lr = schedule_.lr_at(k);
    for (size_t g = 0; g < optimizers_.size(); ++g) {
      optimizers_[g]->set_lr(lr * groups_[g].lr_scale);
      optimizers_[g]->zero_grad();
    }
    StepOutput out = step(k);
    TGPT_CHECK(out.loss.defined() && out.loss.numel() == 1 && dtype_is_float(out.loss.dtype()),
               "training step ", k, " returned ",
               out.loss.defined() ? out.loss.str() : std::string("no loss"),
               "; a step must return a one-element float loss");
    const double loss = out.loss.to(Device::CPU).to(DType::f64).item();
    TGPT_CHECK(std::isfinite(loss), "training stopped at iteration ", k, ": the loss is ", loss,
               "; the parameters are those after iteration ", k - 1, "; ",
               last_checkpoint_
                   ? "the last checkpoint is from iteration " + std::to_string(last_checkpoint_)
                   : std::string("no checkpoint was written"));
    out.loss.backward();
    if (o.clip_grad_norm > 0) clip_gradients(k);
    for (auto& opt : optimizers_) opt->step();
    iteration_ = k;
    if (step_observer_) step_observer_(k, out);

    // Log.
    const auto now = clock::now();
    const double dt = std::chrono::duration<double>(now - last).count();
    last = now;
    const int64_t done = k - first + 1;
    loss_sum += loss;
    time_sum += dt;
    items += out.items;
    if (out.metric) metric_sum += *out.metric, ++metric_count;
    part_sums.resize(out.parts.size(), 0.0);
    for (size_t i = 0; i < out.parts.size(); ++i) part_sums[i] += out.parts[i].second;
    if (log_) {
      std::string parts;
      for (size_t i = 0; i < out.parts.size(); ++i) {
        std::snprintf(buf, sizeof buf, " %s %.4f (%.4f)", out.parts[i].first.c_str(),
                      out.parts[i].second, part_sums[i] / static_cast<double>(done));
        parts += buf;
      }
      const double avg_time = time_sum / static_cast<double>(done);
      const double eta = avg_time * static_cast<double>(until - k);
      const double items_per_s = time_sum > 0 ? static_cast<double>(items) / time_sum : 0.0;
      std::string metric;
      if (out.metric) {
        std::snprintf(buf, sizeof buf, " %s %.4f (%.4f)", o.metric_name.c_str(), *out.metric,
                      metric_sum / static_cast<double>(metric_count));
        metric = buf;
      }
      if (o.log_every > 0 && (k % o.log_every == 0 || k == until)) {
        std::snprintf(buf, sizeof buf,
                      "Iter [%lld/%lld] time %.3f (%.3f) loss %.4f (%.4f)%s%s lr %.4e eta %s "
                      "items/s %.1f",
                      static_cast<long long>(k), static_cast<long long>(o.max_iter), dt, avg_time,
                      loss, loss_sum / static_cast<double>(done), parts.c_str(), metric.c_str(), lr,
                      format_eta(eta).c_str(), items_per_s);
        log_->step_line(buf);
      }
      if (log_->terminal()) {
        constexpr int kWidth = 30;
        const int filled = static_cast<int>(kWidth * k / o.max_iter);
        std::snprintf(buf, sizeof buf, "[%s%s] %lld/%lld loss %.4f%s lr %.2e %.1f items/s eta %s",
                      std::string(static_cast<size_t>(filled), '#').c_str(),
                      std::string(static_cast<size_t>(kWidth - filled), '.').c_str(),
                      static_cast<long long>(k), static_cast<long long>(o.max_iter), loss,
                      metric.c_str(), lr, items_per_s, format_eta(eta).c_str());
        log_->bar(buf);
      }
    }

    // Validation and best-val tracking.
    if (evaluate && o.eval_every > 0 && (k % o.eval_every == 0 || k == o.max_iter)) {
      const double score = evaluate(k);
      TGPT_CHECK(!std::isnan(score), "validation at iteration ", k, " returned NaN");
      const bool better = best_iteration_ == 0 || score > best_score_;
      if (better) {
        NoGradGuard no_grad;
        best_params_.clear();
        for (const auto& [name, t] : params_.items(/*trainable_only=*/true))
          best_params_[name] = t.detach().clone();
        best_score_ = score;
        best_iteration_ = k;
      }
      if (log_) {
        std::snprintf(buf, sizeof buf, "Validation at iteration %lld: %.4f (best %.4f at %lld)",
                      static_cast<long long>(k), score, best_score_,
                      static_cast<long long>(best_iteration_));
        log_->line(buf);
      }
    }
    if (o.checkpoint_every > 0 && k % o.checkpoint_every == 0) checkpoint(k);
  }
  if (log_) log_->end_bar();
  return {TrainStatus::finished, iteration_};
}

void Trainer::restore_best() {
  TGPT_CHECK(has_best(), "Trainer: no best-validation parameters (no evaluation has run)");
  nn::ParameterSet::LoadOptions lo;
  lo.allow_missing = true;  // frozen parameters are not kept
  params_.load(best_params_, "the best-validation parameters", lo);
}

void Trainer::restore_position(int64_t iteration, double best_score, int64_t best_iteration,
                               std::map<std::string, Tensor> best_params) {
  TGPT_CHECK(iteration >= 0 && iteration <= options_.max_iter, "Trainer: iteration ", iteration,
             " outside [0, ", options_.max_iter, "]");
  TGPT_CHECK(best_iteration >= 0 && best_iteration <= iteration, "Trainer: best iteration ",
             best_iteration, " outside [0, ", iteration, "]");
  TGPT_CHECK((best_iteration == 0) == best_params.empty(),
             "Trainer: best-validation parameters and best iteration disagree");
  iteration_ = iteration;
  best_score_ = best_iteration ? best_score : 0;
  best_iteration_ = best_iteration;
  best_params_ = std::move(best_params);
  last_checkpoint_ = iteration;
}

TrainingBatches::TrainingBatches(int threads, bool gpu_training, const RandomSampler& sampler,
                                 Trainer& trainer, int64_t max_iter,
                                 std::vector<int64_t> image_shape,
                                 BatchPrefetcher::PrepareFn prepare, std::string what,
                                 TrainLog& log)
    : image_shape_(std::move(image_shape)), prepare_(std::move(prepare)), what_(std::move(what)) {
  if (threads < 0) threads = default_loader_threads(gpu_training);
  if (threads == 0) {
    log.line("Input pipeline: on the training thread (--loader-threads 0)");
    return;
  }
  BatchPrefetcherOptions lo;
  lo.threads = threads;
  lo.depth = std::max(3, threads);
  lo.max_batches = std::max<int64_t>(0, max_iter - trainer.iteration());
  lo.what = what_;
  loader_ = std::make_unique<BatchPrefetcher>(
      image_shape_,
      [plan_sampler = sampler, plan_rng = trainer.rng()]() mutable {
        BatchRequest r;
        r.items = plan_sampler.next_batch();
        r.seed = plan_rng();
        return r;
      },
      prepare_, lo);
  log.line(str_cat("Input pipeline: ", threads, " loader thread", threads == 1 ? "" : "s",
                   ", up to ", lo.depth, " batches ahead"));
}

Tensor TrainingBatches::next(const BatchRequest& request) {
  return loader_ ? loader_->next(request) : prepare_batch(image_shape_, prepare_, request, what_);
}

void TrainingBatches::log_prediction_dropped(TrainLog& log) const {
  if (loader_ && !loader_->prefetching())
    log.line(
        "Input pipeline: a batch differed from the predicted one (something else drew from the "
        "generator); later batches were prepared on demand, not ahead");
}

}  // namespace tgpt

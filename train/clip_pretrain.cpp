/*
 * clip_pretrain.cpp — contrastive CLIP pretraining (train/clip_pretrain.h): captions.txt, the
 * tokenizer from merges, the randomly initialised trainable CLIP, the augmented batches, the
 * trainer with AdamW + warm-up + cosine, checkpoints and the weight file.
 */
#include "train/clip_pretrain.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>

#include "base/error.h"
#include "base/parallel.h"
#include "convert/clip_convert.h"
#include "data/batch_prefetcher.h"
#include "data/image.h"
#include "data/preprocess.h"
#include "data/resize.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/schedule.h"
#include "models/tokenizer.h"
#include "train/checkpoint.h"
#include "train/sampler.h"

namespace fs = std::filesystem;

namespace tgpt {

namespace {

std::string join_path(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / name).string();
}

std::string read_whole_file(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  TGPT_CHECK(f.good(), what, ": cannot open '", path, "'");
  std::stringstream ss;
  ss << f.rdbuf();
  TGPT_CHECK(!f.bad(), what, ": error reading '", path, "'");
  return ss.str();
}

// The tokenizer and the merges text to embed (without the "#version" header).
struct Merges {
  std::unique_ptr<ClipTokenizer> tokenizer;
  std::string embedded;
};

// Plain text or gzip (convert/clip_convert.h's reader: header dropped, every line checked).
Merges load_merges(const std::string& path) {
  TGPT_CHECK(!path.empty(), "CLIP pretraining: no BPE merges given");
  Merges m;
  m.embedded = read_bpe_merges(path, static_cast<size_t>(ClipTokenizer::kNumMerges));
  m.tokenizer =
      std::make_unique<ClipTokenizer>("#version: 0.2\n" + m.embedded, "merges file '" + path + "'");
  return m;
}

// In-batch image->text retrieval top-1 (percent) from the detached features.
double retrieval_accuracy(const Tensor& img, const Tensor& txt) {
  Tensor a = l2_normalize(img.detach()).to(Device::CPU).to(DType::f64).contiguous();
  Tensor b = l2_normalize(txt.detach()).to(Device::CPU).to(DType::f64).contiguous();
  const int64_t N = a.size(0), E = a.size(1);
  const double* pa = a.data<double>();
  const double* pb = b.data<double>();
  int64_t hits = 0;
  for (int64_t i = 0; i < N; ++i) {
    int64_t best = 0;
    double best_v = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < N; ++j) {
      double d = 0;
      for (int64_t e = 0; e < E; ++e) d += pa[i * E + e] * pb[j * E + e];
      if (d > best_v) best_v = d, best = j;
    }
    hits += best == i;
  }
  return 100.0 * static_cast<double>(hits) / static_cast<double>(N);
}

}  // namespace

std::vector<CaptionPair> read_caption_pairs(const std::string& image_dir,
                                            const std::string& captions_path) {
  TGPT_CHECK(fs::is_directory(image_dir), "CLIP pretraining: image folder '", image_dir,
             "' does not exist");
  const std::string text = read_whole_file(captions_path, "CLIP pretraining: captions");
  const fs::path root(image_dir);
  std::vector<CaptionPair> pairs;
  std::istringstream in(text);
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = str_cat(captions_path, ":", lineno, ": ");
    const size_t tab = line.find('\t');
    TGPT_CHECK(tab != std::string::npos, where, "expected \"key<TAB>caption\", found no tab");
    std::string key = line.substr(0, tab), caption = line.substr(tab + 1);
    TGPT_CHECK(!key.empty(), where, "empty image key");
    TGPT_CHECK(caption.find_first_not_of(" \t") != std::string::npos, where, "empty caption for '",
               key, "'");
    const fs::path rel(key);
    TGPT_CHECK(rel.is_relative(), where, "image key '", key,
               "' must be relative to the image folder");
    // Checked lexically, so images may be symbolic links to files elsewhere.
    const fs::path norm = rel.lexically_normal();
    TGPT_CHECK(!norm.empty() && *norm.begin() != ".." && norm != ".", where, "image key '", key,
               "' leaves the image folder");
    const fs::path full = root / norm;
    TGPT_CHECK(fs::is_regular_file(full), where, "no image file '", full.string(), "'");
    pairs.push_back({full.string(), caption});
  }
  TGPT_CHECK(!pairs.empty(), captions_path, ": no (image, caption) pairs");
  return pairs;
}

ClipPretrainResult run_clip_pretraining(const ClipPretrainOptions& o) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const char* what = "CLIP pretraining";
  TGPT_CHECK(o.lr > 0 && std::isfinite(o.lr), what, ": lr must be positive, got ", o.lr);
  TGPT_CHECK(o.max_iter > 0, what, ": max_iter must be positive, got ", o.max_iter);
  TGPT_CHECK(o.warmup_iter >= 0 && o.warmup_iter <= o.max_iter, what,
             ": warmup_iter must be in [0, max_iter], got ", o.warmup_iter);
  TGPT_CHECK(o.batch_size >= 2, what,
             ": batch_size must be at least 2 (a contrastive batch "
             "needs negatives), got ",
             o.batch_size);
  TGPT_CHECK(o.crop_scale_min > 0 && o.crop_scale_min <= 1, what,
             ": crop_scale_min must be in (0, 1], got ", o.crop_scale_min);
  TGPT_CHECK(o.weight_decay >= 0 && o.clip_grad_norm >= 0, what,
             ": weight_decay and clip_grad_norm must be >= 0");
  TGPT_CHECK(!o.output_dir.empty(), what, ": no output folder");
  TGPT_CHECK(
      o.compute_dtype == DType::f32 || (o.compute_dtype == DType::f64 && o.device == Device::CPU),
      what, ": weights are trained in f32 (or f64 on the CPU), got ", dtype_name(o.compute_dtype),
      " (16-bit weights without f32 master copies would lose "
      "small updates)");

  // Data and tokenizer (all checked before anything is written).
  const std::string captions_path =
      o.captions.empty() ? join_path(o.image_dir, "captions.txt") : o.captions;
  const std::vector<CaptionPair> pairs = read_caption_pairs(o.image_dir, captions_path);
  const Merges merges = load_merges(o.merges);
  const ClipTokenizer& tok = *merges.tokenizer;
  ClipConfig config = o.config;
  TGPT_CHECK(config.vocab_size == 0 || config.vocab_size == tok.vocab_size(), what,
             ": config vocab_size ", config.vocab_size, " differs from the tokenizer's ",
             tok.vocab_size(), " (leave it 0 to take the tokenizer's)");
  config.vocab_size = tok.vocab_size();
  {
    std::vector<std::string> problems = config.problems();
    TGPT_CHECK(problems.empty(), what, ": bad model config: ", problems.front());
  }
  const int64_t npairs = static_cast<int64_t>(pairs.size());
  TGPT_CHECK(npairs >= 2, what, ": ", captions_path, " holds ", npairs,
             " pair; contrastive training needs at least 2");

  fs::create_directories(o.output_dir);
  const std::string log_path = join_path(o.output_dir, "log.txt");
  const std::string ckpt_path = join_path(o.output_dir, "checkpoint-last.safetensors");
  const std::string weights_path = join_path(o.output_dir, "clip.safetensors");
  if (o.resume)
    TGPT_CHECK(fs::exists(ckpt_path), "--resume: no checkpoint at ", ckpt_path);
  else
    keep_existing_log(log_path);
  TrainLog log(o.console, std::nullopt, log_path);
  if (!o.header.empty()) log.line(o.header);
  log.line("Setting fixed seed: " + std::to_string(o.seed));
  log.line(str_cat("Pairs: ", npairs, " (", captions_path, "); tokenizer: ", tok.num_merges(),
                   " merges, vocabulary ", tok.vocab_size()));

  // Decoded images (one per distinct path), captions tokenized once.
  std::vector<std::string> paths;
  std::vector<int64_t> image_of(static_cast<size_t>(npairs));
  {
    std::map<std::string, int64_t> index;
    for (int64_t i = 0; i < npairs; ++i) {
      auto [it, added] =
          index.emplace(pairs[static_cast<size_t>(i)].path, static_cast<int64_t>(paths.size()));
      if (added) paths.push_back(it->first);
      image_of[static_cast<size_t>(i)] = it->second;
    }
  }
  std::vector<Image> images(paths.size());
  std::vector<std::string> errors(paths.size());
  parallel_for(static_cast<int64_t>(paths.size()), [&](int64_t i) {
    try {
      images[static_cast<size_t>(i)] = decode_image_file(paths[static_cast<size_t>(i)]);
    } catch (const std::exception& e) {
      errors[static_cast<size_t>(i)] = str_cat(paths[static_cast<size_t>(i)], ": ", e.what());
    }
  });
  {
    const std::string msg = batch_failure_message(what, errors, 10);
    TGPT_CHECK(msg.empty(), msg);
  }
  std::vector<std::string> texts;
  for (const CaptionPair& p : pairs) texts.push_back(p.caption);
  const int ctx = static_cast<int>(config.context_length);
  const Tensor tokens = tok.tokenize_tensor(texts, ctx, true);  // i32 [npairs, ctx]

  // Model and training loop.
  ClipModel model = ClipModel::init_random(config, o.seed, o.device, o.compute_dtype);
  model.set_bpe_merges(merges.embedded);
  nn::ParameterSet& params = model.mutable_parameters();
  log.line("Model: " + config.name() + ", randomly initialised, on " + device_name(o.device) +
           " (" + dtype_name(o.compute_dtype) + "), " + std::to_string(params.numel()) +
           " parameters");
  std::vector<ParamGroup> groups(2);
  groups[0].name = "decay";
  groups[1].name = "no_decay";
  groups[1].weight_decay = 0.0;
  for (const auto& [name, t] : params.items()) groups[t.dim() >= 2 ? 0 : 1].params.push_back(name);
  TrainerOptions topt;
  topt.max_iter = o.max_iter;
  topt.optimizer = OptimizerKind::adamw;
  topt.adamw = AdamWOptions{o.lr, o.beta1, o.beta2, o.adam_eps, o.weight_decay};
  topt.clip_grad_norm = o.clip_grad_norm;
  topt.eval_every = o.evaluate ? (o.eval_every > 0 ? o.eval_every : o.max_iter) : 0;
  topt.log_every = o.print_every;
  topt.checkpoint_every = o.save_every;
  topt.seed = o.seed;
  topt.metric_name = "acc";
  const WarmupCosineSchedule schedule(o.lr, o.max_iter, o.warmup_iter);
  Trainer trainer(params, schedule, topt, groups, &log);
  RandomSampler sampler(npairs, std::min(o.batch_size, npairs), o.seed);
  const TrainingState state{&trainer, &sampler, {}};
  trainer.set_checkpoint_fn([&](int64_t) { save_checkpoint(ckpt_path, state); });
  if (o.resume) {
    load_checkpoint(ckpt_path, state);
    log.line("Resuming from " + ckpt_path + " at iteration " + std::to_string(trainer.iteration()));
  }

  const int64_t R = config.image_resolution;
  ClipPretrainResult result;
  result.first_loss = std::numeric_limits<double>::quiet_NaN();
  std::deque<double> recent;
  // Image j of a batch: its own generator (reproducible whatever the thread count), a random
  // resized crop, bicubic to R x R, normalised into dst [3, R, R]. Errors name the file.
  auto prepare = [&](const BatchRequest& r, int64_t j, float* dst) {
    const size_t pair = static_cast<size_t>(r.items[static_cast<size_t>(j)]);
    const Image& img = images[static_cast<size_t>(image_of[pair])];
    try {
      std::mt19937_64 rng(r.seed ^ (0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(j + 1)));
      const CropBox box =
          random_resized_crop_box(img.height, img.width, rng, o.crop_scale_min, 1.0);
      normalize_image_into(resize_bicubic(crop_image(img, box), R, R), dst);
    } catch (const std::exception& e) {
      throw Error(str_cat(pairs[pair].path, ": ", e.what()));
    }
  };
  // The input pipeline (data/batch_prefetcher.h): batches predicted from copies of the sampler and
  // the trainer's generator as they stand now (after a resume), prepared ahead on worker threads.
  TrainingBatches batches(o.loader_threads, o.device == Device::CUDA, sampler, trainer, o.max_iter,
                          {3, R, R}, prepare, what, log);
  auto step = [&](int64_t) {
    BatchRequest request;
    request.items = sampler.next_batch();
    const std::vector<int64_t>& idx = request.items;
    const int64_t B = static_cast<int64_t>(idx.size());
    Tensor tok_batch = Tensor::empty({B, ctx}, DType::i32);
    request.seed = trainer.rng()();
    const Tensor batch = batches.next(request);  // [B, 3, R, R]
    for (int64_t j = 0; j < B; ++j) tok_batch.narrow(0, j, 1).copy_(tokens.narrow(0, idx[j], 1));
    const Tensor fi = model.encode_image(batch);     // [B, E]
    const Tensor ft = model.encode_text(tok_batch);  // [B, E]
    StepOutput out;
    out.loss = clip_contrastive_loss(fi, ft, model.logit_scale_param());
    out.items = B;
    out.metric = retrieval_accuracy(fi, ft);
    out.parts = {{"scale", model.logit_scale()}};
    return out;
  };
  trainer.set_step_observer([&](int64_t, const StepOutput& out) {
    const double l = out.loss.detach().to(Device::CPU).item();
    if (std::isnan(result.first_loss) && trainer.iteration() == 1) result.first_loss = l;
    recent.push_back(l);
    if (recent.size() > 10) recent.pop_front();
  });
  EvalFn evaluate;
  if (o.evaluate)
    evaluate = [&](int64_t) {
      NoGradGuard no_grad;
      const double score = o.evaluate(model);  // the trainer logs "Validation at iteration k"
      result.last_eval = score;
      return score;
    };
  install_interrupt_handler();
  const TrainResult tr = trainer.run(step, evaluate);
  log.end_bar();
  batches.log_prediction_dropped(log);
  result.status = tr.status;
  result.iteration = tr.iteration;
  double sum = 0;
  for (double l : recent) sum += l;
  result.last_loss = recent.empty() ? 0.0 : sum / static_cast<double>(recent.size());
  if (tr.status == TrainStatus::finished) {
    save_checkpoint(ckpt_path, state);
    model.save(weights_path);
    result.weights_path = weights_path;
    log.line("Finish training; weights written to " + weights_path);
  }
  result.seconds = std::chrono::duration<double>(clock::now() - t0).count();
  return result;
}

}  // namespace tgpt

/*
 * fewshot_run.cpp — a whole few-shot run, TGP-T or CoOp (train/fewshot_run.h).
 */
#include "train/fewshot_run.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>

#include "base/error.h"
#include "data/batch_prefetcher.h"
#include "data/preprocess.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/schedule.h"
#include "models/clip/zeroshot.h"
#include "train/checkpoint.h"
#include "train/feature_cache.h"
#include "train/sampler.h"

namespace fs = std::filesystem;

namespace tgpt {

namespace {

std::string join_path(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / name).string();
}

std::vector<int64_t> labels_of(const std::vector<LabeledImage>& items, int64_t begin,
                               int64_t count) {
  std::vector<int64_t> out;
  for (int64_t i = begin; i < begin + count; ++i)
    out.push_back(items[static_cast<size_t>(i)].label);
  return out;
}

std::vector<std::string> paths_of(const std::vector<LabeledImage>& items, int64_t begin,
                                  int64_t count) {
  std::vector<std::string> out;
  for (int64_t i = begin; i < begin + count; ++i) out.push_back(items[static_cast<size_t>(i)].path);
  return out;
}

double batch_accuracy(const Tensor& logits, const std::vector<int64_t>& labels) {
  AccuracyMeter m(logits.size(1));
  m.add(logits, labels);
  return m.top1();
}

std::string format_duration(double seconds) {
  return format_eta(seconds);
}

using ImageFeatures = TgptModel::ImageFeatures;

// What a few-shot method gives the run: its parameters, a training step on encoded images,
// logits for evaluation, and its model file.
class Learner {
 public:
  virtual ~Learner() = default;
  virtual nn::ParameterSet& parameters() = 0;
  // The frozen image encoder (no tape): CLS features, and the tokens when the method uses them.
  virtual ImageFeatures encode(const Tensor& images) const = 0;
  virtual StepOutput step(const ImageFeatures& image, const std::vector<int64_t>& labels,
                          const Tensor& captions) = 0;
  virtual void begin_eval() {}
  virtual void end_eval() {}
  // Logits [B,C] without a tape; with `wiseft` non-null, also the WiSE-FT head's from the same
  // forward (left undefined by methods without one).
  virtual Tensor logits(const ImageFeatures& image, Tensor* wiseft = nullptr) const = 0;
  virtual void save(const std::string& path, nlohmann::json meta) const = 0;
};

class TgptLearner : public Learner {
 public:
  explicit TgptLearner(TgptModel& model) : model_(model) {}
  nn::ParameterSet& parameters() override { return model_.parameters(); }
  ImageFeatures encode(const Tensor& images) const override { return model_.encode_images(images); }
  StepOutput step(const ImageFeatures& image, const std::vector<int64_t>& labels,
                  const Tensor& captions) override {
    const TgptModel::Output out = model_.forward(image);
    const TgptModel::Losses l = model_.losses(out, labels, captions);
    StepOutput so;
    so.loss = l.total;
    so.metric = batch_accuracy(model_.logits(out.features), labels);
    so.parts = {{"cls_loss", l.cls.to(Device::CPU).item()},
                {"category_loss", l.category.to(Device::CPU).item()}};
    if (l.content.defined())
      so.parts.emplace_back("content_loss", l.content.to(Device::CPU).item());
    return so;
  }
  Tensor logits(const ImageFeatures& image, Tensor* wiseft) const override {
    NoGradGuard no_grad;
    const Tensor features = model_.forward(image).features;
    if (wiseft) *wiseft = model_.logits_wiseft(features);
    return model_.logits(features);
  }
  void save(const std::string& path, nlohmann::json meta) const override {
    meta["category_queries"] = model_.config().category_queries;
    meta["content_queries"] = model_.config().content_queries;
    model_.parameters().save(
        path,
        {{"tgpt.format", "tgpt-prompt"}, {"tgpt.format_version", "1"}, {"tgpt.tgpt", meta.dump()}});
  }

 private:
  TgptModel& model_;
};

class CoopLearner : public Learner {
 public:
  CoopLearner(CoopModel& model, int64_t eval_chunk) : model_(model), chunk_(eval_chunk) {}
  nn::ParameterSet& parameters() override { return model_.parameters(); }
  ImageFeatures encode(const Tensor& images) const override {
    NoGradGuard no_grad;
    return {model_.clip().encode_image(images), Tensor()};
  }
  StepOutput step(const ImageFeatures& image, const std::vector<int64_t>& labels,
                  const Tensor&) override {
    const Tensor logits = model_.logits(image.cls, model_.text_features());  // [B,C]
    const int64_t B = static_cast<int64_t>(labels.size());
    StepOutput so;
    so.loss = cross_entropy(logits, Tensor::from_data(labels.data(), {B}).to(logits.device()));
    so.metric = batch_accuracy(logits.detach(), labels);
    return so;
  }
  void begin_eval() override { text_ = model_.class_text_features(chunk_); }
  void end_eval() override { text_ = Tensor(); }
  Tensor logits(const ImageFeatures& image, Tensor*) const override {
    NoGradGuard no_grad;
    TGPT_CHECK(text_.defined(), "CoOp: logits outside an evaluation");
    return model_.logits(image.cls, text_);
  }
  void save(const std::string& path, nlohmann::json meta) const override {
    meta["n_ctx"] = model_.n_ctx();
    model_.parameters().save(
        path,
        {{"tgpt.format", "tgpt-coop"}, {"tgpt.format_version", "1"}, {"tgpt.coop", meta.dump()}},
        /*trainable_only=*/true);
  }

 private:
  CoopModel& model_;
  int64_t chunk_;
  Tensor text_;  // [C,E] class text features during an evaluation
};

// Plain (and WiSE-FT, when the method has one) accuracy of a learner on images.
void evaluate_learner(Learner& learner, const std::vector<LabeledImage>& items, int64_t R,
                      int64_t batch_size, AccuracyMeter& plain, AccuracyMeter* wiseft,
                      TrainLog* progress) {
  const int64_t n = static_cast<int64_t>(items.size());
  learner.begin_eval();
  for (int64_t b = 0; b < n; b += batch_size) {
    const int64_t len = std::min(batch_size, n - b);
    const ImageFeatures f =
        learner.encode(preprocess_image_files(paths_of(items, b, len), R, false));
    const std::vector<int64_t> labels = labels_of(items, b, len);
    Tensor w;
    plain.add(learner.logits(f, wiseft ? &w : nullptr), labels);
    if (w.defined()) wiseft->add(w, labels);
    if (progress && progress->terminal()) {
      char buf[128];
      std::snprintf(buf, sizeof buf, "evaluating %lld/%lld images", static_cast<long long>(b + len),
                    static_cast<long long>(n));
      progress->bar(buf);
    }
  }
  learner.end_eval();
  if (progress && progress->terminal()) progress->end_bar();
}

// Every item's features (CPU f32 [N,E], with tokens [N,T,E]): from the on-disk cache when it
// holds them, else encoded batch by batch and, with a cache, stored.
ImageFeatures encode_items(const Learner& learner, const std::vector<LabeledImage>& items,
                           int64_t R, int64_t batch_size, int64_t E, int64_t T, bool tokens,
                           const ImageFeatureCache* cache, const FewshotRunOptions& o,
                           TrainLog& log, const char* what, bool progress) {
  const int64_t n = static_cast<int64_t>(items.size());
  auto encode = [&]() -> CachedImageFeatures {
    ImageFeatures all{Tensor::empty({n, E}), tokens ? Tensor::empty({n, T, E}) : Tensor()};
    for (int64_t b = 0; b < n; b += batch_size) {
      const int64_t len = std::min(batch_size, n - b);
      const ImageFeatures f =
          learner.encode(preprocess_image_files(paths_of(items, b, len), R, false));
      all.cls.narrow(0, b, len).copy_(f.cls);
      if (tokens) all.tokens.narrow(0, b, len).copy_(f.tokens);
      if (progress && log.terminal()) {
        char buf[128];
        std::snprintf(buf, sizeof buf, "encoding the %s set: %lld/%lld images", what,
                      static_cast<long long>(b + len), static_cast<long long>(n));
        log.bar(buf);
      }
    }
    if (progress && log.terminal()) log.end_bar();
    return {all.cls, all.tokens};
  };
  const CachedImageFeatures f =
      cache ? cache->load_or_encode(
                  cache->key(paths_of(items, 0, n), R, o.compute_dtype, o.device, tokens), n, E,
                  tokens ? T : 0, encode, [&log](const std::string& m) { log.line(m); }, what)
            : encode();
  return {f.cls, f.tokens};
}

// Plain (and WiSE-FT) accuracy of a learner on features encoded before.
void evaluate_features(Learner& learner, const ImageFeatures& all,
                       const std::vector<LabeledImage>& items, int64_t batch_size,
                       AccuracyMeter& plain, AccuracyMeter* wiseft) {
  const int64_t n = static_cast<int64_t>(items.size());
  learner.begin_eval();
  for (int64_t b = 0; b < n; b += batch_size) {
    const int64_t len = std::min(batch_size, n - b);
    const ImageFeatures f{all.cls.narrow(0, b, len),
                          all.tokens.defined() ? all.tokens.narrow(0, b, len) : Tensor()};
    const std::vector<int64_t> labels = labels_of(items, b, len);
    Tensor w;
    plain.add(learner.logits(f, wiseft ? &w : nullptr), labels);
    if (w.defined()) wiseft->add(w, labels);
  }
  learner.end_eval();
}

}  // namespace

const char* fewshot_method_name(FewshotMethod m) {
  switch (m) {
    case FewshotMethod::tgpt: return "tgpt";
    case FewshotMethod::coop: return "coop";
    case FewshotMethod::probe: return "probe";
  }
  return "?";
}

FewshotMethod parse_fewshot_method(const std::string& s) {
  if (s == "tgpt") return FewshotMethod::tgpt;
  if (s == "coop") return FewshotMethod::coop;
  if (s == "probe") return FewshotMethod::probe;
  TGPT_FAIL("unknown method '", s, "' (expected tgpt, coop or probe)");
}

Tensor tgpt_zeroshot_head_from_templates(const ClipModel& clip, const ClipTokenizer& tokenizer,
                                         const std::vector<std::string>& classnames,
                                         const std::vector<std::string>& templates,
                                         int64_t batch_size) {
  const ZeroShotClassifier zs =
      build_zeroshot_classifier(clip, tokenizer, class_prompts(classnames, templates), batch_size);
  return tgpt_zeroshot_head(zs.class_features);
}

void evaluate_tgpt(TgptModel& model, const std::vector<LabeledImage>& items, int64_t batch_size,
                   AccuracyMeter& plain, AccuracyMeter& wiseft, TrainLog* progress) {
  TGPT_CHECK(batch_size > 0, "evaluate: batch size must be positive, got ", batch_size);
  TgptLearner learner(model);
  evaluate_learner(learner, items, model.clip().config().image_resolution, batch_size, plain,
                   &wiseft, progress);
}

FewshotRunResult run_fewshot_training(const FewshotRunOptions& o, const FewshotData& data) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  TGPT_CHECK(o.method != FewshotMethod::probe,
             "few-shot training: the linear probe runs through run_linear_probe");
  const bool is_tgpt = o.method == FewshotMethod::tgpt;
  const int64_t C = static_cast<int64_t>(data.classnames.size());
  TGPT_CHECK(C > 0, "few-shot training: no classes");
  TGPT_CHECK(!data.train.empty(), "few-shot training: no training images");
  TGPT_CHECK(data.train_captions.empty() || data.train_captions.size() == data.train.size(),
             "few-shot training: ", data.train_captions.size(), " captions for ", data.train.size(),
             " training images");
  for (const auto* list : {&data.train, &data.val, &data.test})
    for (const LabeledImage& it : *list)
      TGPT_CHECK(it.label >= 0 && it.label < C, "few-shot training: ", it.path, " has label ",
                 it.label, " outside [0, ", C, ")");
  TGPT_CHECK(o.lr > 0 && o.max_iter > 0 && o.batch_size > 0 && o.test_batch_size > 0,
             "few-shot training: lr, max_iter and the batch sizes must be positive");
  fs::create_directories(o.output_dir);
  const std::string log_path = join_path(o.output_dir, "log.txt");
  const std::string ckpt_path = join_path(o.output_dir, "checkpoint-last.safetensors");
  if (o.resume)
    TGPT_CHECK(fs::exists(ckpt_path), "--resume: no checkpoint at ", ckpt_path);
  else
    keep_existing_log(log_path);
  TrainLog log(o.console, std::nullopt, log_path);
  char buf[1024];

  if (!o.header.empty()) log.line(o.header);
  log.line("Setting fixed seed: " + std::to_string(o.seed));
  std::snprintf(
      buf, sizeof buf, "Dataset %s: %lld classes, %lld train, %lld val, %lld test images%s",
      data.dataset.c_str(), static_cast<long long>(C), static_cast<long long>(data.train.size()),
      static_cast<long long>(data.val.size()), static_cast<long long>(data.test.size()),
      is_tgpt && data.train_captions.empty()
          ? " (no captions: category supervision only, no content loss)"
          : "");
  log.line(buf);

  // Model.
  const ClipModel clip = ClipModel::load(o.weights, o.device, o.compute_dtype);
  const ClipTokenizer tok = clip_tokenizer_for(clip, o.merges, o.weights);
  log.line(std::string("Loading trainer: ") + (is_tgpt ? "TGP-T" : "CoOp"));
  log.line("Loading CLIP (backbone: " + clip.config().name() + ") on " +
           device_name(clip.device()) + " (" + dtype_name(clip.compute_dtype()) + ")");
  std::unique_ptr<TgptModel> tgpt_model;
  std::unique_ptr<CoopModel> coop_model;
  std::unique_ptr<Learner> learner;
  Tensor captions;  // TGP-T: i32 [Ntrain, ctx]
  const int ctx = static_cast<int>(clip.config().context_length);
  if (is_tgpt) {
    TgptConfig cfg = o.tgpt;
    cfg.num_classes = C;
    Generator gen(o.seed);
    tgpt_model = std::make_unique<TgptModel>(clip, cfg, tgpt_token_ids(tok, o.init_text), gen);
    log.line("Initial context: \"" + o.init_text + "\"");
    TGPT_CHECK(!o.templates.empty(), "TGP-T training: no templates for the zero-shot head");
    tgpt_model->set_zeroshot_head(tgpt_zeroshot_head_from_templates(
        clip, tok, data.classnames, o.templates, o.test_batch_size));
    tgpt_model->set_category_sentences(tgpt_category_sentence_tokens(tok, data.classnames, ctx));
    if (!data.train_captions.empty())
      captions = tok.tokenize_tensor(data.train_captions, ctx, true);
    learner = std::make_unique<TgptLearner>(*tgpt_model);
  } else {
    CoopOptions co = o.coop;
    co.seed = o.seed;
    coop_model = std::make_unique<CoopModel>(clip, tok, data.classnames, co);
    log.line("Initial context: \"" +
             (co.init_text.empty() ? std::to_string(coop_model->n_ctx()) + " x X" : co.init_text) +
             "\"");
    learner = std::make_unique<CoopLearner>(*coop_model, o.test_batch_size);
  }
  log.line("Turning off gradients in both the image and the text encoder");
  std::snprintf(buf, sizeof buf, "Trainable parameters: %lld",
                static_cast<long long>(learner->parameters().numel(true)));
  log.line(buf);

  // The on-disk cache of frozen image features (val and test sets), when asked for.
  std::optional<ImageFeatureCache> feature_cache;
  if (!o.feature_cache_dir.empty()) {
    feature_cache.emplace(o.feature_cache_dir, o.weights);
    log.line("Image feature cache: " + o.feature_cache_dir);
  }

  // Validation images: encoded once when they fit the cache.
  const int64_t R = clip.config().image_resolution, E = clip.config().embed_dim;
  const int64_t T = clip.config().vision_tokens();
  const int64_t nval = static_cast<int64_t>(data.val.size());
  const int64_t per_image = (is_tgpt ? (T + 1) : 1) * E * 4;
  const bool cache_val = nval > 0 && nval * per_image <= o.val_cache_bytes;
  ImageFeatures val_cache;  // CPU f32 [nval,E] (+ [nval,T,E])
  auto validate = [&](int64_t) {
    AccuracyMeter plain(C);
    if (cache_val) {
      if (!val_cache.cls.defined())
        val_cache = encode_items(*learner, data.val, R, o.test_batch_size, E, T, is_tgpt,
                                 feature_cache ? &*feature_cache : nullptr, o, log, "val", false);
      evaluate_features(*learner, val_cache, data.val, o.test_batch_size, plain, nullptr);
    } else {
      evaluate_learner(*learner, data.val, R, o.test_batch_size, plain, nullptr, nullptr);
    }
    log.line("Evaluate on the *val* set");
    std::string block = result_block(plain);
    if (!block.empty() && block.back() == '\n') block.pop_back();
    log.line(block);
    return plain.top1();
  };

  // Training.
  std::unique_ptr<Scheduler> schedule;
  TrainerOptions topt;
  topt.max_iter = o.max_iter;
  if (is_tgpt) {
    schedule = std::make_unique<WarmupCosineSchedule>(o.lr, o.max_iter, o.warmup_iter);
    topt.optimizer = OptimizerKind::adamw;
    topt.adamw = AdamWOptions::tgpt(o.lr);
    if (o.weight_decay >= 0) topt.adamw.weight_decay = o.weight_decay;
  } else {
    schedule = std::make_unique<ConstantWarmupCosineSchedule>(
        o.lr, o.max_iter, std::min(o.warmup_iter, o.max_iter), o.warmup_lr);
    topt.optimizer = OptimizerKind::sgd;
    topt.sgd.momentum = o.momentum;
    topt.sgd.weight_decay = o.weight_decay >= 0 ? o.weight_decay : 5e-4;
  }
  topt.eval_every = data.val.empty() ? 0 : (o.eval_every > 0 ? o.eval_every : o.max_iter);
  topt.log_every = o.print_every;
  topt.checkpoint_every = o.save_every;
  topt.num_classes = C;
  topt.seed = o.seed;
  Trainer trainer(learner->parameters(), *schedule, topt, {}, &log);
  RandomSampler sampler(static_cast<int64_t>(data.train.size()), o.batch_size, o.seed);
  const TrainingState state{&trainer, &sampler, {}};
  trainer.set_checkpoint_fn([&](int64_t) { save_checkpoint(ckpt_path, state); });
  if (o.resume) {
    load_checkpoint(ckpt_path, state);
    log.line("Resuming from " + ckpt_path + " at iteration " + std::to_string(trainer.iteration()));
  }

  // The input pipeline: batches predicted from copies of the sampler and the trainer's generator
  // as they stand now (after a resume), prepared ahead on worker threads.
  std::vector<std::string> train_paths;
  for (const LabeledImage& it : data.train) train_paths.push_back(it.path);
  TrainingBatches batches(
      o.loader_threads, clip.device() == Device::CUDA, sampler, trainer, o.max_iter, {3, R, R},
      train_image_prepare(std::move(train_paths), R, o.train_transform), "training batch", log);

  auto step = [&](int64_t) {
    BatchRequest request;
    request.items = sampler.next_batch();
    request.seed = trainer.rng()();
    const std::vector<int64_t>& idx = request.items;
    std::vector<int64_t> labels;
    for (int64_t i : idx) labels.push_back(data.train[static_cast<size_t>(i)].label);
    const Tensor images = batches.next(request);  // [B, 3, R, R]
    Tensor cap;
    if (captions.defined()) {
      cap = Tensor::empty({static_cast<int64_t>(idx.size()), captions.size(1)}, DType::i32);
      for (size_t j = 0; j < idx.size(); ++j)
        cap.narrow(0, static_cast<int64_t>(j), 1).copy_(captions.narrow(0, idx[j], 1));
    }
    StepOutput so = learner->step(learner->encode(images), labels, cap);
    so.items = static_cast<int64_t>(idx.size());
    return so;
  };
  install_interrupt_handler();
  const TrainResult tr = trainer.run(step, topt.eval_every > 0 ? EvalFn(validate) : EvalFn());
  log.end_bar();
  batches.log_prediction_dropped(log);
  FewshotRunResult result;
  result.status = tr.status;
  result.iteration = tr.iteration;
  if (tr.status == TrainStatus::interrupted) {
    result.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    return result;
  }
  save_checkpoint(ckpt_path, state);
  nlohmann::json meta = {{"method", fewshot_method_name(o.method)},
                         {"dataset", data.dataset},
                         {"classnames", data.classnames},
                         {"num_classes", C},
                         {"iteration", tr.iteration}};
  learner->save(join_path(o.output_dir, "model-last.safetensors"), meta);

  // Test with the best-val parameters.
  log.line("Finish training");
  if (trainer.has_best()) {
    result.best_val = trainer.best_score();
    result.best_iteration = trainer.best_iteration();
    trainer.restore_best();
    std::snprintf(buf, sizeof buf,
                  "Deploy the model with the best val performance (iteration %lld, val %.2f%%)",
                  static_cast<long long>(trainer.best_iteration()), trainer.best_score());
    log.line(buf);
    meta["iteration"] = trainer.best_iteration();
  } else {
    log.line("Deploy the last-iteration model");
  }
  learner->save(join_path(o.output_dir, "model-best.safetensors"), meta);
  AccuracyMeter plain(C), wiseft(C);
  if (!data.test.empty()) {
    log.line("Evaluate on the *test* set");
    const int64_t ntest = static_cast<int64_t>(data.test.size());
    if (feature_cache && ntest * per_image <= o.val_cache_bytes) {
      const ImageFeatures test_features =
          encode_items(*learner, data.test, R, o.test_batch_size, E, T, is_tgpt, &*feature_cache, o,
                       log, "test", true);
      evaluate_features(*learner, test_features, data.test, o.test_batch_size, plain, &wiseft);
    } else {
      evaluate_learner(*learner, data.test, R, o.test_batch_size, plain, &wiseft, &log);
    }
    const bool has_wiseft = wiseft.count() > 0;
    std::string block = result_block(plain);
    if (has_wiseft) {
      std::snprintf(buf, sizeof buf, "* accuracy_wiseft: %.2f%%", wiseft.top1());
      block += buf;
    } else if (!block.empty() && block.back() == '\n') {
      block.pop_back();
    }
    log.line(block);
    result.test_accuracy = plain.top1();
    result.test_accuracy_wiseft = has_wiseft ? wiseft.top1() : plain.top1();
    nlohmann::json extra = o.run_info;
    extra["method"] = fewshot_method_name(o.method);
    extra["dataset"] = data.dataset;
    if (has_wiseft) extra["accuracy_wiseft"] = wiseft.top1();
    extra["best_val_accuracy"] = trainer.has_best() ? nlohmann::json(result.best_val) : nullptr;
    extra["best_iteration"] = trainer.has_best() ? nlohmann::json(result.best_iteration) : nullptr;
    extra["iterations"] = tr.iteration;
    extra["weights"] = o.weights;
    write_metrics(o.output_dir, plain, data.classnames, extra);
    if (has_wiseft) {
      const nlohmann::json test_json = {{"test acc", plain.top1()},
                                        {"test acc (wiseft_0.5)", wiseft.top1()}};
      write_text_file_atomic(join_path(o.output_dir, "test.json"), test_json.dump(2) + "\n");
    }
  }
  result.seconds = std::chrono::duration<double>(clock::now() - t0).count();
  log.line("Elapsed: " + format_duration(result.seconds));
  return result;
}

}  // namespace tgpt

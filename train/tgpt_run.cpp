/*
 * tgpt_run.cpp — a whole TGP-T few-shot run (train/tgpt_run.h).
 */
#include "train/tgpt_run.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>

#include "base/error.h"
#include "data/preprocess.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/schedule.h"
#include "models/clip/zeroshot.h"
#include "train/checkpoint.h"
#include "train/sampler.h"

namespace fs = std::filesystem;

namespace tgpt {

namespace {

std::string join_path(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / name).string();
}

// Dassl keeps an existing log as log.txt-YYYY-MM-DD-HH-MM-SS.
void keep_old_log(const std::string& path) {
  if (!fs::exists(path)) return;
  const std::time_t now = std::time(nullptr);
  char stamp[64];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d-%H-%M-%S", std::localtime(&now));
  fs::rename(path, path + "-" + stamp);
}

std::vector<int64_t> labels_of(const std::vector<LabeledImage>& items, int64_t begin,
                               int64_t count) {
  std::vector<int64_t> out;
  for (int64_t i = begin; i < begin + count; ++i) out.push_back(items[static_cast<size_t>(i)].label);
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

std::string format_duration(double seconds) { return format_eta(seconds); }

// Every TGP-T tensor (official names) with the run's identity in the metadata.
void save_model(const TgptModel& model, const std::string& path, const TgptTrainData& data,
                int64_t iteration) {
  const nlohmann::json meta = {{"dataset", data.dataset},
                               {"classnames", data.classnames},
                               {"num_classes", model.num_classes()},
                               {"category_queries", model.config().category_queries},
                               {"content_queries", model.config().content_queries},
                               {"iteration", iteration}};
  model.parameters().save(path, {{"tgpt.format", "tgpt-prompt"},
                                 {"tgpt.format_version", "1"},
                                 {"tgpt.tgpt", meta.dump()}});
}

// Encoder outputs of a fixed image list, computed once (the val set during training).
struct ImageCache {
  Tensor cls;     // [N,E] f32 CPU
  Tensor tokens;  // [N,T,E] f32 CPU
};

}  // namespace

void evaluate_tgpt(const TgptModel& model, const std::vector<LabeledImage>& items,
                   int64_t batch_size, AccuracyMeter& plain, AccuracyMeter& wiseft,
                   TrainLog* progress) {
  TGPT_CHECK(batch_size > 0, "evaluate: batch size must be positive, got ", batch_size);
  const int64_t n = static_cast<int64_t>(items.size());
  const int64_t R = model.clip().config().image_resolution;
  for (int64_t b = 0; b < n; b += batch_size) {
    const int64_t len = std::min(batch_size, n - b);
    const Tensor images = preprocess_image_files(paths_of(items, b, len), R, false);
    NoGradGuard no_grad;
    const TgptModel::Output out = model.forward(model.encode_images(images));
    const std::vector<int64_t> labels = labels_of(items, b, len);
    plain.add(model.logits(out.features), labels);
    wiseft.add(model.logits_wiseft(out.features), labels);
    if (progress && progress->terminal()) {
      char buf[128];
      std::snprintf(buf, sizeof buf, "evaluating %lld/%lld images", static_cast<long long>(b + len),
                    static_cast<long long>(n));
      progress->bar(buf);
    }
  }
  if (progress && progress->terminal()) progress->end_bar();
}

TgptTrainResult run_tgpt_training(const TgptTrainOptions& o, const TgptTrainData& data) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const int64_t C = static_cast<int64_t>(data.classnames.size());
  TGPT_CHECK(C > 0, "TGP-T training: no classes");
  TGPT_CHECK(!data.train.empty(), "TGP-T training: no training images");
  TGPT_CHECK(data.train_captions.empty() || data.train_captions.size() == data.train.size(),
             "TGP-T training: ", data.train_captions.size(), " captions for ", data.train.size(),
             " training images");
  for (const auto* list : {&data.train, &data.val, &data.test})
    for (const LabeledImage& it : *list)
      TGPT_CHECK(it.label >= 0 && it.label < C, "TGP-T training: ", it.path, " has label ",
                 it.label, " outside [0, ", C, ")");
  TGPT_CHECK(o.lr > 0 && o.max_iter > 0 && o.batch_size > 0 && o.test_batch_size > 0,
             "TGP-T training: lr, max_iter and the batch sizes must be positive");
  fs::create_directories(o.output_dir);
  const std::string log_path = join_path(o.output_dir, "log.txt");
  const std::string ckpt_path = join_path(o.output_dir, "checkpoint-last.safetensors");
  if (o.resume)
    TGPT_CHECK(fs::exists(ckpt_path), "--resume: no checkpoint at ", ckpt_path);
  else
    keep_old_log(log_path);
  TrainLog log(o.console, std::nullopt, log_path);
  char buf[1024];

  if (!o.header.empty()) log.line(o.header);
  log.line("Setting fixed seed: " + std::to_string(o.seed));
  std::snprintf(buf, sizeof buf,
                "Dataset %s: %lld classes, %lld train, %lld val, %lld test images%s",
                data.dataset.c_str(), static_cast<long long>(C),
                static_cast<long long>(data.train.size()), static_cast<long long>(data.val.size()),
                static_cast<long long>(data.test.size()),
                data.train_captions.empty() ? " (no captions: category supervision only)" : "");
  log.line(buf);

  // Model.
  const ClipModel clip = ClipModel::load(o.weights, o.device, o.compute_dtype);
  const ClipTokenizer tok = clip_tokenizer_for(clip, o.merges, o.weights);
  log.line("Loading CLIP (backbone: " + clip.config().name() + ") on " +
           device_name(clip.device()) + " (" + dtype_name(clip.compute_dtype()) + ")");
  TgptConfig cfg = o.model;
  cfg.num_classes = C;
  Generator gen(o.seed);
  TgptModel model(clip, cfg, tgpt_token_ids(tok, o.init_text), gen);
  log.line("Initial context: \"" + o.init_text + "\"");
  log.line("Turning off gradients in both the image and the text encoder");
  TGPT_CHECK(!o.templates.empty(), "TGP-T training: no templates for the zero-shot head");
  {
    const ZeroShotClassifier zs = build_zeroshot_classifier(
        clip, tok, class_prompts(data.classnames, o.templates), o.test_batch_size);
    model.set_zeroshot_head(tgpt_zeroshot_head(zs.class_features));
  }
  model.set_category_sentences(tgpt_category_sentence_tokens(
      tok, data.classnames, static_cast<int>(clip.config().context_length)));
  Tensor captions;  // i32 [Ntrain, ctx]
  if (!data.train_captions.empty())
    captions = tok.tokenize_tensor(data.train_captions,
                                   static_cast<int>(clip.config().context_length), true);
  std::snprintf(buf, sizeof buf, "Trainable parameters: %lld",
                static_cast<long long>(model.parameters().numel(true)));
  log.line(buf);

  // Validation images: encoded once when they fit the cache.
  const int64_t R = clip.config().image_resolution, E = clip.config().embed_dim;
  const int64_t T = clip.config().vision_tokens();
  const int64_t nval = static_cast<int64_t>(data.val.size());
  const bool cache_val = nval > 0 && nval * (T + 1) * E * 4 <= o.val_cache_bytes;
  ImageCache val_cache;
  auto validate = [&](int64_t k) {
    (void)k;
    AccuracyMeter plain(C), wiseft(C);
    if (cache_val) {
      if (!val_cache.cls.defined()) {
        val_cache.cls = Tensor::empty({nval, E});
        val_cache.tokens = Tensor::empty({nval, T, E});
        for (int64_t b = 0; b < nval; b += o.test_batch_size) {
          const int64_t len = std::min(o.test_batch_size, nval - b);
          const TgptModel::ImageFeatures f =
              model.encode_images(preprocess_image_files(paths_of(data.val, b, len), R, false));
          val_cache.cls.narrow(0, b, len).copy_(f.cls);
          val_cache.tokens.narrow(0, b, len).copy_(f.tokens);
        }
      }
      for (int64_t b = 0; b < nval; b += o.test_batch_size) {
        const int64_t len = std::min(o.test_batch_size, nval - b);
        NoGradGuard no_grad;
        const TgptModel::Output out = model.forward(
            {val_cache.cls.narrow(0, b, len), val_cache.tokens.narrow(0, b, len)});
        plain.add(model.logits(out.features), labels_of(data.val, b, len));
      }
    } else {
      evaluate_tgpt(model, data.val, o.test_batch_size, plain, wiseft);
    }
    log.line("Evaluate on the *val* set");
    std::string block = result_block(plain);
    if (!block.empty() && block.back() == '\n') block.pop_back();
    log.line(block);
    return plain.top1();
  };

  // Training.
  const WarmupCosineSchedule schedule(o.lr, o.max_iter, o.warmup_iter);
  TrainerOptions topt;
  topt.max_iter = o.max_iter;
  topt.adamw = AdamWOptions::tgpt(o.lr);
  topt.eval_every = data.val.empty() ? 0 : (o.eval_every > 0 ? o.eval_every : o.max_iter);
  topt.log_every = o.print_every;
  topt.checkpoint_every = o.save_every;
  topt.num_classes = C;
  topt.seed = o.seed;
  Trainer trainer(model.parameters(), schedule, topt, {}, &log);
  RandomSampler sampler(static_cast<int64_t>(data.train.size()), o.batch_size, o.seed);
  const TrainingState state{&trainer, &sampler, {}};
  trainer.set_checkpoint_fn([&](int64_t) { save_checkpoint(ckpt_path, state); });
  if (o.resume) {
    load_checkpoint(ckpt_path, state);
    log.line("Resuming from " + ckpt_path + " at iteration " +
             std::to_string(trainer.iteration()));
  }

  auto step = [&](int64_t) {
    const std::vector<int64_t> idx = sampler.next_batch();
    std::vector<std::string> paths;
    std::vector<int64_t> labels;
    for (int64_t i : idx) {
      paths.push_back(data.train[static_cast<size_t>(i)].path);
      labels.push_back(data.train[static_cast<size_t>(i)].label);
    }
    const Tensor images = preprocess_image_files(paths, R, true, trainer.rng()());
    Tensor cap;
    if (captions.defined()) {
      cap = Tensor::empty({static_cast<int64_t>(idx.size()), captions.size(1)}, DType::i32);
      for (size_t j = 0; j < idx.size(); ++j)
        cap.narrow(0, static_cast<int64_t>(j), 1).copy_(captions.narrow(0, idx[j], 1));
    }
    const TgptModel::Output out = model.forward(model.encode_images(images));
    const TgptModel::Losses l = model.losses(out, labels, cap);
    StepOutput so;
    so.loss = l.total;
    so.items = static_cast<int64_t>(idx.size());
    so.metric = batch_accuracy(model.logits(out.features), labels);
    so.parts = {{"cls_loss", l.cls.to(Device::CPU).item()},
                {"category_loss", l.category.to(Device::CPU).item()}};
    if (l.content.defined()) so.parts.emplace_back("content_loss", l.content.to(Device::CPU).item());
    return so;
  };
  install_interrupt_handler();
  const TrainResult tr = trainer.run(step, topt.eval_every > 0 ? EvalFn(validate) : EvalFn());
  log.end_bar();
  TgptTrainResult result;
  result.status = tr.status;
  result.iteration = tr.iteration;
  if (tr.status == TrainStatus::interrupted) {
    result.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    return result;
  }
  save_checkpoint(ckpt_path, state);
  save_model(model, join_path(o.output_dir, "model-last.safetensors"), data, tr.iteration);

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
  } else {
    log.line("Deploy the last-iteration model");
  }
  save_model(model, join_path(o.output_dir, "model-best.safetensors"), data,
             trainer.has_best() ? trainer.best_iteration() : tr.iteration);
  AccuracyMeter plain(C), wiseft(C);
  if (!data.test.empty()) {
    log.line("Evaluate on the *test* set");
    evaluate_tgpt(model, data.test, o.test_batch_size, plain, wiseft, &log);
    std::string block = result_block(plain);
    std::snprintf(buf, sizeof buf, "* accuracy_wiseft: %.2f%%", wiseft.top1());
    log.line(block + buf);
    result.test_accuracy = plain.top1();
    result.test_accuracy_wiseft = wiseft.top1();
    nlohmann::json extra = o.run_info;
    extra["dataset"] = data.dataset;
    extra["accuracy_wiseft"] = wiseft.top1();
    extra["best_val_accuracy"] = trainer.has_best() ? nlohmann::json(result.best_val) : nullptr;
    extra["best_iteration"] = trainer.has_best() ? nlohmann::json(result.best_iteration) : nullptr;
    extra["iterations"] = tr.iteration;
    extra["weights"] = o.weights;
    write_metrics(o.output_dir, plain, data.classnames, extra);
    const nlohmann::json test_json = {{"test acc", plain.top1()},
                                      {"test acc (wiseft_0.5)", wiseft.top1()}};
    write_text_file_atomic(join_path(o.output_dir, "test.json"), test_json.dump(2) + "\n");
  }
  result.seconds = std::chrono::duration<double>(clock::now() - t0).count();
  log.line("Elapsed: " + format_duration(result.seconds));
  return result;
}

}  // namespace tgpt

/*
 * tgpt_replay.cpp — TGP-T replay: fixed batch, given initial state, full trace
 * (train/tgpt_replay.h).
 */
#include "train/tgpt_replay.h"

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "base/error.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/safetensors.h"
#include "engine/schedule.h"
#include "models/clip/zeroshot.h"
#include "models/tgpt/tgpt.h"

namespace tgpt {

namespace {

Tensor required(const SafetensorsFile& f, const std::string& name, const std::string& what) {
  TGPT_CHECK(f.contains(name), f.path(), ": the ", what, " has no tensor '", name,
             "' (it has: ", [&] {
               std::string s;
               for (const std::string& n : f.names()) s += (s.empty() ? "" : ", ") + n;
               return s;
             }(),
             ")");
  return f.get(name);
}

std::vector<int64_t> labels_of(const Tensor& t, const std::string& where) {
  TGPT_CHECK(!dtype_is_float(t.dtype()) && t.dim() == 1, where,
             ": labels must be an integer tensor [B], got ", t.str());
  std::vector<int64_t> out;
  for (double v : t.to(DType::f64).to_double_vector()) out.push_back(static_cast<int64_t>(v));
  return out;
}

// A copy (never a view of live state) as f32 on the CPU.
Tensor f32_cpu(const Tensor& t) { return t.detach().to(Device::CPU).to(DType::f32).clone(); }

}  // namespace

void run_tgpt_replay(const TgptReplayOptions& o, TrainLog* log) {
  TGPT_CHECK(o.steps >= 1, "replay: --steps must be at least 1, got ", o.steps);
  TGPT_CHECK(o.max_iter >= o.steps, "replay: --max-iter (", o.max_iter,
             ") must be at least --steps (", o.steps, ")");
  TGPT_CHECK(o.lr > 0, "replay: --lr must be positive, got ", o.lr);
  TGPT_CHECK(!o.trace.empty(), "replay: no --trace output file");

  const ClipModel clip = ClipModel::load(o.weights, o.device, o.compute_dtype);
  const ClipTokenizer tokenizer = clip_tokenizer_for(clip, o.merges, o.weights);
  const int64_t ctx = clip.config().context_length;

  // The batch.
  const SafetensorsFile batch = SafetensorsFile::open(o.batch);
  const Tensor images = required(batch, "images", "batch");
  const std::vector<int64_t> labels =
      labels_of(required(batch, "labels", "batch"), o.batch + ": labels");
  const Tensor captions = required(batch, "caption_tokens", "batch");
  const Tensor sentences = required(batch, "category_sentence_tokens", "batch");
  const int64_t B = static_cast<int64_t>(labels.size());
  TGPT_CHECK(images.dim() == 4 && images.size(0) == B, o.batch, ": images must be [", B,
             ", 3, R, R] (one per label), got ", images.shape().str());
  TGPT_CHECK(captions.dim() == 2 && captions.size(0) == B && captions.size(1) == ctx, o.batch,
             ": caption_tokens must be [", B, ", ", ctx, "], got ", captions.shape().str());
  TGPT_CHECK(sentences.dim() == 2 && sentences.size(1) == ctx, o.batch,
             ": category_sentence_tokens must be [C, ", ctx, "], got ",
             sentences.shape().str());

  // The initial state: its shapes give the query counts and the class count.
  const SafetensorsFile init = SafetensorsFile::open(o.init);
  const Tensor qc = required(init, "prompt_learner.query_category", "initial state");
  const Tensor qn = required(init, "prompt_learner.query_content", "initial state");
  const Tensor zs = required(init, "zs_weights", "initial state");
  TGPT_CHECK(qc.dim() == 3 && qn.dim() == 3 && zs.dim() == 2, o.init,
             ": queries must be [1, N, W] and zs_weights [C, 2E]");
  TgptConfig cfg;
  cfg.category_queries = qc.size(1);
  cfg.content_queries = qn.size(1);
  cfg.num_classes = zs.size(0);
  TGPT_CHECK(sentences.size(0) == cfg.num_classes, o.batch, ": category_sentence_tokens has ",
             sentences.size(0), " rows but the initial state's zs_weights has ", cfg.num_classes,
             " classes");
  Generator gen(0);  // every value is replaced by the initial state
  TgptModel model(clip, cfg, tgpt_token_ids(tokenizer, ""), gen);
  std::map<std::string, Tensor> init_tensors;
  for (const std::string& name : init.names()) init_tensors[name] = init.get(name);
  const std::vector<std::string> loaded = model.parameters().load(
      init_tensors, o.init, nn::ParameterSet::LoadOptions{false, /*allow_unexpected=*/true});
  const std::set<std::string> used(loaded.begin(), loaded.end());
  std::string ignored;
  for (const std::string& name : init.names())
    if (!used.count(name)) ignored += (ignored.empty() ? "" : ", ") + name;
  if (log && !ignored.empty()) log->line("replay: ignored in " + o.init + ": " + ignored);
  model.set_category_sentences(sentences);
  const Tensor images_dev = images.to(clip.device());

  // Training.
  const WarmupCosineSchedule schedule(o.lr, o.max_iter, o.warmup_iter);
  TrainerOptions topt;
  topt.max_iter = o.max_iter;
  topt.adamw = AdamWOptions::tgpt(o.lr);
  topt.log_every = 1;
  Trainer trainer(model.parameters(), schedule, topt, {}, log);

  const int64_t N = o.steps;
  std::vector<float> loss_cls, loss_cat, loss_con, loss_total;
  std::vector<double> lrs, seconds;
  std::vector<std::pair<std::string, Tensor>> out;  // f32 tensors first, then f64 ones
  using clock = std::chrono::steady_clock;
  clock::time_point step_start;
  const std::vector<std::pair<std::string, Tensor>> trainable = model.parameters().items(true);

  auto step = [&](int64_t k) {
    step_start = clock::now();
    const TgptModel::ImageFeatures img = model.encode_images(images_dev);
    const TgptModel::Output fw = model.forward(img);
    const TgptModel::Losses l = model.losses(fw, labels, captions);
    if (k == 1) {
      out.emplace_back("fwd1.image_cls", f32_cpu(img.cls));
      out.emplace_back("fwd1.t_cat", f32_cpu(fw.t_cat));
      out.emplace_back("fwd1.t_con", f32_cpu(fw.t_con));
      out.emplace_back("fwd1.fused_features", f32_cpu(fw.features));
      out.emplace_back("fwd1.logits", f32_cpu(model.logits(fw.features)));
    }
    const double cls = l.cls.to(Device::CPU).item(), cat = l.category.to(Device::CPU).item(),
                 con = l.content.to(Device::CPU).item();
    loss_cls.push_back(static_cast<float>(cls));
    loss_cat.push_back(static_cast<float>(cat));
    loss_con.push_back(static_cast<float>(con));
    loss_total.push_back(static_cast<float>(l.total.to(Device::CPU).item()));
    lrs.push_back(schedule.lr_at(k));
    StepOutput so;
    so.loss = l.total;
    so.items = B;
    so.parts = {{"cls_loss", cls}, {"category_loss", cat}, {"content_loss", con}};
    return so;
  };
  trainer.set_step_observer([&](int64_t k, const StepOutput&) {
    if (k == 1)
      for (const auto& [name, t] : trainable)
        if (t.grad().defined()) out.emplace_back("grad1." + name, f32_cpu(t.grad()));
    for (const auto& [name, t] : trainable)
      if (t.grad().defined())
        out.emplace_back("param" + std::to_string(k) + "." + name, f32_cpu(t));
    seconds.push_back(std::chrono::duration<double>(clock::now() - step_start).count());
  });
  trainer.run(step, {}, N);

  {
    const TgptModel::ImageFeatures img = model.encode_images(images_dev);
    NoGradGuard no_grad;
    const TgptModel::Output fw = model.forward(img);
    out.emplace_back("eval.logits", f32_cpu(model.logits(fw.features)));
    out.emplace_back("eval.logits_wiseft", f32_cpu(model.logits_wiseft(fw.features)));
  }
  auto f32_vec = [](const std::vector<float>& v) {
    return Tensor::from_data(v.data(), {static_cast<int64_t>(v.size())});
  };
  out.emplace_back("step.loss_cls", f32_vec(loss_cls));
  out.emplace_back("step.loss_category", f32_vec(loss_cat));
  out.emplace_back("step.loss_content", f32_vec(loss_con));
  out.emplace_back("step.loss_total", f32_vec(loss_total));
  // The f64 tensors first, so every tensor stays aligned in the file.
  std::vector<std::pair<std::string, Tensor>> ordered;
  ordered.emplace_back("step.lr", Tensor::from_data(lrs.data(), {N}));
  ordered.emplace_back("step.seconds", Tensor::from_data(seconds.data(), {N}));
  for (auto& e : out) ordered.push_back(std::move(e));
  nlohmann::json meta = {{"steps", o.steps},         {"lr", o.lr},
                         {"max_iter", o.max_iter},   {"warmup_iter", o.warmup_iter},
                         {"weights", o.weights},     {"init", o.init},
                         {"batch", o.batch},         {"device", device_name(o.device)},
                         {"compute_dtype", dtype_name(o.compute_dtype)}};
  save_safetensors(o.trace, ordered, {{"tgpt.replay", meta.dump()}});
}

}  // namespace tgpt

/*
 * tgpt-train — few-shot prompt tuning on a frozen CLIP: TGP-T (default) or the CoOp baseline.
 *
 *   tgpt-train --dataset NAME --root DATA --shots K --seed S --weights CLIP --output OUT
 *       [--config FILE] [--templates FILE] [--method tgpt|coop|probe] [--captions FILE]
 *       [--no-content-loss] [--split FILE --image-root DIR] [--vocab FILE] [--resume]
 *       [--feature-cache DIR] [--no-split-cache] [--skip-bad] [--loader-threads N]
 *       [--device auto|cpu|cuda] [--precision auto|f32|bf16|f16] [KEY VALUE ...]
 *   tgpt-train --method clip --images DIR [--captions FILE] --vocab MERGES --output OUT
 *       [--width 64 --layers 2 --heads W/64 --image-size 32 --patch 8 --max-iter 600
 *        --batch-size 64 --warmup-iter 30 --lr 2e-3 --weight-decay 0.1] [--seed S] [--resume]
 *       [--loader-threads N] [--device ...]
 *   tgpt-train replay --weights CLIP --init INIT --batch BATCH --steps N --lr LR --max-iter M
 *       [--warmup-iter W] --trace OUT [--vocab FILE] [--device ...] [--precision ...]
 *
 * Training: the config is the official one (train/config.h): --config reads an official TGP-T
 * YAML unchanged, else the preset of --dataset (the official per-dataset numbers), else the
 * defaults; then --shots/--seed, then the trailing KEY VALUE overrides as yacs's opts. The data:
 * the dataset's folder under --root in its own layout (data/dataset_layout.h,
 * data/layout_readers.h: split_zhou_<Name>.json, FGVCAircraft's list files, ImageNet's class
 * folders and split_ImageNet.json; captions.txt), or a custom dataset in the CoOp layout (--split
 * FILE --image-root DIR; captions from --captions or the split file's folder). The ImageNet
 * variants (V2, Sketch, A, R) are test sets, refused here. The few-shot split is drawn exactly as
 * the official code draws it (data/fewshot.h) and written to the run folder; when the dataset
 * folder holds the official code's cache of that draw (split_fewshot2/shot_K-seed_S.pkl of TGP-T,
 * looked for first with --method tgpt, or split_fewshot/shot_K-seed_S.pkl of CoOp), the cache
 * wins as in the official code (tools/split_cache.h; --no-split-cache draws). The zero-shot head:
 * the dataset's list in --templates (the mined templates file, keyed by DATASET.NAME) when
 * INPUT.TEXT_AUG is template_mining, else "a photo of a {}.". Output: OUT/<NAME>/<K>shots/seed<S>/
 * (train/fewshot_run.h: log.txt, metrics.json, test.json, model and checkpoint files,
 * split_fewshot.json). --method coop trains CoOp's 16 shared context vectors with CoOp's own
 * settings (SGD lr 0.002, batch 32, 50 epochs with one constant warm-up epoch at 1e-5) in the
 * same loop; OPTIM.LR, OPTIM.MAX_EPOCH, OPTIM.MAX_ITER, OPTIM.WARMUP_ITER,
 * DATALOADER.TRAIN_X.BATCH_SIZE, TRAIN.TEST_FREQ and TRAIN.PRINT_FREQ given as KEY VALUE
 * replace those. Both methods augment training images as INPUT.TRANSFORMS and
 * INPUT.RRCROP_SCALE say (data/preprocess.h TrainTransform). --method probe fits CLIP's linear
 * probe (logistic regression on the frozen image features, L2 penalty chosen on the few-shot val
 * set; train/linear_probe.h) and writes log.txt and metrics.json. --feature-cache DIR keeps the
 * frozen image features of the val and test sets on disk (train/feature_cache.h), so later runs
 * on the same images and weights (other seeds, shots or methods) skip the image encoder. --resume
 * continues OUT/.../checkpoint-last.safetensors. --method clip pretrains a small ViT CLIP from
 * scratch with the contrastive loss (train/clip_pretrain.h) on captioned images and writes
 * OUT/clip.safetensors, a normal tgpt CLIP weight file with the merges embedded. Device auto: the
 * GPU when present; precision auto: f32 on the CPU, bf16 frozen encoders on the GPU (TGP-T's
 * parameters, losses and optimizer stay f32).
 *
 * Input: training batches are decoded and augmented ahead of the model on --loader-threads N
 * worker threads (data/batch_prefetcher.h; default 0 on the CPU: on the training thread, whose
 * OpenMP team uses every core; cores - 1 up to 8 on the GPU), the same batches bit for bit whatever N. An unreadable image stops
 * training with an error listing the bad files of its batch; --skip-bad decodes every image of
 * the dataset's train, val and test first, leaves out those that fail (missing files too), logs
 * "Skipped N unreadable images" in log.txt, and draws the few-shot split from the readable ones.
 *
 * replay: N training steps on one fixed batch from a given initial state, every loss, learning
 * rate, first forward, first gradient and parameters after each step written to OUT
 * (train/tgpt_replay.h), for checking against the official code step by step.
 * Errors go to stderr with exit 1; an interrupted run exits 130 (train/trainer.h).
 */
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "data/dataset.h"
#include "data/dataset_layout.h"
#include "data/fewshot.h"
#include "data/layout_readers.h"
#include "tools/split_cache.h"
#include "tools/tool_options.h"
#include "train/clip_pretrain.h"
#include "train/config.h"
#include "train/fewshot_run.h"
#include "train/linear_probe.h"
#include "train/tgpt_replay.h"
#include "train/trainer.h"

namespace {

struct TrainArgs {
  std::string dataset, root, weights, output, config, templates, method = "tgpt", captions;
  std::string split, image_root, vocab, feature_cache;
  int64_t shots = -1, seed = -1;
  int loader_threads = -1;  // < 0: default_loader_threads
  bool no_content_loss = false, resume = false, no_split_cache = false, skip_bad = false;
  std::vector<std::string> overrides;
  tgpt::tools::PlacementOptions placement;
};

int run_train(const TrainArgs& a) {
  using namespace tgpt;
  const FewshotMethod method = parse_fewshot_method(a.method);
  TGPT_CHECK(a.overrides.size() % 2 == 0, "the trailing overrides must be KEY VALUE pairs, got ",
             a.overrides.size(), " words");
  // Config: YAML / preset / defaults, then the named arguments, then KEY VALUE.
  std::vector<std::string> overrides;
  if (a.shots > 0)
    overrides.insert(overrides.end(), {"DATASET.NUM_SHOTS", std::to_string(a.shots)});
  if (a.seed >= 0) overrides.insert(overrides.end(), {"SEED", std::to_string(a.seed)});
  if (!a.root.empty()) overrides.insert(overrides.end(), {"DATASET.ROOT", "'" + a.root + "'"});
  overrides.insert(overrides.end(), a.overrides.begin(), a.overrides.end());
  const Config cfg = resolve_config(a.config, a.dataset, overrides);
  const std::string name = cfg.get_string("DATASET.NAME");
  TGPT_CHECK(!name.empty(), "no dataset: give --dataset NAME (or a config that sets DATASET.NAME)");
  const int64_t shots = cfg.get_int("DATASET.NUM_SHOTS");
  const int64_t seed = cfg.get_int("SEED");
  TGPT_CHECK(shots > 0, "DATASET.NUM_SHOTS must be positive (give --shots K), got ", shots);
  TGPT_CHECK(seed >= 0, "SEED must be >= 0 (give --seed S), got ", seed);

  // Data.
  const bool captions = method == FewshotMethod::tgpt && !a.no_content_loss;
  CoopFewshotData fs;
  // --skip-bad: every image of the split decoded first; those that fail (missing files too) are
  // left out before the few-shot draw.
  std::vector<UnreadableImage> skipped;
  SplitFilter filter_split;
  if (a.skip_bad)
    filter_split = [&skipped](CoopSplit& split) {
      skipped =
          drop_unreadable_images(split, [](const std::string& subset, size_t done, size_t total) {
            std::fprintf(stderr, "\rchecking the %s images: %zu/%zu", subset.c_str(), done, total);
            if (done == total) std::fprintf(stderr, "\n");
            std::fflush(stderr);
          });
    };
  if (!a.split.empty()) {
    CoopFewshotRequest req;
    req.shots = shots;
    req.seed = seed;
    req.captions = captions;
    req.captions_file = a.captions;
    req.split_json = a.split;
    req.image_root = a.image_root;
    req.dataset_dir = std::filesystem::path(a.split).parent_path().string();
    req.check_files = !a.skip_bad;
    req.filter_split = filter_split;
    req.import_fewshot = tools::split_cache_importer(
        req.dataset_dir, shots, seed, method == FewshotMethod::tgpt, {}, !a.no_split_cache);
    fs = load_coop_fewshot(req);
  } else {
    // The dataset's own layout (split_zhou file, FGVC's lists, ImageNet's folders); the
    // ImageNet variants are refused (test sets, evaluated with an ImageNet model).
    const DatasetLayout& layout = find_dataset_layout(name);
    TGPT_CHECK(!layout.test_only(), name,
               " is a test set only: it is evaluated with a model trained on ImageNet "
               "(tgpt-train --dataset ImageNet, then tgpt-eval on ",
               name, "), not trained on");
    TGPT_CHECK(!a.root.empty(),
               "give --root DATA (the folder holding the datasets) or --split "
               "FILE --image-root DIR for a custom dataset");
    DatasetFewshotRequest req;
    req.layout = &layout;
    req.dataset_dir = (std::filesystem::path(a.root) / layout.dir).string();
    req.shots = shots;
    req.seed = seed;
    req.captions = captions;
    req.captions_file = a.captions;
    req.check_files = !a.skip_bad;
    req.filter_split = filter_split;
    req.import_fewshot =
        tools::split_cache_importer(req.dataset_dir, shots, seed, method == FewshotMethod::tgpt,
                                    {layout.dir}, !a.no_split_cache);
    DatasetFewshotData d = load_dataset_fewshot(req);
    for (const auto& w : d.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    for (const auto& n : d.notes) std::fprintf(stderr, "note: %s\n", n.c_str());
    fs = std::move(d.fewshot);
  }
  std::string skipped_line;
  if (a.skip_bad) {
    // An official split cache lists its own items: those found unreadable leave it too.
    std::set<std::string> bad;
    for (const UnreadableImage& u : skipped) bad.insert(u.path);
    auto keep = [&bad](std::vector<LabeledImage>& items, std::vector<std::string>* item_captions) {
      std::vector<LabeledImage> kept_items;
      std::vector<std::string> kept_captions;
      for (size_t i = 0; i < items.size(); ++i) {
        if (bad.count(items[i].path)) continue;
        kept_items.push_back(items[i]);
        if (item_captions && i < item_captions->size())
          kept_captions.push_back((*item_captions)[i]);
      }
      items = std::move(kept_items);
      if (item_captions) *item_captions = std::move(kept_captions);
    };
    keep(fs.split.train, fs.train_captions.empty() ? nullptr : &fs.train_captions);
    keep(fs.split.val, nullptr);
    TGPT_CHECK(!fs.split.train.empty(), "--skip-bad: no readable training image left");
    skipped_line = str_cat("Skipped ", skipped.size(), " unreadable image",
                           skipped.size() == 1 ? "" : "s", " (--skip-bad)");
    for (size_t i = 0; i < skipped.size() && i < 5; ++i)
      skipped_line += (i ? "\n  " : ": first:\n  ") + skipped[i].error;
    if (skipped.size() > 5) skipped_line += str_cat("\n  ... and ", skipped.size() - 5, " more");
    // A class left without a training image still gets its zero-shot-initialised head row, but
    // no example: said, not silent.
    std::vector<int64_t> per_class(fs.split.classnames.size(), 0);
    for (const LabeledImage& it : fs.split.train)
      if (it.label >= 0 && static_cast<size_t>(it.label) < per_class.size()) ++per_class[it.label];
    std::vector<std::string> empty_classes;
    for (size_t c = 0; c < per_class.size(); ++c)
      if (per_class[c] == 0) empty_classes.push_back(fs.split.classnames[c]);
    if (!empty_classes.empty()) {
      skipped_line += str_cat("\nwarning: ", empty_classes.size(), " class",
                              empty_classes.size() == 1 ? " has" : "es have",
                              " no readable training image left: ");
      for (size_t i = 0; i < empty_classes.size() && i < 5; ++i)
        skipped_line += (i ? ", " : "") + empty_classes[i];
      if (empty_classes.size() > 5) skipped_line += str_cat(", ... (", empty_classes.size(), ")");
    }
    std::fprintf(stderr, "%s\n", skipped_line.c_str());
  }
  FewshotData data;
  data.dataset = name;
  data.classnames = fs.split.classnames;
  data.train = fs.split.train;
  data.val = fs.split.val;
  data.test = fs.split.test;
  data.train_captions = fs.train_captions;

  const std::string out = (std::filesystem::path(a.output) / name /
                           (std::to_string(shots) + "shots") / ("seed" + std::to_string(seed)))
                              .string();
  std::filesystem::create_directories(out);
  write_fewshot_split((std::filesystem::path(out) / "split_fewshot.json").string(), fs.split);
  if (method == FewshotMethod::probe) {
    // Inference only: the tools' default placement (f32 on the CPU, f16 on the GPU).
    const tools::Placement probe_place = tools::resolve_placement(a.placement);
    LinearProbeOptions po;
    po.weights = a.weights;
    po.output_dir = out;
    po.header = "** Config **\n" + cfg.dump();
    if (!skipped_line.empty()) po.header += "\n" + skipped_line;
    po.batch_size = cfg.get_int("DATALOADER.TEST.BATCH_SIZE");
    po.feature_cache_dir = a.feature_cache;
    po.device = probe_place.device;
    po.compute_dtype = probe_place.dtype;
    po.run_info = {{"shots", shots}, {"seed", seed}, {"split_fewshot", "split_fewshot.json"}};
    run_linear_probe(po, data);
    std::printf("results in %s\n", out.c_str());
    return 0;
  }

  FewshotRunOptions o;
  o.method = method;
  o.weights = a.weights;
  o.merges = a.vocab;
  o.output_dir = out;
  o.seed = static_cast<uint64_t>(seed);
  o.resume = a.resume;
  o.feature_cache_dir = a.feature_cache;
  tools::PlacementOptions place_opts = a.placement;
  if (place_opts.precision == "auto") place_opts.precision = "f32";
  const tools::Placement place = tools::resolve_placement(place_opts);
  o.device = place.device;
  o.compute_dtype =
      a.placement.precision == "auto" && place.device == Device::CUDA ? DType::bf16 : place.dtype;
  o.run_info = {{"method", fewshot_method_name(method)},
                {"shots", shots},
                {"seed", seed},
                {"split_fewshot", "split_fewshot.json"}};
  if (method == FewshotMethod::tgpt) {
    o.lr = cfg.get_double("OPTIM.LR");
    o.max_iter = cfg.get_int("OPTIM.MAX_ITER");
    o.warmup_iter = cfg.get_int("OPTIM.WARMUP_ITER");
    o.batch_size = cfg.get_int("DATALOADER.TRAIN_X.BATCH_SIZE");
    o.test_batch_size = cfg.get_int("DATALOADER.TEST.BATCH_SIZE");
    o.eval_every = cfg.get_int("TRAIN.TEST_FREQ");
    o.print_every = cfg.get_int("TRAIN.PRINT_FREQ");
    o.save_every = cfg.get_int("TRAIN.SAVE_FREQ");
    o.tgpt.category_queries = cfg.get_int("MODEL.BONDER.NUM_Q_CTG");
    o.tgpt.content_queries = cfg.get_int("MODEL.BONDER.NUM_Q_CON");
    o.init_text = cfg.get_string("TRAINER.CTX_INIT");
  } else {
    // CoOp's own settings (vit_b16_ep50: SGD lr 0.002, batch 32, 50 epochs, one constant
    // warm-up epoch at 1e-5), iteration-based; a KEY VALUE override on the command line
    // replaces the matching one.
    auto overridden = [&a](const char* key) {
      for (size_t k = 0; k + 1 < a.overrides.size(); k += 2)
        if (a.overrides[k] == key) return true;
      return false;
    };
    const int64_t n = static_cast<int64_t>(data.train.size());
    o.batch_size = overridden("DATALOADER.TRAIN_X.BATCH_SIZE")
                       ? cfg.get_int("DATALOADER.TRAIN_X.BATCH_SIZE")
                       : 32;
    TGPT_CHECK(o.batch_size >= 1, "DATALOADER.TRAIN_X.BATCH_SIZE must be >= 1");
    const int64_t per_epoch = (n + o.batch_size - 1) / o.batch_size;
    const int64_t epochs = overridden("OPTIM.MAX_EPOCH") ? cfg.get_int("OPTIM.MAX_EPOCH") : 50;
    o.lr = overridden("OPTIM.LR") ? cfg.get_double("OPTIM.LR") : 0.002;
    o.max_iter = overridden("OPTIM.MAX_ITER") ? cfg.get_int("OPTIM.MAX_ITER") : epochs * per_epoch;
    o.warmup_iter = overridden("OPTIM.WARMUP_ITER") ? cfg.get_int("OPTIM.WARMUP_ITER") : per_epoch;
    o.warmup_lr = 1e-5;
    o.test_batch_size = cfg.get_int("DATALOADER.TEST.BATCH_SIZE");
    o.eval_every = overridden("TRAIN.TEST_FREQ") ? cfg.get_int("TRAIN.TEST_FREQ")
                                                 : 0;  // CoOp tests the last model
    o.print_every = overridden("TRAIN.PRINT_FREQ") ? cfg.get_int("TRAIN.PRINT_FREQ")
                                                   : std::min<int64_t>(per_epoch, 20);
  }
  o.train_transform = train_transform_from_names(cfg.get_string_list("INPUT.TRANSFORMS"),
                                                 cfg.get_double_list("INPUT.RRCROP_SCALE"));
  if (cfg.get_string("INPUT.TEXT_AUG") == "template_mining" && !a.templates.empty()) {
    o.templates = select_templates(read_templates_file(a.templates), name,
                                   "templates file '" + a.templates + "'");
  } else {
    TGPT_CHECK(
        method != FewshotMethod::tgpt || cfg.get_string("INPUT.TEXT_AUG") != "template_mining",
        "INPUT.TEXT_AUG is template_mining: give --templates FILE (the mined templates, "
        "keyed by DATASET.NAME), or INPUT.TEXT_AUG hand_crafted for \"a photo of a {}.\"");
    o.templates = {"a photo of a {}."};
  }
  o.header = "** Config **\n" + cfg.dump();
  if (!skipped_line.empty()) o.header += "\n" + skipped_line;
  o.loader_threads = a.loader_threads;
  const FewshotRunResult r = run_fewshot_training(o, data);
  if (r.status == TrainStatus::interrupted) {
    std::fprintf(stderr,
                 "tgpt-train: stopped at iteration %lld; the checkpoint is in %s (resume "
                 "with --resume)\n",
                 static_cast<long long>(r.iteration), out.c_str());
    return kInterruptedExitCode;
  }
  std::printf("results in %s\n", out.c_str());
  return 0;
}

// Contrastive CLIP pretraining (--method clip): a small ViT CLIP from scratch.
struct PretrainArgs {
  std::string images;  // image folder; captions from --captions or images/captions.txt
  int64_t width = 64, layers = 2, heads = 0, image_size = 32, patch = 8, max_iter = 600, batch = 64;
  int64_t warmup = 30;
  double lr = 2e-3, weight_decay = 0.1;
};

int run_pretrain(const TrainArgs& a, const PretrainArgs& p) {
  using namespace tgpt;
  TGPT_CHECK(!p.images.empty(), "--method clip needs --images DIR (images with captions)");
  TGPT_CHECK(!a.skip_bad,
             "--skip-bad is for few-shot training; --method clip decodes every image before "
             "training and lists those it cannot read");
  TGPT_CHECK(!a.vocab.empty(),
             "--method clip needs --vocab FILE (BPE merges, e.g. from "
             "tgpt-tokenize learn)");
  TGPT_CHECK(p.width > 0 && p.width % 8 == 0,
             "--width must be a positive multiple of 8 (the "
             "TGP-T Bonder's 8 heads), got ",
             p.width);
  ClipPretrainOptions o;
  o.image_dir = p.images;
  o.captions = a.captions;
  o.merges = a.vocab;
  o.output_dir = a.output;
  ClipConfig& c = o.config;
  c.embed_dim = p.width;  // = text width, as TGP-T's Bonder needs
  c.image_resolution = p.image_size;
  c.vision_layers = p.layers;
  c.vision_width = p.width;
  c.vision_patch_size = p.patch;
  const int64_t heads = p.heads > 0 ? p.heads : std::max<int64_t>(1, p.width / 64);
  TGPT_CHECK(p.heads >= 0 && p.width % heads == 0,
             "--heads must be a positive divisor of --width (", p.width, "), got ", p.heads);
  c.vision_heads = static_cast<int>(heads);
  c.context_length = 77;
  c.transformer_width = p.width;
  c.transformer_heads = static_cast<int>(heads);
  c.transformer_layers = p.layers;
  c.activation = Activation::quick_gelu;
  o.lr = p.lr;
  o.weight_decay = p.weight_decay;
  o.max_iter = p.max_iter;
  o.warmup_iter = p.warmup;
  o.batch_size = p.batch;
  o.seed = a.seed >= 0 ? static_cast<uint64_t>(a.seed) : 1;
  o.resume = a.resume;
  o.loader_threads = a.loader_threads;
  tools::PlacementOptions place_opts = a.placement;
  if (place_opts.precision == "auto") place_opts.precision = "f32";
  const tools::Placement place = tools::resolve_placement(place_opts);
  o.device = place.device;
  o.compute_dtype = place.dtype;
  const ClipPretrainResult r = run_clip_pretraining(o);
  if (r.status == TrainStatus::interrupted) {
    std::fprintf(stderr, "tgpt-train: stopped at iteration %lld; resume with --resume\n",
                 static_cast<long long>(r.iteration));
    return kInterruptedExitCode;
  }
  std::printf("wrote %s (loss %.4f -> %.4f in %lld iterations, %.0f s)\n", r.weights_path.c_str(),
              r.first_loss, r.last_loss, static_cast<long long>(r.iteration), r.seconds);
  return 0;
}

struct ReplayArgs {
  tgpt::TgptReplayOptions options;
  tgpt::tools::PlacementOptions placement;
};

int run_replay(ReplayArgs& a) {
  // f64 (CPU only) runs the whole step in f64: a reference for checking against f64 traces.
  const bool f64 = a.placement.precision == "f64";
  if (f64) a.placement.precision = "f32";
  const tgpt::tools::Placement place = tgpt::tools::resolve_placement(a.placement);
  TGPT_CHECK(!f64 || place.device == tgpt::Device::CPU, "--precision f64 runs on the CPU only");
  a.options.device = place.device;
  a.options.compute_dtype = f64 ? tgpt::DType::f64 : place.dtype;
  tgpt::TrainLog log(stdout);
  tgpt::run_tgpt_replay(a.options, &log);
  log.end_bar();
  std::printf("wrote %s\n", a.options.trace.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // first: may re-execute with other BLAS kernels
  CLI::App app{"tgpt few-shot training: TGP-T, or the CoOp baseline"};
  tgpt::tools::add_version_flag(app, "tgpt-train");
  app.require_subcommand(0, 1);
  TrainArgs t;
  app.add_option("--dataset", t.dataset, "DATASET.NAME (OxfordPets, ...) or its config stem");
  app.add_option("--root", t.root, "the folder holding the datasets ($DATA)");
  app.add_option("--shots", t.shots, "shots per class (DATASET.NUM_SHOTS)");
  app.add_option("--seed", t.seed, "seed (SEED): the few-shot draw and the training");
  app.add_option("--weights", t.weights, "tgpt CLIP weight file");
  app.add_option("--output", t.output, "output folder (OUTPUT_DIR)");
  app.add_option("--config", t.config, "an official TGP-T YAML config");
  app.add_option("--templates", t.templates,
                 "templates JSON {\"DATASET.NAME\": [...]} for the zero-shot head");
  app.add_option("--method", t.method,
                 "tgpt (default), coop, probe (linear probe on the frozen image features), or "
                 "clip (contrastive CLIP pretraining from scratch)")
      ->check(CLI::IsMember({"tgpt", "coop", "probe", "clip"}));
  PretrainArgs pa;
  auto clip_option = [&app](const char* name, auto& value, const char* help) {
    app.add_option(name, value, help)->group("CLIP pretraining (--method clip)");
  };
  clip_option("--images", pa.images, "clip: the image folder (captions.txt inside or --captions)");
  clip_option("--width", pa.width, "clip: embed and tower width (default 64)");
  clip_option("--layers", pa.layers, "clip: layers per tower (default 2)");
  clip_option("--heads", pa.heads, "clip: attention heads per layer (default width / 64, >= 1)");
  clip_option("--image-size", pa.image_size, "clip: input resolution (default 32)");
  clip_option("--patch", pa.patch, "clip: patch size (default 8)");
  clip_option("--max-iter", pa.max_iter, "clip: iterations (default 600)");
  clip_option("--batch-size", pa.batch, "clip: pairs per step (default 64)");
  clip_option("--warmup-iter", pa.warmup, "clip: linear warm-up iterations (default 30)");
  clip_option("--lr", pa.lr, "clip: AdamW learning rate (default 2e-3)");
  clip_option("--weight-decay", pa.weight_decay, "clip: AdamW weight decay (default 0.1)");
  app.add_option("--captions", t.captions, "captions file (default: the dataset's captions.txt)");
  app.add_flag("--no-content-loss", t.no_content_loss,
               "train without captions (category supervision only)");
  auto* split_opt = app.add_option("--split", t.split, "custom dataset: a split_zhou-format file");
  auto* root_opt = app.add_option("--image-root", t.image_root,
                                  "custom dataset: what the split's paths are under");
  split_opt->needs(root_opt);
  root_opt->needs(split_opt);
  app.add_option("--vocab", t.vocab, "BPE merges (default: the merges in the weight file)");
  app.add_flag("--resume", t.resume, "continue from the run folder's checkpoint");
  app.add_flag("--no-split-cache", t.no_split_cache,
               "draw the few-shot split even when the dataset folder holds the official code's "
               "split_fewshot2/ or split_fewshot/shot_K-seed_S.pkl");
  app.add_option("--feature-cache", t.feature_cache,
                 "folder of the on-disk cache of frozen val/test image features, shared by runs");
  app.add_option("--loader-threads", t.loader_threads,
                 "worker threads decoding and augmenting training batches ahead of the model "
                 "(0: on the training thread, the default on the CPU; cores - 1 up to 8 on the "
                 "GPU by default); the batches are the same whatever the number")
      ->check(CLI::Range(0, 256));
  app.add_flag("--skip-bad", t.skip_bad,
               "decode every image of the dataset's train, val and test first and leave out "
               "those that cannot be read (missing or corrupt), with their count in log.txt; the "
               "few-shot split is then drawn from the readable images only (so it can differ "
               "from the official draw)");
  tgpt::tools::add_placement_options(app, t.placement);
  app.add_option("overrides", t.overrides, "KEY VALUE ... (yacs opts)");

  ReplayArgs r;
  r.placement.precision = "f32";
  CLI::App* rp = app.add_subcommand(
      "replay", "N steps on one fixed batch from a given initial state, with a full trace");
  rp->add_option("--weights", r.options.weights, "tgpt CLIP weight file")->required();
  rp->add_option("--init", r.options.init, "initial TGP-T state (safetensors, official names)")
      ->required();
  rp->add_option("--batch", r.options.batch,
                 "the batch (safetensors: images, labels, caption_tokens, "
                 "category_sentence_tokens)")
      ->required();
  rp->add_option("--steps", r.options.steps, "training steps N")->required();
  rp->add_option("--lr", r.options.lr, "base learning rate")->required();
  rp->add_option("--max-iter", r.options.max_iter, "schedule length T (OPTIM.MAX_ITER)")
      ->required();
  rp->add_option("--warmup-iter", r.options.warmup_iter,
                 "warm-up iterations W (OPTIM.WARMUP_ITER, default 100)");
  rp->add_option("--trace", r.options.trace, "output trace (safetensors)")->required();
  rp->add_option("--vocab", r.options.merges,
                 "BPE merges (default: the merges in the weight file)");
  rp->add_option("--device", r.placement.device, "where it runs: auto (cuda if present), cpu, cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  rp->add_option("--precision", r.placement.precision,
                 "frozen CLIP compute precision: f32 (default), f16, bf16, or f64 (CPU: the "
                 "whole step in f64)")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "f64"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;
  }
  try {
    if (rp->parsed()) return run_replay(r);
    if (t.method == "clip") {
      if (t.output.empty()) throw CLI::ValidationError("tgpt-train", "--output is required");
      return run_pretrain(t, pa);
    }
    if (t.weights.empty() || t.output.empty())
      throw CLI::ValidationError("tgpt-train", "--weights and --output are required");
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tgpt-train: %s\n", e.what());
    return 1;
  }
  try {
    return run_train(t);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tgpt-train: %s\n", e.what());
    if (std::string(e.what()).find("images failed:") != std::string::npos && !t.skip_bad)
      std::fprintf(stderr,
                   "tgpt-train: --skip-bad checks every image first and leaves out those that "
                   "cannot be read\n");
    return 1;
  }
  return 1;
}

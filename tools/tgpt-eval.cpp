/*
 * tgpt-eval — evaluation commands. `zeroshot`: CLIP zero-shot classification accuracy.
 * `test`: a trained TGP-T checkpoint on a dataset split (plain and WiSE-FT heads). `dg`: an
 * ImageNet checkpoint on ImageNet-V2, -Sketch, -A and -R (domain generalisation).
 * `summarize`: mean ± std over seeds of finished runs, as tables and a plot. `compare`: the
 * methods side by side at one shot count, as a table, a bar chart and a JSON summary.
 *
 *   tgpt-eval zeroshot --weights W
 *       (--image-folder DIR | --split FILE --image-root DIR [--subset test|val|train])
 *       [--template STR | --templates FILE --dataset NAME]
 *       [--batch-size N] [--vocab FILE] [--output DIR]
 *       [--device auto|cpu|cuda] [--precision auto|f32|f16|bf16]
 *
 * Classes and images: --image-folder reads DIR/<class>/<image> (data/dataset.h); the prompt
 * class name is the folder name with '_' replaced by ' '. --split reads a CoOp split file
 * (split_zhou_<Name>.json) whose paths are relative to --image-root; its class names go into the
 * templates raw, as TGP-T does (e.g. UCF101's "Apply_Eye_Makeup" keeps its underscores).
 * Prompts: one template (default "a photo of a {}.") or the list of dataset NAME in a templates
 * JSON file (e.g. the TGP-T mined templates, keyed by DATASET.NAME). Classifier: per class the
 * mean of the UNnormalised text features over the templates, then L2-normalised; logits =
 * 100 · cos(image, class) (models/clip/zeroshot.h). Images are read, encoded and scored in one
 * pass, batch by batch (train/evaluator.h). Prints Dassl's result block (top-1, error, macro F1;
 * top-5 with at least 5 classes) and, with --output, writes DIR/metrics.json, DIR/per_class.csv
 * and DIR/confusion.csv atomically. --device and
 * --precision: tools/tool_options.h.
 *
 *   tgpt-eval test --checkpoint DIR|FILE --weights W --split FILE --image-root DIR
 *       [--subset test|val|train] [--templates FILE --dataset NAME] [--batch-size N]
 *       [--vocab FILE] [--output DIR] [--device ...] [--precision ...]
 *
 * A trained TGP-T model on a split, with the plain and the WiSE-FT head (0.5·W + 0.5·W_zs).
 * The checkpoint: a tgpt run folder or model file, or the official code's output folder
 * (prompt_learner/ + cls_head/ model-best.pth.tar) or state dict (train/tgpt_weights.h). Query
 * counts and the class count come from the checkpoint. Official checkpoints hold no zero-shot
 * head: it is built from --templates as the official code builds it (mean of unnormalised text
 * features over the dataset's templates, raw class names). Prints the result block with
 * "* accuracy_wiseft: y%" after it; --output writes metrics.json (plain head, with
 * accuracy_wiseft), per_class.csv and confusion.csv.
 *
 *   tgpt-eval dg --checkpoint DIR|FILE --weights W --root DATA
 *       [--templates FILE | --template STR] [--datasets
 * ImageNetV2,ImageNetSketch,ImageNetA,ImageNetR]
 *       [--batch-size N] [--vocab FILE] [--output DIR] [--device ...] [--precision ...]
 *
 * Domain generalisation (method.md §4.6, data.md §1.1): the ImageNet-trained checkpoint, loaded
 * once, tested unchanged on every ImageNet variant present under DATA (a missing default one is
 * skipped with a note; one named in --datasets and missing is an error), all its test images,
 * with the plain and the WiSE-FT head. V2 and a full Sketch use the whole head; A and R (200
 * classes) use the rows of both heads that their imagenet_index selects (their logits over those
 * classes; label = the variant's label). The class count of the checkpoint must be the count of
 * ImageNet's class list: DATA/imagenet/classnames.txt, else the first variant's copy (every
 * variant's classnames.txt must be that list). The zero-shot head: the checkpoint's, else built
 * from --templates' "ImageNet" list (the official model is built with the ImageNet config) or
 * --template, with ImageNet's class names, as `test` builds it. Prints one Markdown table
 * (dataset | images | accuracy | WiSE-FT, and the average); --output writes
 * DIR/<variant>/metrics.json (task "dg", dataset, accuracy_wiseft; per_class.csv and
 * confusion.csv beside it) and DIR/dg.json (every variant's numbers, the averages, the skipped
 * variants), atomically.
 *
 *   tgpt-eval summarize DIR... [--csv FILE] [--markdown FILE] [--svg FILE]
 *
 * Finds every run folder <dataset>/<K>shots/seed<S>/metrics.json under the DIRs (any depth),
 * groups runs by (method, dataset, shots) and prints Markdown tables of mean ± std over seeds
 * (population std, numpy's ddof=0) of "accuracy" and "accuracy_wiseft", one row per dataset
 * and an Average row (mean of the per-dataset means) per (method, shots); --markdown writes the
 * same text, --csv the numbers, --svg an accuracy-vs-shots plot (train/summary.h). Files are
 * written atomically. Errors go to stderr with exit 1.
 *
 *   tgpt-eval compare DIR... --shots K [--markdown FILE] [--svg FILE] [--json FILE]
 *       [--field KEY=NUMBER]...
 *
 * The same run folders, side by side at K shots (train/summary.h compare_methods): one row per
 * dataset, one column per method (zeroshot — its runs at any shot count, usually 0shots/ —
 * coop, tgpt, then the others by name), cells mean ± std over seeds, an Average row (mean over
 * the datasets a method has; a method missing a dataset is flagged). Prints the Markdown table;
 * --markdown writes it, --svg a grouped bar chart, --json the summary (per-dataset cells,
 * averages, "zero_shot_accuracy", "coop_accuracy", "tgpt_accuracy", ...); each --field adds a
 * numeric top-level key to the JSON (e.g. --field main_job_seconds=512.3; a malformed one or a
 * key the summary already has is an error). No run at K other than zero-shot ones: an error
 * naming the shot counts that exist. Files are written atomically, parent folders created.
 */
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "data/dataset.h"
#include "data/dataset_layout.h"
#include "data/layout_readers.h"
#include "data/preprocess.h"
#include "models/clip/clip.h"
#include "models/clip/zeroshot.h"
#include "tools/tool_options.h"
#include "train/evaluator.h"
#include "train/fewshot_run.h"
#include "train/summary.h"
#include "train/tgpt_weights.h"

namespace {

struct ZeroShotArgs {
  std::string weights, vocab, image_folder, split, image_root, subset = "test";
  std::string template_str = "a photo of a {}.", templates_file, dataset, output;
  int64_t batch_size = 64;
  tgpt::tools::PlacementOptions placement;
};

int run_zeroshot(const ZeroShotArgs& a) {
  using namespace tgpt;
  TGPT_CHECK(a.batch_size > 0, "--batch-size must be positive, got ", a.batch_size);
  const auto t0 = std::chrono::steady_clock::now();

  // Dataset.
  ImageDataset ds;
  nlohmann::json data_info;
  if (!a.image_folder.empty()) {
    ds = read_image_folder(a.image_folder);
    data_info = {{"kind", "image-folder"}, {"root", a.image_folder}};
  } else {
    const CoopSplit split = read_coop_split(a.split, a.image_root, false);
    ds = coop_split_subset(split, a.subset);
    TGPT_CHECK(!ds.items.empty(), "split file '", a.split, "': subset \"", a.subset, "\" is empty");
    check_image_files_exist(ds, "split file '" + a.split + "', subset \"" + a.subset +
                                    "\", image root '" + a.image_root + "'");
    data_info = {{"kind", "coop-split"},
                 {"split", a.split},
                 {"image_root", a.image_root},
                 {"subset", a.subset}};
  }
  // Templates.
  std::vector<std::string> templates;
  nlohmann::json template_info;
  if (!a.templates_file.empty()) {
    const TemplateLists lists = read_templates_file(a.templates_file);
    templates = select_templates(lists, a.dataset, "templates file '" + a.templates_file + "'");
    template_info = {{"file", a.templates_file}, {"dataset", a.dataset}};
  } else {
    templates = {a.template_str};
    template_info = {{"template", a.template_str}};
  }
  template_info["count"] = templates.size();
  const std::vector<std::vector<std::string>> prompts = class_prompts(ds.classnames, templates);

  // Model and classifier.
  const tools::Placement place = tools::resolve_placement(a.placement);
  const ClipModel model = ClipModel::load(a.weights, place.device, place.dtype);
  const ClipTokenizer tok = clip_tokenizer_for(model, a.vocab, "'" + a.weights + "'");
  const ZeroShotClassifier zs = build_zeroshot_classifier(model, tok, prompts, a.batch_size);
  const int64_t k = ds.num_classes();
  const int64_t n = static_cast<int64_t>(ds.items.size());
  const int64_t r = model.config().image_resolution;
  std::printf("model:        %s (%s) on %s\n", a.weights.c_str(), model.config().name().c_str(),
              place.str().c_str());
  std::printf("classes:      %lld, templates: %zu, images: %lld\n", static_cast<long long>(k),
              templates.size(), static_cast<long long>(n));

  // Images: one batching loop; logits and counts per batch from its rows of the features.
  AccuracyMeter meter(k);
  const std::vector<int64_t> labels = ds.labels();
  encode_images_batched(
      model, image_file_source(ds.paths(), r), a.batch_size,
      [&](int64_t b, const Tensor&, const Tensor& features) {
        const int64_t len = features.size(0);
        meter.add(zeroshot_logits(features, zs.weights),
                  std::vector<int64_t>(labels.begin() + b, labels.begin() + b + len));
        // Progress on stderr about every 5% (stdout keeps only the result lines).
        if ((b + len) * 20 / n != b * 20 / n)
          std::fprintf(stderr, "  %lld/%lld images, top-1 so far %.2f%%\n",
                       static_cast<long long>(b + len), static_cast<long long>(n), meter.top1());
      });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // Report (Dassl's result block, then top-5).
  std::fputs(result_block(meter).c_str(), stdout);

  if (!a.output.empty()) {
    const nlohmann::json extra = {
        {"task", "zeroshot"},
        {"weights", a.weights},
        {"model", model.config().name()},
        {"placement", place.str()},
        {"data", data_info},
        {"templates", template_info},
        {"prompt_classnames", !a.image_folder.empty() ? "folder name, '_' -> ' '" : "raw"},
        {"logit_scale", 100.0},
        {"wall_seconds", seconds},
        {"images_per_second", seconds > 0 ? static_cast<double>(n) / seconds : 0.0},
    };
    const std::string path = write_metrics(a.output, meter, ds.classnames, extra);
    std::printf("wrote:        %s\n", path.c_str());
  }
  return 0;
}

// The prompt templates of the zero-shot head, for checkpoints that hold none.
struct HeadTemplates {
  std::vector<std::string> list;  // empty: none given
  std::string what;               // "N templates of NAME", for the report
  std::string missing;  // what to give when the checkpoint holds no head and list is empty
};

// The templates list `key` of a templates file, or the one template `single` ("" and no file:
// none).
HeadTemplates head_templates(const std::string& file, const std::string& key,
                             const std::string& single, std::string missing) {
  HeadTemplates t;
  t.missing = std::move(missing);
  if (!file.empty()) {
    const tgpt::TemplateLists lists = tgpt::read_templates_file(file);
    t.list = tgpt::select_templates(lists, key, "templates file '" + file + "'");
    t.what = std::to_string(t.list.size()) + " templates of " + key;
  } else if (!single.empty()) {
    t.list = {single};
    t.what = "the template \"" + single + "\"";
  }
  return t;
}

// A checkpoint's TGP-T model for `classnames` (their count must be the checkpoint's: another one
// is load_tgpt_weights's "another dataset" error). The zero-shot head is the checkpoint's, else
// built from the templates as the official code builds it (raw class names).
struct EvalModel {
  std::unique_ptr<tgpt::TgptModel> model;
  size_t loaded = 0;        // tensors taken from the checkpoint
  std::string head_source;  // where the zero-shot head came from
};

EvalModel load_eval_model(const tgpt::TgptWeights& w, const std::string& checkpoint,
                          const std::vector<std::string>& classnames, const HeadTemplates& t,
                          const tgpt::ClipModel& clip, const tgpt::ClipTokenizer& tok,
                          int64_t batch_size) {
  using namespace tgpt;
  TgptConfig cfg = tgpt_config_from_weights(w);
  cfg.num_classes = static_cast<int64_t>(classnames.size());
  Generator gen(0);  // every trained value comes from the checkpoint
  EvalModel e;
  e.model = std::make_unique<TgptModel>(clip, cfg, tgpt_token_ids(tok, ""), gen);
  const TgptLoadReport report = load_tgpt_weights(*e.model, w);
  e.loaded = report.loaded.size();
  e.head_source = "zs_weights of the checkpoint";
  if (!report.has_zeroshot_head) {
    TGPT_CHECK(!t.list.empty(), checkpoint,
               " holds no zero-shot head (official checkpoints do not); ", t.missing);
    e.model->set_zeroshot_weights(
        tgpt_zeroshot_head_from_templates(clip, tok, classnames, t.list, batch_size));
    e.head_source = "built from " + t.what;
  }
  return e;
}

struct TestArgs {
  std::string checkpoint, weights, vocab, split, image_root, subset = "test";
  std::string templates_file, dataset, output;
  int64_t batch_size = 64;
  tgpt::tools::PlacementOptions placement;
};

int run_test(const TestArgs& a) {
  using namespace tgpt;
  TGPT_CHECK(a.batch_size > 0, "--batch-size must be positive, got ", a.batch_size);
  const auto t0 = std::chrono::steady_clock::now();
  const CoopSplit split = read_coop_split(a.split, a.image_root, false);
  const ImageDataset ds = coop_split_subset(split, a.subset);
  TGPT_CHECK(!ds.items.empty(), "split file '", a.split, "': subset \"", a.subset, "\" is empty");
  check_image_files_exist(ds, "split file '" + a.split + "', subset \"" + a.subset +
                                  "\", image root '" + a.image_root + "'");
  const TgptWeights w = read_tgpt_weights(a.checkpoint);
  const HeadTemplates templates =
      head_templates(a.templates_file, a.dataset, "",
                     "give --templates FILE --dataset NAME to build it as the official code does");

  const tools::Placement place = tools::resolve_placement(a.placement);
  const ClipModel clip = ClipModel::load(a.weights, place.device, place.dtype);
  const ClipTokenizer tok = clip_tokenizer_for(clip, a.vocab, "'" + a.weights + "'");
  const EvalModel e =
      load_eval_model(w, a.checkpoint, ds.classnames, templates, clip, tok, a.batch_size);
  std::printf("checkpoint:   %s (%zu tensors; zero-shot head %s)\n", a.checkpoint.c_str(), e.loaded,
              e.head_source.c_str());
  std::printf("model:        %s (%s) on %s\n", a.weights.c_str(), clip.config().name().c_str(),
              place.str().c_str());
  std::printf("classes:      %lld, images: %zu\n", static_cast<long long>(ds.num_classes()),
              ds.items.size());
  AccuracyMeter plain(ds.num_classes()), wiseft(ds.num_classes());
  TrainLog progress(stderr);
  evaluate_tgpt(*e.model, ds.items, a.batch_size, plain, wiseft, &progress);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fputs(result_block(plain).c_str(), stdout);
  std::printf("* accuracy_wiseft: %.2f%%\n", wiseft.top1());
  if (!a.output.empty()) {
    const nlohmann::json extra = {
        {"task", "test"},
        {"method", "tgpt"},
        {"checkpoint", a.checkpoint},
        {"weights", a.weights},
        {"split", a.split},
        {"subset", a.subset},
        {"accuracy_wiseft", wiseft.top1()},
        {"zeroshot_head", e.head_source},
        {"placement", place.str()},
        {"wall_seconds", seconds},
    };
    const std::string path = write_metrics(a.output, plain, ds.classnames, extra);
    std::printf("wrote:        %s\n", path.c_str());
  }
  return 0;
}

// Writes each (path, text) whose path is not empty atomically, creating parent folders.
void write_outputs(const std::vector<std::pair<std::string, std::string>>& outputs) {
  for (const auto& [path, text] : outputs) {
    if (path.empty()) continue;
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    tgpt::write_text_file_atomic(path, text);
    std::fprintf(stderr, "wrote: %s\n", path.c_str());
  }
}

struct DgArgs {
  std::string checkpoint, weights, vocab, root, templates_file, template_str, output;
  std::vector<std::string> datasets;  // empty: every variant present under root
  int64_t batch_size = 64;
  tgpt::tools::PlacementOptions placement;
};

// One ImageNet variant read under --root.
struct DgVariant {
  const tgpt::DatasetLayout* layout = nullptr;
  std::string dir;
  tgpt::DatasetSplit data;
  tgpt::ImageNetClassnames classes;  // its classnames.txt (a copy of ImageNet's)
};

int run_dg(const DgArgs& a) {
  using namespace tgpt;
  namespace fs = std::filesystem;
  TGPT_CHECK(a.batch_size > 0, "--batch-size must be positive, got ", a.batch_size);
  std::error_code ec;
  TGPT_CHECK(fs::is_directory(a.root, ec), "--root '", a.root, "' is not a folder");
  const auto t0 = std::chrono::steady_clock::now();

  // The variants: every one is read first, so a bad tree fails before the model is loaded.
  const bool named = !a.datasets.empty();
  const std::vector<std::string> names =
      named ? a.datasets
            : std::vector<std::string>{"ImageNetV2", "ImageNetSketch", "ImageNetA", "ImageNetR"};
  std::vector<DgVariant> variants;
  std::vector<std::string> skipped;
  for (const std::string& name : names) {
    const DatasetLayout& layout = find_dataset_layout(name);
    TGPT_CHECK(layout.test_only(), "--datasets: ", layout.name,
               " is not an ImageNet variant (ImageNetV2, ImageNetSketch, ImageNetA, ImageNetR)");
    for (const DgVariant& v : variants)
      TGPT_CHECK(v.layout != &layout, "--datasets: ", layout.name, " is given twice");
    DgVariant v;
    v.layout = &layout;
    v.dir = (fs::path(a.root) / layout.dir).string();
    if (!fs::is_directory(v.dir, ec)) {
      TGPT_CHECK(!named, "--datasets: ", layout.name, " has no folder '", v.dir, "'");
      std::fprintf(stderr, "note: %s: no folder '%s', skipped\n", layout.name.c_str(),
                   v.dir.c_str());
      skipped.push_back(layout.name);
      continue;
    }
    v.data = read_dataset(layout, v.dir);
    v.classes = read_imagenet_classnames((fs::path(v.dir) / "classnames.txt").string());
    for (const std::string& warning : v.data.warnings)
      std::fprintf(stderr, "warning: %s: %s\n", layout.name.c_str(), warning.c_str());
    variants.push_back(std::move(v));
  }
  TGPT_CHECK(!variants.empty(), "no ImageNet variant under --root '", a.root,
             "' (looked for imagenetv2/, imagenet-sketch/, imagenet-adversarial/, "
             "imagenet-rendition/)");

  // ImageNet's class list: $DATA/imagenet/classnames.txt, else the first variant's copy; every
  // variant's copy must be the same list (its labels and A/R rows index into it).
  const fs::path imagenet_file = fs::path(a.root) / "imagenet" / "classnames.txt";
  const ImageNetClassnames imagenet = fs::exists(imagenet_file, ec)
                                          ? read_imagenet_classnames(imagenet_file.string())
                                          : variants.front().classes;
  for (const DgVariant& v : variants)
    TGPT_CHECK(v.classes.wnids == imagenet.wnids, v.layout->name, ": '", v.classes.file,
               "' is not the ImageNet class list '", imagenet.file, "' (", v.classes.wnids.size(),
               " and ", imagenet.wnids.size(), " classes, or another order)");
  const int64_t num_classes = static_cast<int64_t>(imagenet.wnids.size());

  const TgptWeights w = read_tgpt_weights(a.checkpoint);
  const TgptConfig ckpt = tgpt_config_from_weights(w);
  TGPT_CHECK(ckpt.num_classes == num_classes, a.checkpoint, ": the classifier has ",
             ckpt.num_classes, " classes, the ImageNet class list '", imagenet.file, "' has ",
             num_classes, " (dg tests a model trained on ImageNet with that class list)");
  const HeadTemplates templates = head_templates(
      a.templates_file, "ImageNet", a.template_str,
      "give --templates FILE (its \"ImageNet\" list, as the official code uses) or --template "
      "\"a photo of a {}.\"");

  const tools::Placement place = tools::resolve_placement(a.placement);
  const ClipModel clip = ClipModel::load(a.weights, place.device, place.dtype);
  const ClipTokenizer tok = clip_tokenizer_for(clip, a.vocab, "'" + a.weights + "'");
  const EvalModel full =
      load_eval_model(w, a.checkpoint, imagenet.names, templates, clip, tok, a.batch_size);
  std::printf("checkpoint:   %s (%zu tensors; zero-shot head %s)\n", a.checkpoint.c_str(),
              full.loaded, full.head_source.c_str());
  std::printf("model:        %s (%s) on %s\n", a.weights.c_str(), clip.config().name().c_str(),
              place.str().c_str());
  std::printf("classes:      %lld (%s)\n", static_cast<long long>(num_classes),
              imagenet.file.c_str());

  struct Row {
    std::string dataset;
    int64_t images = 0, classes = 0;
    double accuracy = 0, accuracy_wiseft = 0;
    std::string metrics;
  };
  std::vector<Row> rows;
  TrainLog progress(stderr);
  for (const DgVariant& v : variants) {
    const auto tv = std::chrono::steady_clock::now();
    const std::vector<int64_t>& index = v.data.imagenet_index;
    bool all_rows = static_cast<int64_t>(index.size()) == num_classes;
    for (size_t c = 0; all_rows && c < index.size(); ++c)
      all_rows = index[c] == static_cast<int64_t>(c);
    // A/R (and a partial Sketch): both heads cut to the variant's classes, label = its label.
    EvalModel subset;
    if (!all_rows) {
      const TgptWeights rows_w = select_tgpt_classes(tgpt_model_weights(*full.model), index);
      subset = load_eval_model(rows_w, a.checkpoint, v.data.split.classnames, templates, clip, tok,
                               a.batch_size);
    }
    TgptModel& model = all_rows ? *full.model : *subset.model;
    const int64_t k = model.num_classes();
    std::fprintf(stderr, "%s: %zu images, %lld classes%s\n", v.layout->name.c_str(),
                 v.data.split.test.size(), static_cast<long long>(k),
                 all_rows ? "" : " (their rows of both heads)");
    AccuracyMeter plain(k), wiseft(k);
    evaluate_tgpt(model, v.data.split.test, a.batch_size, plain, wiseft, &progress);
    Row row{v.layout->name, plain.count(), k, plain.top1(), wiseft.top1(), ""};
    if (!a.output.empty()) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - tv).count();
      const nlohmann::json extra = {
          {"task", "dg"},
          {"method", "tgpt"},
          {"dataset", v.layout->name},
          {"checkpoint", a.checkpoint},
          {"weights", a.weights},
          {"data_dir", v.dir},
          {"image_root", v.data.image_root},
          {"imagenet_classnames", imagenet.file},
          {"imagenet_index", index},
          {"head_rows", all_rows ? "all" : "imagenet_index"},
          {"accuracy_wiseft", wiseft.top1()},
          {"zeroshot_head", full.head_source},
          {"placement", place.str()},
          {"wall_seconds", seconds},
      };
      row.metrics = write_metrics((fs::path(a.output) / v.layout->name).string(), plain,
                                  v.data.split.classnames, extra);
    }
    rows.push_back(row);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // One table, then the summary file.
  std::printf("\n| dataset | images | accuracy | WiSE-FT |\n|---|---:|---:|---:|\n");
  double sum = 0, sum_wiseft = 0;
  nlohmann::json list = nlohmann::json::array();
  for (const Row& r : rows) {
    std::printf("| %s | %lld | %.2f%% | %.2f%% |\n", r.dataset.c_str(),
                static_cast<long long>(r.images), r.accuracy, r.accuracy_wiseft);
    sum += r.accuracy;
    sum_wiseft += r.accuracy_wiseft;
    list.push_back({{"dataset", r.dataset},
                    {"images", r.images},
                    {"classes", r.classes},
                    {"accuracy", r.accuracy},
                    {"accuracy_wiseft", r.accuracy_wiseft},
                    {"metrics", r.metrics}});
  }
  const double n = static_cast<double>(rows.size());
  if (rows.size() > 1) std::printf("| Average | | %.2f%% | %.2f%% |\n", sum / n, sum_wiseft / n);
  if (!a.output.empty()) {
    const nlohmann::json summary = {
        {"task", "dg"},
        {"method", "tgpt"},
        {"checkpoint", a.checkpoint},
        {"weights", a.weights},
        {"root", a.root},
        {"imagenet_classnames", imagenet.file},
        {"zeroshot_head", full.head_source},
        {"datasets", list},
        {"skipped", skipped},
        {"average_accuracy", sum / n},
        {"average_accuracy_wiseft", sum_wiseft / n},
        {"placement", place.str()},
        {"wall_seconds", seconds},
    };
    write_outputs({{(fs::path(a.output) / "dg.json").string(), summary.dump(2) + "\n"}});
  }
  return 0;
}

// Every run under the directories; the metrics.json files outside the layout listed on stderr.
tgpt::RunSearch find_runs_reporting_ignored(const std::vector<std::string>& dirs) {
  tgpt::RunSearch found = tgpt::find_runs(dirs);
  if (!found.ignored.empty()) {
    std::fprintf(stderr, "ignored %zu metrics.json outside <dataset>/<K>shots/seed<S>/:\n",
                 found.ignored.size());
    for (size_t k = 0; k < found.ignored.size() && k < 5; ++k)
      std::fprintf(stderr, "  %s\n", found.ignored[k].c_str());
    if (found.ignored.size() > 5) std::fprintf(stderr, "  ...\n");
  }
  return found;
}

struct SummarizeArgs {
  std::vector<std::string> dirs;
  std::string csv, markdown, svg;
};

int run_summarize(const SummarizeArgs& a) {
  using namespace tgpt;
  const RunSearch found = find_runs_reporting_ignored(a.dirs);
  const std::vector<SummaryTable> tables = summarize_runs(found.runs);
  const std::string md = summary_markdown(tables);
  std::fputs(md.c_str(), stdout);
  std::fflush(stdout);
  // stdout is the Markdown alone; what was written goes to stderr.
  std::fprintf(stderr, "%zu runs, %zu tables\n", found.runs.size(), tables.size());
  write_outputs({{a.markdown, md}, {a.csv, summary_csv(tables)}, {a.svg, summary_svg(tables)}});
  return 0;
}

struct CompareArgs {
  std::vector<std::string> dirs;
  int64_t shots = -1;
  std::string markdown, svg, json;
  std::vector<std::string> fields;  // KEY=NUMBER
};

int run_compare(const CompareArgs& a) {
  using namespace tgpt;
  const RunSearch found = find_runs_reporting_ignored(a.dirs);
  const MethodComparison c = compare_methods(found.runs, a.shots);
  // Everything that can fail before anything is printed or written.
  nlohmann::json summary = comparison_json(c);
  for (const std::string& f : a.fields) add_json_number_field(summary, f);
  const std::string md = comparison_markdown(c);
  std::fputs(md.c_str(), stdout);
  std::fflush(stdout);
  std::fprintf(stderr, "%zu methods on %zu datasets at %lld shots\n", c.methods.size(),
               c.rows.size(), static_cast<long long>(c.shots));
  write_outputs({{a.markdown, md}, {a.svg, comparison_svg(c)}, {a.json, summary.dump(2) + "\n"}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // first: may re-execute with other BLAS kernels
  CLI::App app{"tgpt evaluation"};
  tgpt::tools::add_version_flag(app, "tgpt-eval");
  app.require_subcommand(1);
  ZeroShotArgs z;
  CLI::App* zs = app.add_subcommand("zeroshot", "CLIP zero-shot classification accuracy");
  zs->add_option("--weights", z.weights, "tgpt CLIP weight file")->required();
  auto* folder = zs->add_option("--image-folder", z.image_folder, "DIR/<class>/<image> dataset");
  auto* split = zs->add_option("--split", z.split, "CoOp split file (split_zhou_<Name>.json)");
  auto* root = zs->add_option("--image-root", z.image_root, "folder the split's paths are under");
  auto* subset = zs->add_option("--subset", z.subset, "split subset (default test)")
                     ->check(CLI::IsMember({"test", "val", "train"}));
  folder->excludes(split)->excludes(root)->excludes(subset);
  split->needs(root);
  root->needs(split);
  subset->needs(split);
  auto* tmpl = zs->add_option("--template", z.template_str,
                              "one prompt template with {} for the class name "
                              "(default \"a photo of a {}.\")");
  auto* tfile = zs->add_option("--templates", z.templates_file,
                               "templates JSON file {\"DatasetName\": [templates...]}");
  auto* dname = zs->add_option("--dataset", z.dataset, "key of the template list in --templates");
  tmpl->excludes(tfile);
  tfile->needs(dname);
  dname->needs(tfile);
  zs->add_option("--batch-size", z.batch_size, "images/prompts per encoder call (default 64)");
  zs->add_option("--vocab", z.vocab, "BPE merges (default: the merges in the weight file)");
  zs->add_option("--output", z.output, "folder for metrics.json");
  tgpt::tools::add_placement_options(*zs, z.placement);

  TestArgs ta;
  CLI::App* ts =
      app.add_subcommand("test", "a trained TGP-T checkpoint on a split (plain and WiSE-FT heads)");
  ts->add_option("--checkpoint", ta.checkpoint,
                 "tgpt run folder or model file, or the official output folder / state dict")
      ->required();
  ts->add_option("--weights", ta.weights, "tgpt CLIP weight file")->required();
  ts->add_option("--split", ta.split, "CoOp split file (split_zhou_<Name>.json)")->required();
  ts->add_option("--image-root", ta.image_root, "folder the split's paths are under")->required();
  ts->add_option("--subset", ta.subset, "split subset (default test)")
      ->check(CLI::IsMember({"test", "val", "train"}));
  auto* ttf = ts->add_option("--templates", ta.templates_file,
                             "templates JSON file, for checkpoints without a zero-shot head");
  auto* tds = ts->add_option("--dataset", ta.dataset, "key of the template list in --templates");
  ttf->needs(tds);
  tds->needs(ttf);
  ts->add_option("--batch-size", ta.batch_size, "images per batch (default 64)");
  ts->add_option("--vocab", ta.vocab, "BPE merges (default: the merges in the weight file)");
  ts->add_option("--output", ta.output, "folder for metrics.json");
  tgpt::tools::add_placement_options(*ts, ta.placement);

  DgArgs da;
  CLI::App* dg = app.add_subcommand(
      "dg", "domain generalisation: an ImageNet TGP-T checkpoint on ImageNet-V2/-Sketch/-A/-R");
  dg->add_option("--checkpoint", da.checkpoint,
                 "the ImageNet run folder or model file, or the official output folder / state "
                 "dict")
      ->required();
  dg->add_option("--weights", da.weights, "tgpt CLIP weight file")->required();
  dg->add_option("--root", da.root, "$DATA, the folder holding imagenetv2/, imagenet-sketch/, ...")
      ->required();
  auto* dtf = dg->add_option("--templates", da.templates_file,
                             "templates JSON file: its \"ImageNet\" list builds the zero-shot "
                             "head of a checkpoint without one");
  auto* dts = dg->add_option("--template", da.template_str,
                             "one template for that head instead (e.g. \"a photo of a {}.\")");
  dtf->excludes(dts);
  dg->add_option("--datasets", da.datasets,
                 "comma-separated variants (default: those present of ImageNetV2,ImageNetSketch,"
                 "ImageNetA,ImageNetR)")
      ->delimiter(',');
  dg->add_option("--batch-size", da.batch_size, "images per batch (default 64)");
  dg->add_option("--vocab", da.vocab, "BPE merges (default: the merges in the weight file)");
  dg->add_option("--output", da.output, "folder for <variant>/metrics.json and dg.json");
  tgpt::tools::add_placement_options(*dg, da.placement);

  SummarizeArgs sa;
  CLI::App* sm = app.add_subcommand(
      "summarize", "mean ± std over seeds of run folders <dataset>/<K>shots/seed<S>/metrics.json");
  sm->add_option("dirs", sa.dirs, "folders to search (any depth)")->required();
  sm->add_option("--csv", sa.csv, "write the numbers as CSV");
  sm->add_option("--markdown", sa.markdown, "write the Markdown tables");
  sm->add_option("--svg", sa.svg, "write an accuracy-vs-shots plot (SVG)");

  CompareArgs ca;
  CLI::App* cm = app.add_subcommand(
      "compare", "the methods side by side at one shot count (table, bar chart, JSON summary)");
  cm->add_option("dirs", ca.dirs, "folders to search (any depth)")->required();
  cm->add_option("--shots", ca.shots, "the shot count K to compare at (zero-shot runs: any)")
      ->required();
  cm->add_option("--markdown", ca.markdown, "write the Markdown table");
  cm->add_option("--svg", ca.svg, "write a grouped bar chart (SVG)");
  cm->add_option("--json", ca.json, "write the JSON summary");
  cm->add_option("--field", ca.fields, "KEY=NUMBER: add a numeric top-level key to the JSON")
      ->allow_extra_args(false);
  try {
    app.parse(argc, argv);
    if (zs->parsed() && z.image_folder.empty() && z.split.empty())
      throw CLI::ValidationError("zeroshot",
                                 "give --image-folder DIR or --split FILE --image-root DIR");
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;
  }
  const std::string command = cm->parsed()   ? "compare"
                              : sm->parsed() ? "summarize"
                              : ts->parsed() ? "test"
                              : dg->parsed() ? "dg"
                                             : "zeroshot";
  try {
    if (cm->parsed()) return run_compare(ca);
    if (ts->parsed()) return run_test(ta);
    if (dg->parsed()) return run_dg(da);
    return sm->parsed() ? run_summarize(sa) : run_zeroshot(z);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tgpt-eval %s: %s\n", command.c_str(), e.what());
    return 1;
  }
}

/*
 * tgpt-eval — evaluation commands. `zeroshot`: CLIP zero-shot classification accuracy.
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
 * --precision: tools/tool_options.h. Errors go to stderr with exit 1.
 */
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/preprocess.h"
#include "base/error.h"
#include "models/clip/clip.h"
#include "models/clip/zeroshot.h"
#include "tools/tool_options.h"
#include "train/evaluator.h"

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
  try {
    app.parse(argc, argv);
    if (z.image_folder.empty() && z.split.empty())
      throw CLI::ValidationError("zeroshot",
                                 "give --image-folder DIR or --split FILE --image-root DIR");
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;
  }
  try {
    return run_zeroshot(z);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tgpt-eval zeroshot: %s\n", e.what());
    return 1;
  }
}

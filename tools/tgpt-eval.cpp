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
 * 100 · cos(image, class) (models/clip/zeroshot.h). Prints top-1 (and top-5 with at least 5
 * classes) accuracy and, with --output, writes DIR/metrics.json atomically. --device and
 * --precision: tools/tool_options.h. Errors go to stderr with exit 1.
 */
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/preprocess.h"
#include "base/error.h"
#include "models/clip/clip.h"
#include "models/clip/zeroshot.h"
#include "tools/tool_options.h"

namespace {

struct ZeroShotArgs {
  std::string weights, vocab, image_folder, split, image_root, subset = "test";
  std::string template_str = "a photo of a {}.", templates_file, dataset, output;
  int64_t batch_size = 64;
  tgpt::tools::PlacementOptions placement;
};

nlohmann::json accuracy_or_null(int64_t correct, int64_t count) {
  if (count == 0) return nullptr;
  return 100.0 * static_cast<double>(correct) / static_cast<double>(count);
}

int run_zeroshot(const ZeroShotArgs& a) {
  using namespace tgpt;
  namespace fs = std::filesystem;
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

  // Images, batch by batch.
  AccuracyMeter meter(k);
  const std::vector<std::string> paths = ds.paths();
  const std::vector<int64_t> labels = ds.labels();
  for (int64_t b = 0; b < n; b += a.batch_size) {
    const int64_t len = std::min(a.batch_size, n - b);
    const std::vector<std::string> batch(paths.begin() + b, paths.begin() + b + len);
    const Tensor images = preprocess_image_files(batch, r);  // [len,3,R,R]
    const Tensor feats = encode_images_batched(model, images, a.batch_size);
    meter.add(zeroshot_logits(feats, zs.weights),
              std::vector<int64_t>(labels.begin() + b, labels.begin() + b + len));
    // Progress on stderr about every 5% (stdout keeps only the result lines).
    if ((b + len) * 20 / n != b * 20 / n)
      std::fprintf(stderr, "  %lld/%lld images, top-1 so far %.2f%%\n",
                   static_cast<long long>(b + len), static_cast<long long>(n), meter.top1());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // Report (Dassl's result block, then top-5).
  std::printf("=> result\n");
  std::printf("* total: %lld\n", static_cast<long long>(meter.count()));
  std::printf("* correct: %lld\n", static_cast<long long>(meter.correct_top1()));
  std::printf("* accuracy: %.2f%%\n", meter.top1());
  std::printf("* error: %.2f%%\n", 100.0 - meter.top1());
  if (k >= 5) std::printf("* top-5 accuracy: %.2f%%\n", meter.top5());

  if (!a.output.empty()) {
    std::error_code ec;
    fs::create_directories(a.output, ec);
    TGPT_CHECK(fs::is_directory(a.output), "cannot create output folder '", a.output,
               "': ", ec ? ec.message() : "not a folder");
    nlohmann::json per_class = nlohmann::json::array();
    double macro = 0;
    int64_t classes_seen = 0;
    for (int64_t c = 0; c < k; ++c) {
      const int64_t cnt = meter.class_count()[c], cor = meter.class_correct()[c];
      per_class.push_back({{"label", c},
                           {"classname", ds.classnames[c]},
                           {"count", cnt},
                           {"correct", cor},
                           {"accuracy", accuracy_or_null(cor, cnt)}});
      if (cnt > 0)
        macro += 100.0 * static_cast<double>(cor) / static_cast<double>(cnt), ++classes_seen;
    }
    nlohmann::json m = {
        {"task", "zeroshot"},
        {"weights", a.weights},
        {"model", model.config().name()},
        {"placement", place.str()},
        {"data", data_info},
        {"templates", template_info},
        {"prompt_classnames", !a.image_folder.empty() ? "folder name, '_' -> ' '" : "raw"},
        {"logit_scale", 100.0},
        {"num_images", meter.count()},
        {"num_classes", k},
        {"top1_correct", meter.correct_top1()},
        {"accuracy", meter.top1()},
        {"error", 100.0 - meter.top1()},
        {"top5_correct", k >= 5 ? nlohmann::json(meter.correct_top5()) : nlohmann::json()},
        {"top5_accuracy", k >= 5 ? nlohmann::json(meter.top5()) : nlohmann::json()},
        {"mean_per_class_accuracy", classes_seen
                                        ? nlohmann::json(macro / static_cast<double>(classes_seen))
                                        : nlohmann::json()},
        {"per_class", per_class},
        {"wall_seconds", seconds},
    };
    const std::string path = (fs::path(a.output) / "metrics.json").string();
    write_text_file_atomic(path,
                           m.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    std::printf("wrote:        %s\n", path.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tgpt evaluation"};
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

/*
 * test_tgpt_dg.cpp — domain generalisation of an ImageNet TGP-T model (tgpt-eval dg,
 * method.md §4.6, data.md §1.1).
 *
 * Units: tgpt_select_head_rows on random heads (the selected head's logits are the full head's
 * logits at the selected columns, rows copied exactly; errors for bad indices) and
 * select_tgpt_classes on a weights map (both heads cut, everything else shared).
 * The tool: a fake $DATA of a 6-class "ImageNet" with tiny ImageNet-V2, -Sketch, -A (3 classes)
 * and -R (4 classes) trees of coloured PNGs, a tiny random CLIP and a TGP-T checkpoint built from
 * it (zero-shot head from templates, trained head = that head plus noise, so the plain and the
 * WiSE-FT heads differ). dg's accuracies and confusion matrices must equal those of `tgpt-eval
 * test` on the same images: with the same checkpoint for V2 and Sketch, and with the checkpoint
 * cut to the variant's rows (select_tgpt_classes) for A and R. Errors: a checkpoint whose class
 * count is not the ImageNet class list's, a missing variant named in --datasets, no variant at
 * all, a dataset that is not a variant, a checkpoint without zero-shot head and no templates.
 */
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "data/dataset_layout.h"
#include "data/layout_readers.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "engine/safetensors.h"
#include "models/clip/clip.h"
#include "models/tgpt/tgpt.h"
#include "tests/test_files.h"
#include "tests/test_util.h"
#include "tests/tool_test_util.h"
#include "train/fewshot_run.h"
#include "train/tgpt_weights.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

using namespace tgpt;
namespace fs = std::filesystem;

namespace {

using test::error_message;

// The logits TGP-T computes from features [B,F] and a head [C,F]: 100 · normalize(f) · Wᵀ.
Tensor head_logits(const Tensor& features, const Tensor& head) {
  return mul(linear(l2_normalize(features), head), 100.0);
}

}  // namespace

TEST(TgptDg, SelectedRowsGiveTheFullHeadsColumns) {
  Generator g(3);
  for (DType dt : {DType::f64, DType::f32}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor head = g.randn({10, 16}, dt);     // [C,F]
    const Tensor features = g.randn({5, 16}, dt);  // [B,F]
    const std::vector<int64_t> rows = {7, 0, 3, 9, 4};
    const Tensor sel = tgpt_select_head_rows(head, rows);  // [R,F]
    ASSERT_EQ(sel.shape(), (Shape{5, 16}));
    EXPECT_EQ(sel.dtype(), dt);
    const std::vector<double> h = head.to_double_vector(), s = sel.to_double_vector();
    for (size_t r = 0; r < rows.size(); ++r)
      for (int64_t j = 0; j < 16; ++j)
        EXPECT_EQ(s[r * 16 + j], h[static_cast<size_t>(rows[r] * 16 + j)]) << r << "," << j;
    // The logits over the selected classes are the full logits' columns `rows` (same dot
    // products; tolerance for a different summation order in the matrix product).
    const std::vector<double> full = head_logits(features, head).to_double_vector();  // [B,10]
    const std::vector<double> part = head_logits(features, sel).to_double_vector();   // [B,5]
    const double tol = dt == DType::f64 ? 1e-10 : 1e-4;
    for (int64_t b = 0; b < 5; ++b)
      for (size_t r = 0; r < rows.size(); ++r)
        EXPECT_NEAR(part[static_cast<size_t>(b) * 5 + r],
                    full[static_cast<size_t>(b * 10 + rows[r])], tol)
            << b << "," << r;
  }
  const Tensor head = g.randn({4, 6});
  EXPECT_ERROR(tgpt_select_head_rows(head, {0, 4}), "class index 4 (entry 1) is outside the 4-");
  EXPECT_ERROR(tgpt_select_head_rows(head, {-1}), "class index -1 (entry 0)");
  EXPECT_ERROR(tgpt_select_head_rows(head, {}), "no classes selected from the 4-class head");
  EXPECT_ERROR(tgpt_select_head_rows(g.randn({4}), {0}), "a head must be [C, F]");
}

TEST(TgptDg, SelectClassesCutsBothHeadsAndSharesTheRest) {
  Generator g(4);
  TgptWeights w;
  w.files = {"ckpt.safetensors"};
  w.tensors["cls_head.fc.weight"] = g.randn({6, 8});
  w.tensors["zs_weights"] = g.randn({6, 8});
  w.tensors["prompt_learner.query_category"] = g.randn({1, 3, 4});
  w.tensors["prompt_learner.query_content"] = g.randn({1, 5, 4});
  const TgptConfig cfg = tgpt_config_from_weights(w);
  EXPECT_EQ(cfg.num_classes, 6);
  EXPECT_EQ(cfg.category_queries, 3);
  EXPECT_EQ(cfg.content_queries, 5);
  const std::vector<int64_t> rows = {1, 3, 4};
  const TgptWeights s = select_tgpt_classes(w, rows);
  for (const char* name : {"cls_head.fc.weight", "zs_weights"}) {
    const Tensor expect = tgpt_select_head_rows(w.tensors.at(name), rows);
    EXPECT_EQ(s.tensors.at(name).to_double_vector(), expect.to_double_vector()) << name;
  }
  EXPECT_EQ(tgpt_config_from_weights(s).num_classes, 3);
  EXPECT_EQ(s.tensors.at("prompt_learner.query_content").data_ptr(),
            w.tensors.at("prompt_learner.query_content").data_ptr());
  // Without zs_weights only the classifier is cut; bad input is refused.
  w.tensors.erase("zs_weights");
  EXPECT_FALSE(select_tgpt_classes(w, rows).tensors.count("zs_weights"));
  EXPECT_ERROR(select_tgpt_classes(w, {0, 6}), "class index 6");
  w.tensors.erase("cls_head.fc.weight");
  EXPECT_ERROR(select_tgpt_classes(w, rows), "ckpt.safetensors: no cls_head.fc.weight");
  EXPECT_ERROR(tgpt_config_from_weights(w), "no cls_head.fc.weight [C, 2E]");
}

namespace {

const char* kMerges = "#version: 0.2\nr e\nre d</w>\nb l\nbl u\nblu e</w>\ng r\ngr e\ngre e\n";

// The 6 classes of the fake ImageNet (sorted wnids).
const std::vector<std::string> kWnids = {"n01440764", "n01443537", "n01484850",
                                         "n01491361", "n01494475", "n01496331"};
const std::vector<std::string> kNames = {"tench",       "goldfish",         "great white shark",
                                         "tiger shark", "hammerhead shark", "electric ray"};

class DgTool : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = fs::temp_directory_path() / ("tgpt_test_dg_" + std::to_string(getpid()) + "_" + test);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    data_ = dir_ / "data";
    bin_ = test::tool_path("tgpt-eval");
    write_tiny_clip();
    write_data();
    write_checkpoint();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A tiny CLIP (E = W = 32, 8 text heads so the Bonder's 8 heads fit) with embedded merges.
  void write_tiny_clip() {
    ClipConfig c;
    c.embed_dim = 32;
    c.image_resolution = 16;
    c.vision_layers = 1;
    c.vision_width = 32;
    c.vision_patch_size = 8;
    c.vision_heads = 2;
    c.context_length = 77;
    c.transformer_width = 32;
    c.transformer_heads = 8;
    c.transformer_layers = 1;
    c.activation = Activation::quick_gelu;
    c.vocab_size = ClipTokenizer(kMerges).vocab_size();
    Generator g(11);
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const auto& [name, shape] : expected_clip_tensors(c)) {
      Tensor t =
          g.randn(shape, DType::f32, name.find("embedding") != std::string::npos ? 0.1 : 0.2);
      if (name.find("ln_") != std::string::npos && name.ends_with(".weight")) t.fill_(1.0);
      if (name == "logit_scale") t.fill_(std::log(100.0));
      tensors.emplace_back(name, t);
    }
    clip_ = (dir_ / "clip.safetensors").string();
    save_safetensors(
        clip_, tensors,
        {{"tgpt.format", "clip"},
         {"tgpt.format_version", "1"},
         {"tgpt.config", c.to_json()},
         {"tgpt.bpe_merges", std::string(kMerges).substr(std::string(kMerges).find('\n') + 1)}});
  }

  // A 20x20 PNG: a colour per class (6 classes) with noise.
  void image(const fs::path& p, int cls) {
    const int colours[6][3] = {{200, 40, 40},  {40, 190, 50},  {40, 60, 210},
                               {200, 200, 40}, {40, 200, 200}, {200, 40, 200}};
    std::normal_distribution<double> noise(0.0, 40.0);
    std::vector<unsigned char> px(20 * 20 * 3);
    for (size_t i = 0; i < px.size(); ++i)
      px[i] = static_cast<unsigned char>(std::clamp(colours[cls][i % 3] + noise(rng_), 0.0, 255.0));
    fs::create_directories(p.parent_path());
    ASSERT_TRUE(stbi_write_png(p.string().c_str(), 20, 20, 3, px.data(), 60)) << p;
  }

  std::string classnames_txt() const {
    std::string s;
    for (size_t c = 0; c < kWnids.size(); ++c) s += kWnids[c] + " " + kNames[c] + "\n";
    return s;
  }

  // "<prefix><i>.png" (appended piecewise: GCC 12's -Wrestrict misfires on "x" + str).
  static std::string png_name(const char* prefix, int i) {
    std::string s(prefix);
    s += std::to_string(i);
    s += ".png";
    return s;
  }

  // $DATA with V2 (folders 0..5), Sketch (6 wnids), A (3 wnids) and R (4 wnids).
  void write_data() {
    auto variant = [&](const char* name) {
      const DatasetLayout& l = find_dataset_layout(name);
      fs::create_directories(data_ / l.dir);
      test::write_file((data_ / l.dir / "classnames.txt").string(), classnames_txt());
      return data_ / l.dir / l.image_root;
    };
    const fs::path v2 = variant("ImageNetV2");
    for (int c = 0; c < 6; ++c)
      for (int i = 0; i < 3; ++i) image(v2 / std::to_string(c) / png_name("", i), c);
    const fs::path sketch = variant("ImageNetSketch");
    for (int c = 0; c < 6; ++c)
      for (int i = 0; i < 2; ++i) image(sketch / kWnids[c] / png_name("s", i), c);
    const fs::path a = variant("ImageNetA");
    for (int c : {1, 3, 4})
      for (int i = 0; i < 3; ++i) image(a / kWnids[c] / png_name("a", i), c);
    test::write_file((a / "README.txt").string(), "ImageNet-A");
    const fs::path r = variant("ImageNetR");
    for (int c : {0, 2, 3, 5})
      for (int i = 0; i < 2; ++i) image(r / kWnids[c] / png_name("r", i), c);
  }

  // The 6-class checkpoint: zero-shot head from two templates, trained head = it plus noise;
  // model-best.safetensors with every tensor, official.safetensors without zs_weights.
  void write_checkpoint() {
    const ClipModel clip = ClipModel::load(clip_);
    const ClipTokenizer tok = clip_tokenizer_for(clip, "");
    TgptConfig cfg;
    cfg.num_classes = 6;
    cfg.category_queries = 4;
    cfg.content_queries = 4;
    Generator gen(7);
    TgptModel model(clip, cfg, tgpt_token_ids(tok, "a photo of a"), gen);
    const Tensor zs = tgpt_zeroshot_head_from_templates(clip, tok, kNames, templates_, 8);
    model.set_zeroshot_head(add(zs, gen.randn(zs.shape(), DType::f32, 0.3)));
    model.set_zeroshot_weights(zs);
    fs::create_directories(dir_ / "run");
    model.parameters().save((dir_ / "run" / "model-best.safetensors").string(),
                            {{"tgpt.format", "tgpt-prompt"}, {"tgpt.format_version", "1"}});
    std::vector<std::pair<std::string, Tensor>> official;
    for (const auto& [name, t] : model.parameters().items(/*trainable_only=*/true))
      official.emplace_back(name, t);
    save_safetensors((dir_ / "official.safetensors").string(), official, {});
    nlohmann::json t = {{"ImageNet", templates_}, {"Other", {"a {}."}}};
    test::write_file((dir_ / "templates.json").string(), t.dump());
  }

  std::string q(const fs::path& p) const { return test::shell_quote(p); }
  int run(const std::string& args, std::string* out) {
    return test::run_command(q(bin_) + " " + args, dir_, out);
  }
  std::string dg(const std::string& checkpoint, const std::string& extra = "") const {
    return "dg --device cpu --batch-size 4 --checkpoint " + q(checkpoint) + " --weights " +
           q(clip_) + " --root " + q(data_) + " " + extra;
  }
  static nlohmann::json read_json(const fs::path& p) {
    std::ifstream f(p);
    return nlohmann::json::parse(f);
  }
  static std::string read_text(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }

  // The variant's test images as a CoOp split file (paths relative to its image root).
  fs::path split_of(const char* name) {
    const DatasetLayout& l = find_dataset_layout(name);
    const DatasetSplit d = read_dataset(l, (data_ / l.dir).string());
    nlohmann::json split = {{"train", nlohmann::json::array()},
                            {"val", nlohmann::json::array()},
                            {"test", nlohmann::json::array()}};
    for (const LabeledImage& it : d.split.test)
      split["test"].push_back(
          {it.relpath, it.label, d.split.classnames[static_cast<size_t>(it.label)]});
    const fs::path p = dir_ / ("split_" + std::string(name) + ".json");
    test::write_file(p.string(), split.dump());
    return p;
  }

  // tgpt-eval test of `checkpoint` on the variant's images, into dir_/test_<name>.
  fs::path eval_test(const char* name, const fs::path& checkpoint, const std::string& extra = "") {
    const DatasetLayout& l = find_dataset_layout(name);
    const fs::path out = dir_ / ("test_" + std::string(name));
    std::string log;
    EXPECT_EQ(run("test --device cpu --batch-size 4 --checkpoint " + q(checkpoint) + " --weights " +
                      q(clip_) + " --split " + q(split_of(name)) + " --image-root " +
                      q(data_ / l.dir / l.image_root) + " --output " + q(out) + " " + extra,
                  &log),
              0)
        << log;
    return out;
  }

  // dg's metrics of a variant equal tgpt-eval test's (accuracies and every prediction count).
  void expect_same_results(const fs::path& dg_dir, const fs::path& test_dir, const char* name) {
    SCOPED_TRACE(name);
    const nlohmann::json d = read_json(dg_dir / "metrics.json");
    const nlohmann::json t = read_json(test_dir / "metrics.json");
    EXPECT_EQ(d.at("task"), "dg");
    EXPECT_EQ(d.at("dataset"), name);
    EXPECT_EQ(d.at("num_images"), t.at("num_images"));
    EXPECT_EQ(d.at("num_classes"), t.at("num_classes"));
    EXPECT_EQ(d.at("top1_correct"), t.at("top1_correct"));
    EXPECT_DOUBLE_EQ(d.at("accuracy").get<double>(), t.at("accuracy").get<double>());
    EXPECT_DOUBLE_EQ(d.at("accuracy_wiseft").get<double>(), t.at("accuracy_wiseft").get<double>());
    EXPECT_EQ(read_text(dg_dir / "confusion.csv"), read_text(test_dir / "confusion.csv"));
  }

  fs::path dir_, data_, bin_;
  std::string clip_;
  std::vector<std::string> templates_ = {"a photo of a {}.", "a {} thing."};
  std::mt19937_64 rng_{5};
};

}  // namespace

TEST_F(DgTool, MatchesTestOnEveryVariant) {
  if (!fs::exists(bin_)) GTEST_SKIP() << "tgpt-eval not built next to the tests";
  const fs::path ckpt = dir_ / "run";
  const fs::path out = dir_ / "dg";
  std::string log;
  ASSERT_EQ(run(dg(ckpt.string(), "--output " + q(out)), &log), 0) << log;
  for (const char* s : {"| dataset | images | accuracy | WiSE-FT |", "| ImageNetV2 | 18 |",
                        "| ImageNetSketch | 12 |", "| ImageNetA | 9 |", "| ImageNetR | 8 |",
                        "| Average |", "zero-shot head zs_weights of the checkpoint"})
    EXPECT_NE(log.find(s), std::string::npos) << s << "\n" << log;

  // V2 and Sketch: the whole head, as tgpt-eval test with the same checkpoint.
  for (const char* name : {"ImageNetV2", "ImageNetSketch"})
    expect_same_results(out / name, eval_test(name, ckpt), name);
  // A and R: the rows of both heads at imagenet_index, as tgpt-eval test with the checkpoint cut
  // to those rows.
  const TgptWeights w = read_tgpt_weights(ckpt.string());
  for (const char* name : {"ImageNetA", "ImageNetR"}) {
    const DatasetLayout& l = find_dataset_layout(name);
    const DatasetSplit d = read_dataset(l, (data_ / l.dir).string());
    const TgptWeights cut = select_tgpt_classes(w, d.imagenet_index);
    std::vector<std::pair<std::string, Tensor>> tensors(cut.tensors.begin(), cut.tensors.end());
    const fs::path cut_file = dir_ / ("cut_" + std::string(name) + ".safetensors");
    save_safetensors(cut_file.string(), tensors, {{"tgpt.format", "tgpt-prompt"}});
    expect_same_results(out / name, eval_test(name, cut_file), name);
    const nlohmann::json m = read_json(out / name / "metrics.json");
    EXPECT_EQ(m.at("imagenet_index").get<std::vector<int64_t>>(), d.imagenet_index);
    EXPECT_EQ(m.at("num_classes"), l.name == "ImageNetA" ? 3 : 4);
  }

  // The summary: every variant's numbers and the averages.
  const nlohmann::json s = read_json(out / "dg.json");
  EXPECT_EQ(s.at("task"), "dg");
  ASSERT_EQ(s.at("datasets").size(), 4u);
  double sum = 0;
  for (const nlohmann::json& r : s.at("datasets")) {
    const nlohmann::json m = read_json(out / r.at("dataset").get<std::string>() / "metrics.json");
    EXPECT_DOUBLE_EQ(r.at("accuracy").get<double>(), m.at("accuracy").get<double>());
    EXPECT_DOUBLE_EQ(r.at("accuracy_wiseft").get<double>(), m.at("accuracy_wiseft").get<double>());
    sum += r.at("accuracy").get<double>();
  }
  EXPECT_NEAR(s.at("average_accuracy").get<double>(), sum / 4, 1e-12);
  EXPECT_TRUE(s.at("skipped").empty());
}

TEST_F(DgTool, OfficialCheckpointBuildsTheImageNetZeroShotHead) {
  if (!fs::exists(bin_)) GTEST_SKIP() << "tgpt-eval not built next to the tests";
  const fs::path ckpt = dir_ / "official.safetensors";
  std::string log;
  // No zero-shot head and no templates: the error says what to give.
  EXPECT_EQ(run(dg(ckpt.string(), "--datasets ImageNetV2"), &log), 1);
  EXPECT_NE(log.find("holds no zero-shot head"), std::string::npos) << log;
  EXPECT_NE(log.find("\"ImageNet\" list"), std::string::npos) << log;
  // With the templates file its "ImageNet" list builds the head, as test --dataset ImageNet.
  const fs::path out = dir_ / "dg";
  ASSERT_EQ(run(dg(ckpt.string(), "--datasets ImageNetV2 --templates " +
                                      q(dir_ / "templates.json") + " --output " + q(out)),
                &log),
            0)
      << log;
  EXPECT_NE(log.find("built from 2 templates of ImageNet"), std::string::npos) << log;
  expect_same_results(
      out / "ImageNetV2",
      eval_test("ImageNetV2", ckpt,
                "--templates " + q(dir_ / "templates.json") + " --dataset ImageNet"),
      "ImageNetV2");
  // The same head as the checkpoint that holds it: the same results.
  const fs::path full = dir_ / "dg_full";
  ASSERT_EQ(run(dg((dir_ / "run").string(), "--datasets ImageNetV2 --output " + q(full)), &log), 0)
      << log;
  EXPECT_EQ(read_text(out / "ImageNetV2" / "confusion.csv"),
            read_text(full / "ImageNetV2" / "confusion.csv"));
}

TEST_F(DgTool, MissingVariantsAndWrongCheckpoints) {
  if (!fs::exists(bin_)) GTEST_SKIP() << "tgpt-eval not built next to the tests";
  const std::string ckpt = (dir_ / "run").string();
  std::string log;
  // A default variant that is missing is skipped with a note; a named one is an error.
  fs::remove_all(data_ / "imagenet-adversarial");
  const fs::path out = dir_ / "dg";
  ASSERT_EQ(run(dg(ckpt, "--output " + q(out)), &log), 0) << log;
  EXPECT_NE(log.find("note: ImageNetA: no folder"), std::string::npos) << log;
  const nlohmann::json s = read_json(out / "dg.json");
  EXPECT_EQ(s.at("datasets").size(), 3u);
  EXPECT_EQ(s.at("skipped"), nlohmann::json::array({"ImageNetA"}));
  EXPECT_FALSE(fs::exists(out / "ImageNetA"));
  EXPECT_EQ(run(dg(ckpt, "--datasets ImageNetV2,imagenet_a"), &log), 1);
  EXPECT_NE(log.find("--datasets: ImageNetA has no folder"), std::string::npos) << log;
  EXPECT_EQ(run(dg(ckpt, "--datasets OxfordPets"), &log), 1);
  EXPECT_NE(log.find("OxfordPets is not an ImageNet variant"), std::string::npos) << log;

  // A checkpoint whose class count is not the ImageNet class list's (here a 3-class one).
  const TgptWeights w = read_tgpt_weights(ckpt);
  const TgptWeights cut = select_tgpt_classes(w, {0, 1, 2});
  std::vector<std::pair<std::string, Tensor>> tensors(cut.tensors.begin(), cut.tensors.end());
  save_safetensors((dir_ / "three.safetensors").string(), tensors,
                   {{"tgpt.format", "tgpt-prompt"}});
  EXPECT_EQ(run(dg((dir_ / "three.safetensors").string()), &log), 1);
  EXPECT_NE(log.find("the classifier has 3 classes, the ImageNet class list"), std::string::npos)
      << log;
  // The class list is $DATA/imagenet/classnames.txt when it exists: a 7-class one differs from
  // the variants' copies.
  fs::create_directories(data_ / "imagenet");
  test::write_file((data_ / "imagenet" / "classnames.txt").string(),
                   classnames_txt() + "n01498041 stingray\n");
  EXPECT_EQ(run(dg(ckpt), &log), 1);
  EXPECT_NE(log.find("is not the ImageNet class list"), std::string::npos) << log;
  fs::remove_all(data_ / "imagenet");

  // No variant at all under the root; a root that does not exist.
  for (const char* v : {"imagenetv2", "imagenet-sketch", "imagenet-rendition"})
    fs::remove_all(data_ / v);
  EXPECT_EQ(run(dg(ckpt), &log), 1);
  EXPECT_NE(log.find("no ImageNet variant under --root"), std::string::npos) << log;
  fs::remove_all(data_);
  EXPECT_EQ(run(dg(ckpt), &log), 1);
  EXPECT_NE(log.find("is not a folder"), std::string::npos) << log;
}

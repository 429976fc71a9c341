/*
 * test_tgpt_train.cpp — a whole TGP-T run (train/tgpt_run.h) on a tiny generated dataset: three
 * classes of coloured images with captions, a tiny random CLIP with its own BPE merges. Training
 * must lift test accuracy above the zero-shot head's, and write every output file in the
 * formats users' scripts read.
 */
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "engine/random.h"
#include "engine/safetensors.h"
#include "models/clip/clip.h"
#include "models/clip/zeroshot.h"
#include "models/nn/parameters.h"
#include "models/tgpt/tgpt.h"
#include "tests/test_util.h"
#include "tests/tool_test_util.h"
#include "train/evaluator.h"
#include "train/fewshot_run.h"
#include "train/trainer.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace fs = std::filesystem;
using namespace tgpt;

namespace {

const char* kMerges = "#version: 0.2\nr e\nre d</w>\nb l\nbl u\nblu e</w>\ng r\ngr e\ngre e\n";

// A tiny CLIP (E = W = 32, 8 text heads so the Bonder's 8 heads fit) with embedded merges.
void write_tiny_clip(const std::string& path) {
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
    Tensor t = g.randn(shape, DType::f32, name.find("embedding") != std::string::npos ? 0.1 : 0.2);
    if (name.find("ln_") != std::string::npos && name.ends_with(".weight")) t.fill_(1.0);
    if (name == "logit_scale") t.fill_(std::log(100.0));
    tensors.emplace_back(name, t);
  }
  save_safetensors(
      path, tensors,
      {{"tgpt.format", "clip"},
       {"tgpt.format_version", "1"},
       {"tgpt.config", c.to_json()},
       {"tgpt.bpe_merges", std::string(kMerges).substr(std::string(kMerges).find('\n') + 1)}});
}

// A 20x20 image of one colour per class with noise.
void write_image(const fs::path& p, int label, std::mt19937_64& rng) {
  const int colours[3][3] = {{200, 40, 40}, {40, 190, 50}, {40, 60, 210}};
  std::normal_distribution<double> noise(0.0, 25.0);
  std::vector<unsigned char> px(20 * 20 * 3);
  for (size_t i = 0; i < px.size(); ++i)
    px[i] = static_cast<unsigned char>(std::clamp(colours[label][i % 3] + noise(rng), 0.0, 255.0));
  fs::create_directories(p.parent_path());
  ASSERT_TRUE(stbi_write_png(p.string().c_str(), 20, 20, 3, px.data(), 60)) << p;
}

class TgptTrainRun : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tgpt_test_train_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write_tiny_clip((dir_ / "clip.safetensors").string());
    std::mt19937_64 rng(5);
    data_.dataset = "Colours";
    data_.classnames = {"red", "green", "blue"};
    const char* words[3] = {"red", "green", "blue"};
    int n = 0;
    for (int c = 0; c < 3; ++c) {
      for (int i = 0; i < 14; ++i, ++n) {
        const fs::path p = dir_ / "images" / (std::to_string(n) + ".png");
        write_image(p, c, rng);
        LabeledImage it;
        it.path = p.string();
        it.label = c;
        it.relpath = p.filename().string();
        if (i < 6) {
          data_.train.push_back(it);
          data_.train_captions.push_back(std::string("a ") + words[c] + " square with noise");
        } else if (i < 8) {
          data_.val.push_back(it);
        } else {
          data_.test.push_back(it);
        }
      }
    }
    // The same data as a CoOp split file (paths relative to images/), for the tools.
    nlohmann::json split = {{"train", nlohmann::json::array()},
                            {"val", nlohmann::json::array()},
                            {"test", nlohmann::json::array()}};
    auto add = [&](const char* subset, const std::vector<LabeledImage>& items) {
      for (const LabeledImage& it : items)
        split[subset].push_back({fs::path(it.path).filename().string(), it.label,
                                 data_.classnames[static_cast<size_t>(it.label)]});
    };
    add("train", data_.train);
    add("val", data_.val);
    add("test", data_.test);
    std::ofstream(dir_ / "split_zhou_Colours.json") << split.dump(2);
    opt_.weights = (dir_ / "clip.safetensors").string();
    opt_.templates = {"a photo of a {}.", "a {} thing."};
    opt_.output_dir = (dir_ / "out").string();
    opt_.header = "** Config **\nTEST: true";
    opt_.lr = 2e-3;
    opt_.max_iter = 40;
    opt_.warmup_iter = 5;
    opt_.eval_every = 20;
    opt_.print_every = 10;
    opt_.tgpt.category_queries = 8;
    opt_.tgpt.content_queries = 8;
    opt_.run_info = {{"method", "tgpt"}, {"shots", 6}, {"seed", 1}};
    opt_.console = nullptr;
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  FewshotData data_;
  FewshotRunOptions opt_;
};

TEST_F(TgptTrainRun, TrainingBeatsTheZeroShotHeadAndWritesEveryOutput) {
  // The zero-shot head alone (the model before any step).
  double zeroshot = 0;
  {
    const ClipModel clip = ClipModel::load(opt_.weights);
    const ClipTokenizer tok = clip_tokenizer_for(clip, "");
    TgptConfig cfg = opt_.tgpt;
    cfg.num_classes = 3;
    Generator gen(1);
    TgptModel model(clip, cfg, tgpt_token_ids(tok, opt_.init_text), gen);
    model.set_zeroshot_head(
        tgpt_zeroshot_head_from_templates(clip, tok, data_.classnames, opt_.templates, 8));
    AccuracyMeter plain(3), wiseft(3);
    evaluate_tgpt(model, data_.test, 8, plain, wiseft);
    zeroshot = plain.top1();
    // With W = W_zs the WiSE-FT head is the same head.
    EXPECT_EQ(plain.correct_top1(), wiseft.correct_top1());
  }
  const FewshotRunResult r = run_fewshot_training(opt_, data_);
  std::printf(
      "test accuracy: zero-shot head %.1f%%, after %lld iterations %.1f%% (WiSE-FT %.1f%%)\n",
      zeroshot, static_cast<long long>(r.iteration), r.test_accuracy, r.test_accuracy_wiseft);
  EXPECT_EQ(r.status, TrainStatus::finished);
  EXPECT_EQ(r.iteration, 40);
  EXPECT_GT(r.best_iteration, 0);
  EXPECT_GT(r.test_accuracy, zeroshot + 20.0) << "zero-shot " << zeroshot;
  EXPECT_GE(r.test_accuracy, 80.0);

  const fs::path out = opt_.output_dir;
  for (const char* f :
       {"log.txt", "metrics.json", "per_class.csv", "confusion.csv", "test.json",
        "model-best.safetensors", "model-last.safetensors", "checkpoint-last.safetensors"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  std::ifstream lf(out / "log.txt");
  const std::string log((std::istreambuf_iterator<char>(lf)), {});
  for (const char* s :
       {"** Config **", "Setting fixed seed: 1", "Iter [10/40]", "cls_loss", "category_loss",
        "content_loss", "Evaluate on the *val* set", "Finish training",
        "Evaluate on the *test* set", "* accuracy: ", "* accuracy_wiseft: ", "Elapsed: "})
    EXPECT_NE(log.find(s), std::string::npos) << s << "\n" << log;
  // parse_test_res.py reads the first "* accuracy: x%" after "Finish training".
  const size_t fin = log.find("Finish training");
  const size_t acc = log.find("* accuracy: ", fin);
  ASSERT_NE(acc, std::string::npos);
  EXPECT_NEAR(std::stod(log.substr(acc + 12)), r.test_accuracy, 0.005);

  std::ifstream mf(out / "metrics.json");
  const nlohmann::json m = nlohmann::json::parse(mf);
  EXPECT_EQ(m.at("method"), "tgpt");
  EXPECT_EQ(m.at("dataset"), "Colours");
  EXPECT_NEAR(m.at("accuracy").get<double>(), r.test_accuracy, 1e-9);
  EXPECT_NEAR(m.at("accuracy_wiseft").get<double>(), r.test_accuracy_wiseft, 1e-9);
  std::ifstream tf(out / "test.json");
  const nlohmann::json t = nlohmann::json::parse(tf);
  EXPECT_NEAR(t.at("test acc").get<double>(), r.test_accuracy, 1e-9);

  // The best model file holds every TGP-T tensor under the official names.
  const SafetensorsFile best = SafetensorsFile::open((out / "model-best.safetensors").string());
  EXPECT_TRUE(best.contains("prompt_learner.bonder_content.cross_attn.q.weight"));
  EXPECT_TRUE(best.contains("cls_head.fc.weight"));
  EXPECT_TRUE(best.contains("zs_weights"));
  EXPECT_EQ(best.metadata().at("tgpt.format"), "tgpt-prompt");

  // tgpt-eval test on the run folder gives the run's own test accuracies.
  const fs::path bin = test::tool_path("tgpt-eval");
  if (!fs::exists(bin)) GTEST_SKIP() << "tgpt-eval not built next to the tests";
  std::string log_text;
  ASSERT_EQ(
      test::run_command(
          test::shell_quote(bin) + " test --device cpu --checkpoint " + test::shell_quote(out) +
              " --weights " + test::shell_quote(opt_.weights) + " --split " +
              test::shell_quote(dir_ / "split_zhou_Colours.json") + " --image-root " +
              test::shell_quote(dir_ / "images") + " --output " + test::shell_quote(dir_ / "eval"),
          dir_, &log_text),
      0)
      << log_text;
  std::ifstream ef(dir_ / "eval" / "metrics.json");
  const nlohmann::json e = nlohmann::json::parse(ef);
  EXPECT_NEAR(e.at("accuracy").get<double>(), r.test_accuracy, 1e-9) << log_text;
  EXPECT_NEAR(e.at("accuracy_wiseft").get<double>(), r.test_accuracy_wiseft, 1e-9) << log_text;
  EXPECT_NE(log_text.find("* accuracy_wiseft: "), std::string::npos) << log_text;
  // A checkpoint of another class count is refused with a clear message.
  nlohmann::json two = nlohmann::json::parse(std::ifstream(dir_ / "split_zhou_Colours.json"));
  for (const char* subset : {"train", "val", "test"}) {
    nlohmann::json kept = nlohmann::json::array();
    for (const auto& item : two[subset])
      if (item[1].get<int>() < 2) kept.push_back(item);
    two[subset] = kept;
  }
  std::ofstream(dir_ / "split_two.json") << two.dump();
  EXPECT_EQ(test::run_command(test::shell_quote(bin) + " test --device cpu --checkpoint " +
                                  test::shell_quote(out) + " --weights " +
                                  test::shell_quote(opt_.weights) + " --split " +
                                  test::shell_quote(dir_ / "split_two.json") + " --image-root " +
                                  test::shell_quote(dir_ / "images"),
                              dir_, &log_text),
            1);
  EXPECT_NE(log_text.find("another dataset"), std::string::npos) << log_text;
}

// The CoOp baseline through the same run: SGD on the shared context, CE over all classes.
TEST_F(TgptTrainRun, CoopRunsThroughTheSameLoop) {
  FewshotRunOptions o = opt_;
  o.method = FewshotMethod::coop;
  o.lr = 0.05;
  o.warmup_iter = 2;
  o.coop.n_ctx = 4;
  o.run_info["method"] = "coop";
  FewshotData d = data_;
  d.train_captions.clear();  // CoOp reads no captions
  const FewshotRunResult r = run_fewshot_training(o, d);
  std::printf("CoOp test accuracy after %lld iterations: %.1f%%\n",
              static_cast<long long>(r.iteration), r.test_accuracy);
  EXPECT_EQ(r.status, TrainStatus::finished);
  EXPECT_EQ(r.iteration, 40);
  EXPECT_EQ(r.test_accuracy_wiseft, r.test_accuracy);  // no WiSE-FT head
  const fs::path out = o.output_dir;
  for (const char* f :
       {"log.txt", "metrics.json", "model-best.safetensors", "checkpoint-last.safetensors"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  EXPECT_FALSE(fs::exists(out / "test.json"));
  std::ifstream mf(out / "metrics.json");
  const nlohmann::json m = nlohmann::json::parse(mf);
  EXPECT_EQ(m.at("method"), "coop");
  EXPECT_FALSE(m.contains("accuracy_wiseft"));
  const SafetensorsFile best = SafetensorsFile::open((out / "model-best.safetensors").string());
  EXPECT_EQ(best.names(), std::vector<std::string>{"prompt_learner.ctx"});
  EXPECT_EQ(best.metadata().at("tgpt.format"), "tgpt-coop");
}

// A console stream that requests a stop (as Ctrl-C does) when it is handed a line holding
// `needle`: the trainer then stops before the next step, deterministically.
FILE* console_stopping_at(std::string* needle) {
  cookie_io_functions_t io{};
  io.write = [](void* cookie, const char* buf, size_t n) -> ssize_t {
    if (std::string(buf, n).find(*static_cast<std::string*>(cookie)) != std::string::npos)
      request_stop();
    return static_cast<ssize_t>(n);
  };
  FILE* f = fopencookie(needle, "w", io);
  if (f) std::setvbuf(f, nullptr, _IOLBF, 0);
  return f;
}

// Stopped at iteration 5 with 3 loader threads (batches 6.. already prepared) and resumed: the
// same model, byte for byte, as an uninterrupted run with the batches made on the training
// thread.
TEST_F(TgptTrainRun, ResumeWithPrefetchedBatchesContinuesToTheSameModel) {
  FewshotRunOptions full = opt_;
  full.max_iter = 12;
  full.eval_every = 12;
  full.print_every = 1;
  full.loader_threads = 0;
  full.output_dir = (dir_ / "full").string();
  ASSERT_EQ(run_fewshot_training(full, data_).status, TrainStatus::finished);

  FewshotRunOptions part = full;
  part.loader_threads = 3;
  part.output_dir = (dir_ / "part").string();
  std::string needle = "Iter [5/12]";
  part.console = console_stopping_at(&needle);
  ASSERT_NE(part.console, nullptr);
  const FewshotRunResult r1 = run_fewshot_training(part, data_);
  std::fclose(part.console);
  clear_stop_request();
  ASSERT_EQ(r1.status, TrainStatus::interrupted);
  ASSERT_EQ(r1.iteration, 5);
  part.console = nullptr;
  part.resume = true;
  const FewshotRunResult r2 = run_fewshot_training(part, data_);
  ASSERT_EQ(r2.status, TrainStatus::finished);
  EXPECT_EQ(r2.iteration, 12);
  const auto bytes = [](const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  const std::string want = bytes(dir_ / "full" / "model-last.safetensors");
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(bytes(dir_ / "part" / "model-last.safetensors"), want);
  // Every batch was the predicted one (prepared ahead), before and after the resume.
  const std::string log = bytes(dir_ / "part" / "log.txt");
  EXPECT_NE(log.find("Input pipeline: 3 loader threads"), std::string::npos) << log;
  EXPECT_EQ(log.find("differed from the predicted one"), std::string::npos) << log;
}

TEST_F(TgptTrainRun, BadInputGetsClearErrors) {
  FewshotData d = data_;
  d.train_captions.pop_back();
  try {
    run_fewshot_training(opt_, d);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("captions for"), std::string::npos) << e.what();
  }
  d = data_;
  d.test[0].label = 3;
  EXPECT_THROW(run_fewshot_training(opt_, d), Error);
  FewshotRunOptions o = opt_;
  o.resume = true;
  o.output_dir = (dir_ / "nothing_here").string();
  try {
    run_fewshot_training(o, data_);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no checkpoint"), std::string::npos) << e.what();
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The command line: tgpt-data synth -> tgpt-train (TGP-T and CoOp) -> tgpt-eval summarize.

namespace {

class TrainTool : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* t : {"tgpt-train", "tgpt-eval", "tgpt-data"})
      if (!fs::exists(test::tool_path(t))) GTEST_SKIP() << t << " not built next to the tests";
    dir_ = fs::temp_directory_path() / ("tgpt_test_train_tool_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write_tiny_clip((dir_ / "clip.safetensors").string());
    std::string log;
    ASSERT_EQ(test::run_command(tool("tgpt-data") + " synth --out " + q(dir_ / "world") +
                                    " --pretrain 4 --size 32 --train-per-class 4"
                                    " --val-per-class 2 --test-per-class 3",
                                dir_, &log),
              0)
        << log;
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  static std::string q(const fs::path& p) { return test::shell_quote(p); }
  static std::string tool(const char* name) { return q(test::tool_path(name)); }
  // tgpt-train on SynthShapes at toy size; extra arguments appended.
  std::string train_command(const std::string& output, const std::string& extra) const {
    return tool("tgpt-train") + " --device cpu --dataset SynthShapes --root " + q(dir_ / "world") +
           " --shots 2 --seed 3 --weights " + q(dir_ / "clip.safetensors") + " --output " +
           q(dir_ / output) + " --templates " + q(dir_ / "world" / "templates.json") + " " + extra +
           " OPTIM.MAX_ITER 6 OPTIM.WARMUP_ITER 2 TRAIN.TEST_FREQ 3 TRAIN.PRINT_FREQ 1"
           " MODEL.BONDER.NUM_Q_CTG 8 MODEL.BONDER.NUM_Q_CON 8 DATALOADER.TEST.BATCH_SIZE 16";
  }
  fs::path dir_;
};

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST_F(TrainTool, TrainsBothMethodsAndSummarizes) {
  std::string log;
  ASSERT_EQ(test::run_command(train_command("out_tgpt", ""), dir_, &log), 0) << log;
  const fs::path run = dir_ / "out_tgpt" / "SynthShapes" / "2shots" / "seed3";
  for (const char* f : {"log.txt", "metrics.json", "test.json", "split_fewshot.json",
                        "model-best.safetensors", "checkpoint-last.safetensors"})
    EXPECT_TRUE(fs::exists(run / f)) << f << "\n" << log;
  const std::string text = read_all(run / "log.txt");
  for (const char* s :
       {"** Config **", "NUM_SHOTS: 2", "NAME: SynthShapes", "Iter [6/6]", "content_loss",
        "Evaluate on the *val* set", "Finish training", "* accuracy: "})
    EXPECT_NE(text.find(s), std::string::npos) << s << "\n" << text;
  // The split in the run folder is the one tgpt-data split draws.
  ASSERT_EQ(
      test::run_command(tool("tgpt-data") + " split --dataset SynthShapes --root " +
                            q(dir_ / "world") + " --shots 2 --seed 3 -o " + q(dir_ / "split.json"),
                        dir_, &log),
      0)
      << log;
  EXPECT_EQ(read_all(dir_ / "split.json"), read_all(run / "split_fewshot.json"));

  ASSERT_EQ(test::run_command(train_command("out_coop", "--method coop"), dir_, &log), 0) << log;
  const fs::path coop = dir_ / "out_coop" / "SynthShapes" / "2shots" / "seed3";
  EXPECT_TRUE(fs::exists(coop / "metrics.json")) << log;
  // The linear probe on the same split: a metrics.json that summarize and compare read.
  ASSERT_EQ(test::run_command(train_command("out_probe", "--method probe"), dir_, &log), 0) << log;
  const fs::path probe = dir_ / "out_probe" / "SynthShapes" / "2shots" / "seed3";
  const std::string probe_metrics = read_all(probe / "metrics.json");
  EXPECT_NE(probe_metrics.find("\"method\": \"probe\""), std::string::npos) << probe_metrics;
  EXPECT_NE(read_all(probe / "log.txt").find("Chosen L2 penalty"), std::string::npos);
  // CoOp's own schedule gives way to the command line's OPTIM.MAX_ITER and TRAIN.TEST_FREQ.
  const std::string coop_log = read_all(coop / "log.txt");
  for (const char* s : {"Iter [6/6]", "Evaluate on the *val* set"})
    EXPECT_NE(coop_log.find(s), std::string::npos) << s << "\n" << coop_log;

  ASSERT_EQ(test::run_command(tool("tgpt-eval") + " summarize " + q(dir_ / "out_tgpt") + " " +
                                  q(dir_ / "out_coop") + " --csv " + q(dir_ / "summary.csv"),
                              dir_, &log),
            0)
      << log;
  EXPECT_NE(log.find("tgpt"), std::string::npos) << log;
  EXPECT_NE(log.find("coop"), std::string::npos) << log;
  EXPECT_NE(log.find("SynthShapes"), std::string::npos) << log;
}

// The on-disk feature cache: a second run on the same images and weights reads the val and test
// features instead of encoding them and gets the same numbers; a damaged entry is reported,
// ignored and rewritten.
TEST_F(TrainTool, FeatureCacheIsReusedAndSurvivesDamage) {
  std::string log;
  const std::string cache = " --feature-cache " + q(dir_ / "fcache");
  ASSERT_EQ(test::run_command(train_command("out_c1", cache), dir_, &log), 0) << log;
  EXPECT_NE(log.find("set stored in the cache"), std::string::npos) << log;
  ASSERT_EQ(test::run_command(train_command("out_c2", cache), dir_, &log), 0) << log;
  EXPECT_NE(log.find("Image features of the val set from the cache"), std::string::npos) << log;
  EXPECT_NE(log.find("Image features of the test set from the cache"), std::string::npos) << log;
  const fs::path r1 = dir_ / "out_c1" / "SynthShapes" / "2shots" / "seed3";
  const fs::path r2 = dir_ / "out_c2" / "SynthShapes" / "2shots" / "seed3";
  const nlohmann::json m1 = nlohmann::json::parse(read_all(r1 / "metrics.json"));
  const nlohmann::json m2 = nlohmann::json::parse(read_all(r2 / "metrics.json"));
  EXPECT_EQ(m1["accuracy"], m2["accuracy"]);
  EXPECT_EQ(m1["accuracy_wiseft"], m2["accuracy_wiseft"]);
  // Truncate every entry: the next run says so, encodes again and still agrees.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir_ / "fcache")) {
    fs::resize_file(e.path(), fs::file_size(e.path()) / 2);
    ++entries;
  }
  EXPECT_EQ(entries, 2);  // val and test
  ASSERT_EQ(test::run_command(train_command("out_c3", cache), dir_, &log), 0) << log;
  EXPECT_NE(log.find("ignoring the damaged entry"), std::string::npos) << log;
  const nlohmann::json m3 = nlohmann::json::parse(
      read_all(dir_ / "out_c3" / "SynthShapes" / "2shots" / "seed3" / "metrics.json"));
  EXPECT_EQ(m1["accuracy"], m3["accuracy"]);
  ASSERT_EQ(test::run_command(train_command("out_c4", cache), dir_, &log), 0) << log;
  EXPECT_NE(log.find("Image features of the test set from the cache"), std::string::npos) << log;
  // The linear probe keeps its train, val and test features (without tokens) beside them, and
  // a second probe run reads them back with the same result.
  auto count_entries = [&] {
    int k = 0;
    for (const auto& e : fs::directory_iterator(dir_ / "fcache")) k += e.is_regular_file();
    return k;
  };
  ASSERT_EQ(test::run_command(train_command("out_p1", cache + " --method probe"), dir_, &log), 0)
      << log;
  EXPECT_EQ(count_entries(), 5);
  EXPECT_NE(log.find("Image features of the train set stored in the cache"), std::string::npos)
      << log;
  ASSERT_EQ(test::run_command(train_command("out_p2", cache + " --method probe"), dir_, &log), 0)
      << log;
  EXPECT_EQ(count_entries(), 5);
  for (const char* set : {"train", "val", "test"})
    EXPECT_NE(log.find(std::string("Image features of the ") + set + " set from the cache"),
              std::string::npos)
        << log;
  const auto probe_acc = [&](const char* out) {
    return nlohmann::json::parse(
        read_all(dir_ / out / "SynthShapes" / "2shots" / "seed3" / "metrics.json"))["accuracy"];
  };
  EXPECT_EQ(probe_acc("out_p1"), probe_acc("out_p2"));
}

TEST_F(TrainTool, BadInputAndInterruption) {
  std::string log;
  // A training transform tgpt does not have.
  EXPECT_EQ(test::run_command(train_command("out_t", "") + " INPUT.TRANSFORMS \"('cutout',)\"",
                              dir_, &log),
            1);
  EXPECT_NE(log.find("'cutout' is not supported"), std::string::npos) << log;
  // No templates while INPUT.TEXT_AUG is template_mining.
  std::string cmd = train_command("out_a", "");
  cmd.replace(cmd.find(" --templates "),
              std::string(" --templates ").size() + q(dir_ / "world" / "templates.json").size(),
              "");
  EXPECT_EQ(test::run_command(cmd, dir_, &log), 1) << log;
  EXPECT_NE(log.find("--templates"), std::string::npos) << log;
  // Training images without a caption: how many and the first keys.
  const fs::path caps = dir_ / "world" / "synth_shapes" / "captions.txt";
  const std::string all = read_all(caps);
  std::ofstream(caps, std::ios::trunc) << all.substr(all.find('\n', all.size() / 2) + 1);
  EXPECT_EQ(test::run_command(train_command("out_b", ""), dir_, &log), 1) << log;
  EXPECT_NE(log.find("caption"), std::string::npos) << log;
  // ... unless the content loss is off, as the log then says.
  EXPECT_EQ(test::run_command(train_command("out_c", "--no-content-loss"), dir_, &log), 0) << log;
  EXPECT_NE(read_all(dir_ / "out_c" / "SynthShapes" / "2shots" / "seed3" / "log.txt")
                .find("no content loss"),
            std::string::npos);
  std::ofstream(caps, std::ios::trunc) << all;

  // Ctrl-C finishes the step, saves the checkpoint and exits 130; --resume finishes the run.
  const fs::path run = dir_ / "out_d" / "SynthShapes" / "2shots" / "seed3";
  std::string long_run = train_command("out_d", "");
  long_run.replace(long_run.find("OPTIM.MAX_ITER 6"), 16, "OPTIM.MAX_ITER 100000");
  const std::string script = long_run + " & pid=$!; for i in $(seq 600); do grep -q 'Iter \\[' " +
                             q(run / "log.txt") +
                             " 2>/dev/null && break; sleep 0.1; done; kill -INT $pid; wait $pid";
  std::ofstream(dir_ / "interrupt.sh") << script << "\n";
  EXPECT_EQ(test::run_command("bash " + q(dir_ / "interrupt.sh"), dir_, &log), 130) << log;
  EXPECT_TRUE(fs::exists(run / "checkpoint-last.safetensors")) << log;
  EXPECT_NE(read_all(run / "log.txt").find("Stopped at iteration"), std::string::npos);
  // Resuming at 100000 iterations would take long; a resume with another max_iter is refused,
  // which shows --resume reads the checkpoint's record (bit-identical resume itself is tested in
  // test_checkpoint.cpp).
  EXPECT_EQ(test::run_command(train_command("out_d", "--resume"), dir_, &log), 1) << log;
  EXPECT_NE(log.find("max_iter"), std::string::npos) << log;
}

// The input pipeline: the same training whatever the number of loader threads (0: on the
// training thread), bit for bit.
TEST_F(TrainTool, LoaderThreadsDoNotChangeTheRun) {
  std::string log;
  for (const char* n : {"0", "1", "3"})
    ASSERT_EQ(test::run_command(
                  train_command(std::string("out_l") + n, std::string("--loader-threads ") + n),
                  dir_, &log),
              0)
        << log;
  const auto run = [&](const char* n) {
    return dir_ / (std::string("out_l") + n) / "SynthShapes" / "2shots" / "seed3";
  };
  EXPECT_NE(read_all(run("0") / "log.txt").find("Input pipeline: on the training thread"),
            std::string::npos);
  EXPECT_NE(read_all(run("3") / "log.txt").find("Input pipeline: 3 loader threads"),
            std::string::npos);
  const std::string model0 = read_all(run("0") / "model-last.safetensors");
  ASSERT_FALSE(model0.empty());
  EXPECT_EQ(read_all(run("1") / "model-last.safetensors"), model0);
  EXPECT_EQ(read_all(run("3") / "model-last.safetensors"), model0);
  EXPECT_EQ(read_all(run("1") / "metrics.json"), read_all(run("0") / "metrics.json"));
}

// A corrupt training image: the run stops with an error naming it (and pointing at --skip-bad);
// --skip-bad decodes everything first, leaves it and a missing test image out, draws the
// few-shot split from the readable images and says so in log.txt.
TEST_F(TrainTool, UnreadableImagesAreNamedOrSkipped) {
  std::string log;
  // The draw tgpt-train makes: corrupt its first training image.
  ASSERT_EQ(
      test::run_command(tool("tgpt-data") + " split --dataset SynthShapes --root " +
                            q(dir_ / "world") + " --shots 2 --seed 3 -o " + q(dir_ / "split.json"),
                        dir_, &log),
      0)
      << log;
  const nlohmann::json drawn = nlohmann::json::parse(read_all(dir_ / "split.json"));
  const fs::path images = dir_ / "world" / "synth_shapes" / "images";
  const std::string bad_train = drawn["train"][0][0].get<std::string>();
  const std::string gone_test = drawn["test"][0][0].get<std::string>();
  std::ofstream(images / bad_train, std::ios::binary | std::ios::trunc) << "\x89PNG\r\n\x1a\n junk";
  const std::string bad_name = fs::path(bad_train).filename().string();

  EXPECT_EQ(test::run_command(train_command("out_bad", ""), dir_, &log), 1) << log;
  EXPECT_NE(log.find("images failed"), std::string::npos) << log;
  EXPECT_NE(log.find(bad_name), std::string::npos) << log;
  EXPECT_NE(log.find("--skip-bad"), std::string::npos) << log;

  fs::remove(images / gone_test);
  ASSERT_EQ(test::run_command(train_command("out_skip", "--skip-bad"), dir_, &log), 0) << log;
  const fs::path run = dir_ / "out_skip" / "SynthShapes" / "2shots" / "seed3";
  const std::string text = read_all(run / "log.txt");
  EXPECT_NE(text.find("Skipped 2 unreadable images (--skip-bad): first:"), std::string::npos)
      << text;
  EXPECT_NE(text.find(bad_name), std::string::npos) << text;
  EXPECT_NE(text.find(fs::path(gone_test).filename().string()), std::string::npos) << text;
  EXPECT_NE(text.find("Iter [6/6]"), std::string::npos) << text;
  const nlohmann::json used = nlohmann::json::parse(read_all(run / "split_fewshot.json"));
  EXPECT_EQ(used["train"].size(), drawn["train"].size());  // 2 per class still available
  EXPECT_EQ(used["test"].size() + 1, drawn["test"].size());
  for (const auto& it : used["train"]) EXPECT_NE(it[0].get<std::string>(), bad_train);
  for (const auto& it : used["test"]) EXPECT_NE(it[0].get<std::string>(), gone_test);
  EXPECT_EQ(text.find("no readable training image left"), std::string::npos) << text;

  // Every training image of the first class unreadable: the run goes on, and the log says which
  // class has no example left.
  const nlohmann::json full = nlohmann::json::parse(
      read_all(dir_ / "world" / "synth_shapes" / "split_zhou_SynthShapes.json"));
  std::string first_class;
  for (const auto& it : full["train"]) {
    if (it[1].get<int>() != 0) continue;
    first_class = it[2].get<std::string>();
    std::ofstream(images / it[0].get<std::string>(), std::ios::binary | std::ios::trunc) << "junk";
  }
  ASSERT_FALSE(first_class.empty());
  ASSERT_EQ(test::run_command(train_command("out_empty", "--skip-bad"), dir_, &log), 0) << log;
  const std::string empty_log =
      read_all(dir_ / "out_empty" / "SynthShapes" / "2shots" / "seed3" / "log.txt");
  EXPECT_NE(empty_log.find("warning: 1 class has no readable training image left: " + first_class),
            std::string::npos)
      << empty_log;
}

}  // namespace

namespace {

// The built-in default pipeline at toy size: learned merges, contrastive pretraining from
// scratch, then the pretrained weights in zero-shot evaluation and TGP-T training.
TEST_F(TrainTool, PretrainsAClipFromScratch) {
  std::string log;
  ASSERT_EQ(test::run_command(tool("tgpt-tokenize") + " learn --captions " +
                                  q(dir_ / "world" / "pretrain" / "captions.txt") +
                                  " --merges 200 -o " + q(dir_ / "merges.txt"),
                              dir_, &log),
            0)
      << log;
  ASSERT_EQ(test::run_command(tool("tgpt-train") + " --method clip --device cpu --images " +
                                  q(dir_ / "world" / "pretrain" / "images") + " --captions " +
                                  q(dir_ / "world" / "pretrain" / "captions.txt") + " --vocab " +
                                  q(dir_ / "merges.txt") + " --output " + q(dir_ / "clip") +
                                  " --max-iter 4 --warmup-iter 1 --batch-size 4",
                              dir_, &log),
            0)
      << log;
  const fs::path weights = dir_ / "clip" / "clip.safetensors";
  ASSERT_TRUE(fs::exists(weights)) << log;
  const ClipModel clip = ClipModel::load(weights.string());
  EXPECT_EQ(clip.config().embed_dim, clip.config().transformer_width);
  EXPECT_FALSE(clip.bpe_merges().empty());
  ASSERT_EQ(
      test::run_command(
          tool("tgpt-eval") + " zeroshot --device cpu --weights " + q(weights) + " --split " +
              q(dir_ / "world" / "synth_shapes" / "split_zhou_SynthShapes.json") +
              " --image-root " + q(dir_ / "world" / "synth_shapes" / "images") + " --templates " +
              q(dir_ / "world" / "templates.json") + " --dataset SynthShapes",
          dir_, &log),
      0)
      << log;
  EXPECT_NE(log.find("* accuracy: "), std::string::npos) << log;
  // No merges: a clear error.
  EXPECT_EQ(test::run_command(tool("tgpt-train") + " --method clip --images " +
                                  q(dir_ / "world" / "pretrain" / "images") + " --output " +
                                  q(dir_ / "clip2"),
                              dir_, &log),
            1);
  EXPECT_NE(log.find("--vocab"), std::string::npos) << log;
}

// The main job's pipeline (scripts/main_job.sh) at toy size: world -> BPE -> CLIP pretraining ->
// zero-shot, CoOp and TGP-T on the four datasets -> table, plot and summary.json; a second run
// reuses the pretrained CLIP. (The numbers of a toy run mean nothing; the default size's are in
// the README.)
TEST(MainJob, ToyPipelineEndToEnd) {
  for (const char* t : {"tgpt-data", "tgpt-tokenize", "tgpt-train", "tgpt-eval"})
    if (!fs::exists(test::tool_path(t))) GTEST_SKIP() << t << " not built next to the tests";
  const fs::path dir =
      fs::temp_directory_path() / ("tgpt_test_main_job_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path script = fs::path(TGPT_TEST_SOURCE_DIR) / "scripts" / "main_job.sh";
  const std::string cmd = "bash " + test::shell_quote(script) + " --size toy --bin " +
                          test::shell_quote(test::tool_path("tgpt-train").parent_path()) +
                          " --out " + test::shell_quote(dir / "out");
  std::string log;
  ASSERT_EQ(test::run_command(cmd, dir, &log), 0) << log;
  const fs::path out = dir / "out";
  for (const char* f : {"summary.md", "summary.svg", "summary.json", "clip/clip.safetensors",
                        "vocab/merges.txt", "world/world.json"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  std::ifstream f(out / "summary.json");
  const nlohmann::json j = nlohmann::json::parse(f);
  for (const char* key : {"zero_shot_accuracy", "coop_accuracy", "tgpt_accuracy"}) {
    ASSERT_TRUE(j.contains(key) && j[key].is_number()) << key << "\n" << j.dump(2);
    EXPECT_GE(j[key].get<double>(), 0.0) << key;
    EXPECT_LE(j[key].get<double>(), 100.0) << key;
  }
  ASSERT_TRUE(j.contains("main_job_seconds") && j["main_job_seconds"].is_number());
  EXPECT_GT(j["main_job_seconds"].get<double>(), 0.0);
  for (const char* name : {"SynthShapes", "SynthColors", "SynthScenes", "SynthSpecies"}) {
    ASSERT_TRUE(j["per_dataset"].contains(name)) << name;
    for (const char* key :
         {"zero_shot_accuracy", "coop_accuracy", "tgpt_accuracy", "probe_accuracy"})
      EXPECT_TRUE(j["per_dataset"][name].contains(key)) << name << " " << key;
    for (const char* method : {"coop", "tgpt", "probe"})
      EXPECT_TRUE(fs::exists(out / "runs" / method / name / "16shots" / "seed1" / "log.txt"));
  }
  // The averages are the means of the per-dataset values.
  double sum = 0;
  for (const auto& [name, v] : j["per_dataset"].items()) sum += v["tgpt_accuracy"].get<double>();
  EXPECT_NEAR(j["tgpt_accuracy"].get<double>(), sum / 4, 1e-9);
  EXPECT_NE(log.find("Dataset"), std::string::npos) << log;  // the table was printed

  // Again: the world and the CLIP are reused, the runs redone.
  ASSERT_EQ(test::run_command(cmd, dir, &log), 0) << log;
  EXPECT_NE(log.find("already holds this world"), std::string::npos) << log;
  EXPECT_NE(log.find("reusing"), std::string::npos) << log;
  EXPECT_TRUE(fs::exists(out / "summary.json"));
  // Bad arguments: a clear error.
  EXPECT_EQ(test::run_command("bash " + test::shell_quote(script) + " --size huge", dir, &log), 2);
  EXPECT_NE(log.find("--size"), std::string::npos) << log;
  fs::remove_all(dir);
}

}  // namespace

/*
 * test_clip_pretrain.cpp — contrastive CLIP pretraining (train/clip_pretrain.h) on a generated
 * world: 4 colours x 6 noisy solid PNGs with captions in three phrasings, a small merges file.
 * A tiny ViT CLIP trained for 80 steps: the contrastive loss falls, the zero-shot accuracy over the
 * 4 colours (models/clip/zeroshot.h, from the written weight file and the merges embedded in it)
 * rises from chance to well above it; the evaluate callback runs; the weight file loads with
 * ClipModel::load. Resuming from a checkpoint continues to the same weights as an uninterrupted
 * run. captions.txt errors name the file and line.
 */
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "data/preprocess.h"
#include "engine/autograd.h"
#include "engine/safetensors.h"
#include "models/clip/zeroshot.h"
#include "tests/test_util.h"
#include "train/clip_pretrain.h"
#include "train/evaluator.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wpedantic"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

using namespace tgpt;
namespace fs = std::filesystem;

namespace {

struct Colour {
  const char* name;
  int r, g, b;
};
const Colour kColours[] = {
    {"red", 220, 30, 30}, {"green", 30, 200, 40}, {"blue", 30, 40, 220}, {"yellow", 230, 220, 30}};
const char* kPhrasings[] = {"a {} image", "a photo of something {}", "{}"};

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
  ASSERT_TRUE(f.good()) << p;
}

std::string read_text_for_test(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::string fill(const std::string& templ, const std::string& word) {
  std::string s = templ;
  s.replace(s.find("{}"), 2, word);
  return s;
}

class ClipPretrainTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("tgpt_test_clip_pretrain_" + std::to_string(getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_ / "world");
    std::mt19937_64 rng(5);
    std::uniform_int_distribution<int> noise(-25, 25), size(14, 24);
    std::string captions;
    for (int c = 0; c < 4; ++c) {
      for (int i = 0; i < 6; ++i) {
        const int w = size(rng), h = size(rng);
        std::vector<uint8_t> px(static_cast<size_t>(w * h * 3));
        const int base[3] = {kColours[c].r, kColours[c].g, kColours[c].b};
        for (size_t k = 0; k < px.size(); ++k)
          px[k] = static_cast<uint8_t>(std::clamp(base[k % 3] + noise(rng), 0, 255));
        const std::string key = std::string(kColours[c].name) + "_" + std::to_string(i) + ".png";
        const std::string path = (*dir_ / "world" / key).string();
        ASSERT_TRUE(stbi_write_png(path.c_str(), w, h, 3, px.data(), w * 3));
        captions += key + "\t" + fill(kPhrasings[i % 3], kColours[c].name) + "\n";
      }
    }
    write_text(*dir_ / "world" / "captions.txt", captions);
    write_text(*dir_ / "merges.txt", "#version: 0.2\nr e\nre d</w>\ng r\nb l\ni m\n");
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static fs::path* dir_;

  static ClipPretrainOptions options(const std::string& out) {
    ClipPretrainOptions o;
    o.image_dir = (*dir_ / "world").string();
    o.merges = (*dir_ / "merges.txt").string();
    o.output_dir = (*dir_ / out).string();
    ClipConfig& c = o.config;
    c.embed_dim = 16;
    c.image_resolution = 16;
    c.vision_layers = 1;
    c.vision_width = 32;
    c.vision_patch_size = 8;
    c.vision_heads = 2;
    c.context_length = 16;
    c.transformer_width = 32;
    c.transformer_heads = 2;
    c.transformer_layers = 1;
    o.lr = 2e-3;
    o.weight_decay = 0.1;
    o.batch_size = 8;
    o.max_iter = 80;
    o.warmup_iter = 5;
    o.print_every = 20;
    o.seed = 3;
    o.console = nullptr;
    return o;
  }

  // Zero-shot top-1 (percent) over the 4 colours on the 24 images, evaluation transform.
  static double zeroshot_accuracy(const ClipModel& model, const ClipTokenizer& tok) {
    NoGradGuard ng;
    std::vector<std::vector<std::string>> prompts;
    for (const Colour& c : kColours) prompts.push_back({fill("a {} image", c.name)});
    const ZeroShotClassifier zs = build_zeroshot_classifier(model, tok, prompts, 8);
    std::vector<std::string> paths;
    std::vector<int64_t> labels;
    for (int c = 0; c < 4; ++c)
      for (int i = 0; i < 6; ++i) {
        paths.push_back(
            (*dir_ / "world" / (std::string(kColours[c].name) + "_" + std::to_string(i) + ".png"))
                .string());
        labels.push_back(c);
      }
    const Tensor images = preprocess_image_files(paths, model.config().image_resolution);
    const Tensor logits = zeroshot_logits(model.encode_image(images), zs.weights).contiguous();
    AccuracyMeter meter(4);
    meter.add(logits, labels);
    return meter.top1();
  }
};
fs::path* ClipPretrainTest::dir_ = nullptr;

}  // namespace

TEST_F(ClipPretrainTest, LossFallsAndZeroShotRisesAboveChance) {
  ClipPretrainOptions o = options("run");
  int evaluations = 0;
  ClipTokenizer tok(read_text_for_test((*dir_ / "merges.txt").string()));
  o.eval_every = 40;
  o.evaluate = [&](const ClipModel& m) {
    ++evaluations;
    EXPECT_TRUE(m.trainable());
    return zeroshot_accuracy(m, tok);
  };
  // The untrained model (same seed and config) is at chance level.
  ClipConfig c0 = o.config;
  c0.vocab_size = tok.vocab_size();
  const double before = zeroshot_accuracy(ClipModel::init_random(c0, o.seed), tok);
  const ClipPretrainResult r = run_clip_pretraining(o);
  ASSERT_EQ(r.status, TrainStatus::finished);
  EXPECT_EQ(r.iteration, 80);
  EXPECT_EQ(evaluations, 2);
  std::printf("  loss %.4f -> %.4f, zero-shot %.1f%% -> %.1f%% (callback %.1f%%), %.1fs\n",
              r.first_loss, r.last_loss, before, r.last_eval, r.last_eval, r.seconds);
  EXPECT_LT(r.last_loss, r.first_loss - 0.5);
  // The weight file is a normal tgpt CLIP file with the merges embedded.
  ClipModel loaded = ClipModel::load(r.weights_path);
  EXPECT_FALSE(loaded.trainable());
  const ClipTokenizer embedded = clip_tokenizer_for(loaded, "");
  EXPECT_EQ(embedded.vocab_size(), tok.vocab_size());
  const double after = zeroshot_accuracy(loaded, embedded);
  std::printf("  zero-shot from the weight file: %.1f%%\n", after);
  EXPECT_GE(after, 75.0);  // chance: 25%
  EXPECT_GT(after, before);
  EXPECT_DOUBLE_EQ(after, r.last_eval);
  EXPECT_TRUE(fs::exists(fs::path(o.output_dir) / "log.txt"));
  EXPECT_TRUE(fs::exists(fs::path(o.output_dir) / "checkpoint-last.safetensors"));
}

TEST_F(ClipPretrainTest, ResumeContinuesToTheSameWeights) {
  ClipPretrainOptions full = options("full");
  full.max_iter = 12;
  full.batch_size = 5;      // 24 pairs: epochs end with a smaller batch
  full.loader_threads = 0;  // the batches on the training thread
  run_clip_pretraining(full);
  // The same run stopped at iteration 6 by a checkpoint, then resumed.
  ClipPretrainOptions first = options("resumed");
  first.max_iter = 12;
  first.batch_size = 5;
  first.save_every = 6;
  first.loader_threads = 3;  // batches 7.. already prepared when it stops
  first.evaluate = [](const ClipModel&) {
    request_stop();  // stops before step 7 (after the checkpoint of step 6)
    return 0.0;
  };
  first.eval_every = 6;
  ClipPretrainResult r1 = run_clip_pretraining(first);
  clear_stop_request();
  ASSERT_EQ(r1.status, TrainStatus::interrupted);
  ASSERT_EQ(r1.iteration, 6);
  ClipPretrainOptions second = first;
  second.evaluate = nullptr;
  second.resume = true;
  ClipPretrainResult r2 = run_clip_pretraining(second);
  ASSERT_EQ(r2.status, TrainStatus::finished);
  SafetensorsFile a = SafetensorsFile::open(fs::path(full.output_dir) / "clip.safetensors");
  SafetensorsFile b = SafetensorsFile::open(fs::path(second.output_dir) / "clip.safetensors");
  ASSERT_EQ(a.entries().size(), b.entries().size());
  for (const SafetensorsEntry& e : a.entries())
    EXPECT_EQ(a.get(e.name).to_double_vector(), b.get(e.name).to_double_vector()) << e.name;
}

TEST_F(ClipPretrainTest, CaptionErrorsNameTheLine) {
  const fs::path world = *dir_ / "world";
  auto expect_error = [&](const std::string& text, const std::string& needle) {
    write_text(*dir_ / "bad_captions.txt", text);
    try {
      read_caption_pairs(world.string(), (*dir_ / "bad_captions.txt").string());
      ADD_FAILURE() << "no error for: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("red_0.png\ta red image\nred_1.png a red image\n", "bad_captions.txt:2: ");
  expect_error("red_0.png\t  \n", "empty caption");
  expect_error("nothing.png\ta thing\n", "no image file");
  expect_error("../merges.txt\ta thing\n", "leaves the image folder");
  expect_error("a/../../merges.txt\ta thing\n", "leaves the image folder");
  expect_error("./\ta thing\n", "leaves the image folder");
  expect_error("/etc/passwd\ta thing\n", "relative");
  expect_error("\n\n", "no (image, caption) pairs");
  const auto pairs = read_caption_pairs(world.string(), (world / "captions.txt").string());
  EXPECT_EQ(pairs.size(), 24u);
  EXPECT_EQ(pairs[1].caption, "a photo of something red");
  ClipPretrainOptions o = options("bad");
  o.batch_size = 1;
  EXPECT_THROW(run_clip_pretraining(o), Error);
  o = options("bad");
  o.config.vocab_size = 7;
  EXPECT_THROW(run_clip_pretraining(o), Error);
  o = options("bad");
  o.merges = (*dir_ / "missing.txt").string();
  EXPECT_THROW(run_clip_pretraining(o), Error);
  o = options("bad");
  o.compute_dtype = DType::bf16;
  EXPECT_THROW(run_clip_pretraining(o), Error);
}

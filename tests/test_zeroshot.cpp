/*
 * test_zeroshot.cpp — CLIP zero-shot classification end to end on a tiny random CLIP written by
 * the test (save_safetensors + tgpt metadata, a small embedded merges table), a generated image
 * folder and CoOp split: the library (models/clip/zeroshot.h, the batching of train/evaluator.h)
 * against a reference computed here image by image and prompt by prompt with encode_image /
 * encode_text and plain f64 loops (the accuracy meter's hand-worked cases are in
 * test_evaluator.cpp); and the tgpt-eval / tgpt-embed binaries (run with
 * std::system from the build folder) on good and bad inputs (exit 1 with a message, no crash).
 */
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "data/dataset.h"
#include "data/image.h"
#include "data/preprocess.h"
#include "base/device.h"
#include "base/error.h"
#include "engine/safetensors.h"
#include "models/clip/clip.h"
#include "models/clip/zeroshot.h"
#include "models/tokenizer.h"
#include "tests/test_util.h"
#include "tests/tool_test_util.h"
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

// Merges of the tiny model (4 merges -> vocabulary 256 + 256 + 4 + 2 = 518).
const char* kMerges = "c a\nca t</w>\nd o\ndo g</w>";

ClipConfig tiny_config() {
  ClipConfig c;
  c.embed_dim = 16;
  c.image_resolution = 16;
  c.vision_layers = 1;
  c.vision_width = 32;
  c.vision_patch_size = 8;
  c.vision_heads = 2;
  c.context_length = 77;
  c.vocab_size = 518;
  c.transformer_width = 32;
  c.transformer_heads = 2;
  c.transformer_layers = 1;
  c.activation = Activation::quick_gelu;
  return c;
}

void add_block(std::map<std::string, Shape>& s, const std::string& p, int64_t w) {
  s[p + ".ln_1.weight"] = {w};
  s[p + ".ln_1.bias"] = {w};
  s[p + ".attn.in_proj_weight"] = {3 * w, w};
  s[p + ".attn.in_proj_bias"] = {3 * w};
  s[p + ".attn.out_proj.weight"] = {w, w};
  s[p + ".attn.out_proj.bias"] = {w};
  s[p + ".ln_2.weight"] = {w};
  s[p + ".ln_2.bias"] = {w};
  s[p + ".mlp.c_fc.weight"] = {4 * w, w};
  s[p + ".mlp.c_fc.bias"] = {4 * w};
  s[p + ".mlp.c_proj.weight"] = {w, 4 * w};
  s[p + ".mlp.c_proj.bias"] = {w};
}

// Writes a random tiny CLIP as a tgpt weight file (merges embedded unless empty).
void write_tiny_clip(const std::string& path, const std::string& merges, uint64_t seed = 7,
                     int64_t vocab_size = 518) {
  ClipConfig c = tiny_config();
  c.vocab_size = vocab_size;
  const int64_t W = c.vision_width, Wt = c.transformer_width, E = c.embed_dim;
  const int64_t P = c.vision_patch_size, G = c.image_resolution / P;
  std::map<std::string, Shape> shapes = {
      {"visual.conv1.weight", {W, 3, P, P}},
      {"visual.class_embedding", {W}},
      {"visual.positional_embedding", {G * G + 1, W}},
      {"visual.ln_pre.weight", {W}},
      {"visual.ln_pre.bias", {W}},
      {"visual.ln_post.weight", {W}},
      {"visual.ln_post.bias", {W}},
      {"visual.proj", {W, E}},
      {"token_embedding.weight", {c.vocab_size, Wt}},
      {"positional_embedding", {c.context_length, Wt}},
      {"ln_final.weight", {Wt}},
      {"ln_final.bias", {Wt}},
      {"text_projection", {Wt, E}},
      {"logit_scale", Shape{}},
  };
  for (int64_t i = 0; i < c.vision_layers; ++i)
    add_block(shapes, "visual.transformer.resblocks." + std::to_string(i), W);
  for (int64_t i = 0; i < c.transformer_layers; ++i)
    add_block(shapes, "transformer.resblocks." + std::to_string(i), Wt);
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, shape] : shapes) {
    std::vector<double> v(static_cast<size_t>(shape.numel()));
    const bool gain = name.find("ln_") != std::string::npos && name.ends_with(".weight");
    const double scale =
        name == "token_embedding.weight" || name.find("embedding") != std::string::npos ? 0.5 : 0.2;
    for (double& x : v) x = gain ? 1.0 + 0.1 * normal(rng) : scale * normal(rng);
    if (name == "logit_scale") v[0] = std::log(100.0);
    tensors.emplace_back(name, Tensor::from_vector(v, shape, DType::f32));
  }
  std::map<std::string, std::string> meta = {
      {"tgpt.format", "clip"}, {"tgpt.format_version", "1"}, {"tgpt.config", c.to_json()}};
  if (!merges.empty()) meta["tgpt.bpe_merges"] = merges;
  save_safetensors(path, tensors, meta);
}

// A w x h PNG with a smooth pattern depending on seed.
void write_png(const fs::path& p, int w, int h, int seed) {
  fs::create_directories(p.parent_path());
  std::vector<uint8_t> px(static_cast<size_t>(w * h * 3));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int ch = 0; ch < 3; ++ch)
        px[static_cast<size_t>((y * w + x) * 3 + ch)] = static_cast<uint8_t>(
            (seed * 53 + x * (7 + ch * seed) + y * (3 + seed % 5) * (ch + 1)) % 256);
  ASSERT_TRUE(stbi_write_png(p.string().c_str(), w, h, 3, px.data(), w * 3)) << p;
}

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f << text;
  ASSERT_TRUE(f.good()) << p;
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const std::vector<std::string> kClassDirs = {"cat", "dog", "red_car", "sea", "a_b", "tree"};
const std::vector<std::string> kTemplates = {"a photo of a {}.", "{} here", "my {}!"};

// Shared fixture: model file, image folder (6 classes x 2 images, odd sizes), split file.
class ZeroShotTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("tgpt_test_zeroshot_" + std::to_string(getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    write_tiny_clip((*dir_ / "tiny.safetensors").string(), kMerges);
    write_tiny_clip((*dir_ / "tiny_nomerges.safetensors").string(), "");
    nlohmann::json split = {{"train", nlohmann::json::array()},
                            {"val", nlohmann::json::array()},
                            {"test", nlohmann::json::array()}};
    int seed = 1;
    for (size_t c = 0; c < kClassDirs.size(); ++c) {
      for (int i = 0; i < 2; ++i, ++seed) {
        const std::string rel = kClassDirs[c] + "/img" + std::to_string(i) + ".png";
        write_png(*dir_ / "folder" / rel, 17 + 3 * seed % 11, 13 + 5 * seed % 9, seed);
        std::string name = kClassDirs[c];
        std::replace(name.begin(), name.end(), '_', ' ');
        split[i == 0 ? "test" : "val"].push_back({rel, c, name});
      }
    }
    split["test"].push_back({"cat/img1.png", 0, "cat"});  // the test subset holds 7 images
    write_text(*dir_ / "split_zhou_Tiny.json", split.dump(4));
    write_text(*dir_ / "templates.json",
               nlohmann::json{{"Other", {"x {}"}}, {"Tiny", kTemplates}}.dump());
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static fs::path* dir_;

  static std::string model_path() { return (*dir_ / "tiny.safetensors").string(); }
  static ClipTokenizer tokenizer() {
    return ClipTokenizer(std::string("#version: 0.2\n") + kMerges);
  }
};
fs::path* ZeroShotTest::dir_ = nullptr;

// Reference: per class, mean (f64) of encode_text of each prompt alone, L2-normalised (f64).
std::vector<std::vector<double>> reference_weights(const ClipModel& m, const ClipTokenizer& tok,
                                                   const std::vector<std::string>& classnames,
                                                   const std::vector<std::string>& templates,
                                                   std::vector<std::vector<double>>* means) {
  const int64_t e = m.config().embed_dim;
  std::vector<std::vector<double>> w;
  for (const auto& name : classnames) {
    std::vector<double> acc(static_cast<size_t>(e), 0.0);
    for (const auto& t : templates) {
      const size_t at = t.find("{}");
      const std::string prompt = t.substr(0, at) + name + t.substr(at + 2);
      const std::vector<double> f = m.encode_text(tok.tokenize_tensor({prompt})).to_double_vector();
      for (int64_t d = 0; d < e; ++d) acc[d] += f[d];
    }
    for (double& x : acc) x /= static_cast<double>(templates.size());
    if (means) means->push_back(acc);
    double nrm = 0;
    for (double x : acc) nrm += x * x;
    nrm = std::max(std::sqrt(nrm), 1e-12);
    for (double& x : acc) x /= nrm;
    w.push_back(acc);
  }
  return w;
}

// Reference logits of one image file: 100 * cos(encode_image(preprocess(file)), w_c).
std::vector<double> reference_logits(const ClipModel& m, const std::string& path,
                                     const std::vector<std::vector<double>>& w) {
  const Tensor x =
      clip_preprocess(decode_image_file(path), m.config().image_resolution).unsqueeze(0);
  const std::vector<double> f = m.encode_image(x).to_double_vector();
  double nrm = 0;
  for (double v : f) nrm += v * v;
  nrm = std::max(std::sqrt(nrm), 1e-12);
  std::vector<double> out;
  for (const auto& wc : w) {
    double dot = 0;
    for (size_t d = 0; d < f.size(); ++d) dot += f[d] / nrm * wc[d];
    out.push_back(100.0 * dot);
  }
  return out;
}

// Rank of the true class with the meter's tie rule (higher, or equal with a smaller index).
int64_t rank_of(const std::vector<double>& logits, int64_t y) {
  int64_t r = 0;
  for (int64_t j = 0; j < static_cast<int64_t>(logits.size()); ++j)
    if (logits[j] > logits[y] || (logits[j] == logits[y] && j < y)) ++r;
  return r;
}

struct Expected {
  int64_t n = 0, top1 = 0, top5 = 0;
  std::vector<int64_t> class_count, class_correct;
};

Expected reference_accuracy(const ClipModel& m, const ImageDataset& ds,
                            const std::vector<std::vector<double>>& w) {
  Expected ex;
  ex.class_count.assign(ds.classnames.size(), 0);
  ex.class_correct.assign(ds.classnames.size(), 0);
  for (const auto& it : ds.items) {
    const int64_t r = rank_of(reference_logits(m, it.path, w), it.label);
    ++ex.n;
    ++ex.class_count[it.label];
    if (r == 0) ++ex.top1, ++ex.class_correct[it.label];
    if (r < 5) ++ex.top5;
  }
  return ex;
}

using test::run_command;

}  // namespace

// ---------------------------------------------------------------------------------------------
// Library against the reference

TEST_F(ZeroShotTest, TokenizerForModel) {
  const ClipModel m = ClipModel::load(model_path());
  const ClipTokenizer tok = clip_tokenizer_for(m, "");
  EXPECT_EQ(tok.vocab_size(), 518);
  // ids: 256 bytes, 256 bytes+</w>, "ca" 512, "cat</w>" 513, "do" 514, "dog</w>" 515, SOT, EOT.
  EXPECT_EQ(tok.encode("cat dog"), (std::vector<int32_t>{513, 515}));
  const Tensor t = tokenize_for_model(m, tok, {"Cat", "dog"});
  ASSERT_EQ(t.shape(), Shape({2, 77}));
  EXPECT_EQ(t.dtype(), DType::i32);
  EXPECT_EQ(t.data<int32_t>()[0], 516);
  EXPECT_EQ(t.data<int32_t>()[1], 513);
  EXPECT_EQ(t.data<int32_t>()[2], 517);
  EXPECT_EQ(t.data<int32_t>()[3], 0);

  std::string long_text;
  for (int i = 0; i < 80; ++i) long_text += "cat ";
  try {
    tokenize_for_model(m, tok, {"cat", long_text});
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("82 tokens long"), std::string::npos) << e.what();
  }
  EXPECT_EQ(tokenize_for_model(m, tok, {long_text}, true).shape(), Shape({1, 77}));

  const ClipModel no_merges = ClipModel::load((*dir_ / "tiny_nomerges.safetensors").string());
  try {
    clip_tokenizer_for(no_merges, "", "'tiny_nomerges'");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no embedded BPE merges"), std::string::npos) << e.what();
  }
  // Merges of another size than the model's vocabulary.
  const std::string other = (*dir_ / "tiny_other_merges.safetensors").string();
  write_tiny_clip(other, "c a");
  try {
    clip_tokenizer_for(ClipModel::load(other), "");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("do not belong to this model"), std::string::npos)
        << e.what();
  }
  write_text(*dir_ / "few_merges.txt", "#version: 0.2\nc a\n");
  EXPECT_THROW(clip_tokenizer_for(m, (*dir_ / "few_merges.txt").string()), Error);

  // From the file's metadata alone: the same tokenizer, the same errors.
  EXPECT_EQ(clip_tokenizer_from_weights(model_path()).encode("cat dog"), tok.encode("cat dog"));
  EXPECT_THROW(clip_tokenizer_from_weights((*dir_ / "tiny_nomerges.safetensors").string()), Error);
  EXPECT_THROW(clip_tokenizer_from_weights(other), Error);
}

TEST_F(ZeroShotTest, TokenizeToolWithWeights) {
  const fs::path bin = fs::read_symlink("/proc/self/exe").parent_path() / "tgpt-tokenize";
  if (!fs::exists(bin)) GTEST_SKIP() << "tgpt-tokenize not built next to tgpt_tests";
  std::string out;
  ASSERT_EQ(
      run_command("'" + bin.string() + "' --weights '" + model_path() + "' 'Cat dog'", *dir_, &out),
      0)
      << out;
  std::string want = "516 513 515 517";
  for (int i = 4; i < 77; ++i) want += " 0";
  EXPECT_EQ(out, want + "\n");
  EXPECT_EQ(run_command("'" + bin.string() + "' --weights '" +
                            (*dir_ / "tiny_nomerges.safetensors").string() + "' cat",
                        *dir_, &out),
            1);
  EXPECT_NE(out.find("no embedded BPE merges"), std::string::npos) << out;
}

TEST_F(ZeroShotTest, ClassifierAndLogitsMatchReference) {
  const ClipModel m = ClipModel::load(model_path());
  const ClipTokenizer tok = tokenizer();
  const ImageDataset ds = read_image_folder((*dir_ / "folder").string());
  ASSERT_EQ(ds.classnames,
            (std::vector<std::string>{"a b", "cat", "dog", "red car", "sea", "tree"}));
  ASSERT_EQ(ds.items.size(), 12u);

  // 18 prompts in batches of 4 (the last one partial).
  const ZeroShotClassifier zs =
      build_zeroshot_classifier(m, tok, class_prompts(ds.classnames, kTemplates), 4);
  std::vector<std::vector<double>> means;
  const auto w = reference_weights(m, tok, ds.classnames, kTemplates, &means);
  ASSERT_EQ(zs.class_features.shape(), Shape({6, 16}));
  ASSERT_EQ(zs.weights.shape(), Shape({6, 16}));
  const std::vector<float> got_means = zs.class_features.to_float_vector();
  const std::vector<float> got_w = zs.weights.to_float_vector();
  double max_mean = 0;
  for (const auto& r : means)
    for (double x : r) max_mean = std::max(max_mean, std::abs(x));
  for (size_t c = 0; c < 6; ++c) {
    double wn = 0;
    for (size_t d = 0; d < 16; ++d) {
      EXPECT_NEAR(got_means[c * 16 + d], means[c][d], 1e-5 * max_mean) << c << "," << d;
      EXPECT_NEAR(got_w[c * 16 + d], w[c][d], 1e-5) << c << "," << d;
      wn += static_cast<double>(got_w[c * 16 + d]) * got_w[c * 16 + d];
    }
    EXPECT_NEAR(wn, 1.0, 1e-5);
  }

  // Image features in batches of 5 and of 1 agree; logits match the per-image reference.
  const Tensor images = preprocess_image_files(ds.paths(), m.config().image_resolution);
  const Tensor f5 = encode_images_batched(m, images, 5);
  const Tensor f1 = encode_images_batched(m, images, 1);
  ASSERT_EQ(f5.shape(), Shape({12, 16}));
  test::expect_close(f5, f1, 1e-5, 1e-6, "batch 5 vs batch 1");
  const Tensor logits = zeroshot_logits(f5, zs.weights);
  ASSERT_EQ(logits.shape(), Shape({12, 6}));
  const std::vector<float> lg = logits.to_float_vector();
  for (size_t i = 0; i < ds.items.size(); ++i) {
    const std::vector<double> ref = reference_logits(m, ds.items[i].path, w);
    for (size_t c = 0; c < 6; ++c) EXPECT_NEAR(lg[i * 6 + c], ref[c], 1e-4) << i << "," << c;
  }

  AccuracyMeter meter(6);
  meter.add(logits, ds.labels());
  const Expected ex = reference_accuracy(m, ds, w);
  EXPECT_EQ(meter.count(), ex.n);
  EXPECT_EQ(meter.correct_top1(), ex.top1);
  EXPECT_EQ(meter.correct_top5(), ex.top5);
  EXPECT_EQ(meter.class_count(), ex.class_count);
  EXPECT_EQ(meter.class_correct(), ex.class_correct);

  EXPECT_THROW(build_zeroshot_classifier(m, tok, {}, 4), Error);
  EXPECT_THROW(build_zeroshot_classifier(m, tok, {{"cat"}, {}}, 4), Error);
  EXPECT_THROW(encode_images_batched(m, images, 0), Error);
  EXPECT_THROW(zeroshot_logits(f5, Tensor::zeros({6, 15})), Error);
}

// ---------------------------------------------------------------------------------------------
// Binaries

using test::tool_path;
std::string q(const fs::path& p) { return test::shell_quote(p); }

TEST_F(ZeroShotTest, EvalTool) {
  const fs::path bin = tool_path("tgpt-eval");
  if (!fs::exists(bin)) GTEST_SKIP() << "tgpt-eval not built next to the tests";
  const ClipModel m = ClipModel::load(model_path());
  const ClipTokenizer tok = tokenizer();
  const fs::path folder = *dir_ / "folder";
  const ImageDataset ds = read_image_folder(folder.string());
  std::string out;

  // Image folder, templates file, batches of 5, metrics.json.
  const fs::path out1 = *dir_ / "eval1";
  ASSERT_EQ(run_command(q(bin) + " zeroshot --device cpu --weights " + q(model_path()) +
                            " --image-folder " + q(folder) + " --templates " +
                            q(*dir_ / "templates.json") +
                            " --dataset Tiny --batch-size 5 --output " + q(out1),
                        *dir_, &out),
            0)
      << out;
  EXPECT_NE(out.find("* total: 12"), std::string::npos) << out;
  EXPECT_NE(out.find("* top-5 accuracy:"), std::string::npos) << out;
  {
    const Expected ex =
        reference_accuracy(m, ds, reference_weights(m, tok, ds.classnames, kTemplates, nullptr));
    const nlohmann::json j = nlohmann::json::parse(read_text(out1 / "metrics.json"));
    EXPECT_EQ(j["num_images"], 12);
    EXPECT_EQ(j["num_classes"], 6);
    EXPECT_EQ(j["top1_correct"], ex.top1);
    EXPECT_EQ(j["top5_correct"], ex.top5);
    EXPECT_NEAR(j["accuracy"].get<double>(), 100.0 * ex.top1 / 12.0, 1e-9);
    EXPECT_EQ(j["templates"]["count"], 3);
    EXPECT_EQ(j["templates"]["dataset"], "Tiny");
    EXPECT_EQ(j["weights"], model_path());
    ASSERT_EQ(j["per_class"].size(), 6u);
    for (size_t c = 0; c < 6; ++c) {
      EXPECT_EQ(j["per_class"][c]["classname"], ds.classnames[c]);
      EXPECT_EQ(j["per_class"][c]["count"], ex.class_count[c]);
      EXPECT_EQ(j["per_class"][c]["correct"], ex.class_correct[c]);
    }
    // per_class.csv and confusion.csv agree with the reference counts; no temporary left.
    std::set<std::string> files;
    for (const auto& e : fs::directory_iterator(out1)) files.insert(e.path().filename().string());
    EXPECT_EQ(files, (std::set<std::string>{"metrics.json", "per_class.csv", "confusion.csv"}));
    std::istringstream per_class(read_text(out1 / "per_class.csv"));
    std::string line;
    std::getline(per_class, line);
    EXPECT_EQ(line, "label,classname,count,correct,accuracy");
    for (size_t c = 0; c < 6; ++c) {
      ASSERT_TRUE(std::getline(per_class, line));
      const std::string want = std::to_string(c) + ",\"" + ds.classnames[c] + "\"," +
                               std::to_string(ex.class_count[c]) + "," +
                               std::to_string(ex.class_correct[c]) + ",";
      EXPECT_EQ(line.substr(0, want.size()), want) << line;
    }
    std::istringstream confusion(read_text(out1 / "confusion.csv"));
    std::getline(confusion, line);
    int64_t rows = 0, total = 0, diagonal = 0;
    while (std::getline(confusion, line)) {
      std::istringstream fields(line);
      std::string f;
      std::getline(fields, f, ',');
      EXPECT_EQ(f, "\"" + ds.classnames[static_cast<size_t>(rows)] + "\"");
      int64_t row_sum = 0;
      for (int64_t p = 0; std::getline(fields, f, ','); ++p) {
        row_sum += std::stoll(f);
        if (p == rows) diagonal += std::stoll(f);
      }
      EXPECT_EQ(row_sum, ex.class_count[static_cast<size_t>(rows)]) << line;
      total += row_sum;
      ++rows;
    }
    EXPECT_EQ(rows, 6);
    EXPECT_EQ(total, 12);
    EXPECT_EQ(diagonal, ex.top1);
  }

  // CoOp split, test subset (7 images), one template given on the command line.
  const fs::path out2 = *dir_ / "eval2";
  ASSERT_EQ(run_command(q(bin) + " zeroshot --device cpu --weights " + q(model_path()) +
                            " --split " + q(*dir_ / "split_zhou_Tiny.json") + " --image-root " +
                            q(folder) + " --template '{} here' --output " + q(out2),
                        *dir_, &out),
            0)
      << out;
  {
    const CoopSplit split =
        read_coop_split((*dir_ / "split_zhou_Tiny.json").string(), folder.string());
    const ImageDataset test = coop_split_subset(split, "test");
    ASSERT_EQ(test.items.size(), 7u);
    const Expected ex = reference_accuracy(
        m, test, reference_weights(m, tok, split.classnames, {"{} here"}, nullptr));
    const nlohmann::json j = nlohmann::json::parse(read_text(out2 / "metrics.json"));
    EXPECT_EQ(j["num_images"], 7);
    EXPECT_EQ(j["top1_correct"], ex.top1);
    EXPECT_EQ(j["top5_correct"], ex.top5);
    EXPECT_EQ(j["data"]["subset"], "test");
    EXPECT_EQ(j["per_class"][0]["classname"], "cat");
    EXPECT_EQ(j["per_class"][0]["count"], 2);  // "cat" (label 0) twice in the test subset
  }
  // val subset and the default template, no --output.
  ASSERT_EQ(run_command(q(bin) + " zeroshot --device cpu --weights " + q(model_path()) +
                            " --split " + q(*dir_ / "split_zhou_Tiny.json") + " --image-root " +
                            q(folder) + " --subset val",
                        *dir_, &out),
            0)
      << out;
  EXPECT_NE(out.find("* total: 6"), std::string::npos) << out;
}

TEST_F(ZeroShotTest, EvalToolErrors) {
  const fs::path bin = tool_path("tgpt-eval");
  if (!fs::exists(bin)) GTEST_SKIP() << "tgpt-eval not built next to the tests";
  const fs::path folder = *dir_ / "folder";
  write_png(*dir_ / "corrupt" / "a" / "ok.png", 20, 20, 3);
  write_text(*dir_ / "corrupt" / "b" / "broken.png", "this is not a PNG file");
  write_text(
      *dir_ / "split_missing.json",
      R"({"train": [], "val": [], "test": [["cat/img0.png", 0, "cat"], ["cat/gone.png", 0, "cat"]]})");
  const std::string base = q(bin) + " zeroshot --device cpu --weights " + q(model_path());
  struct Case {
    std::string args;
    std::string expect;  // in the output ("" = only the exit status is checked)
  };
  const std::vector<Case> cases = {
      {q(bin) + " zeroshot --device cpu --weights " + q(*dir_ / "missing.safetensors") +
           " --image-folder " + q(folder),
       "missing.safetensors"},
      {q(bin) + " zeroshot --device cpu --weights " + q(*dir_ / "templates.json") +
           " --image-folder " + q(folder),
       "templates.json"},
      {base + " --image-folder " + q(*dir_ / "corrupt") + " --output " + q(*dir_ / "eval_bad"),
       "broken.png"},
      {base + " --image-folder " + q(folder) + " --template 'a photo'", "has no \"{}\""},
      {base + " --image-folder " + q(folder) + " --templates " + q(*dir_ / "templates.json") +
           " --dataset Nope",
       "no template list for dataset \"Nope\""},
      {base + " --image-folder " + q(*dir_ / "nowhere"), "does not exist"},
      {base + " --split " + q(*dir_ / "split_missing.json") + " --image-root " + q(folder),
       "gone.png"},
      {base + " --split " + q(*dir_ / "split_zhou_Tiny.json") + " --image-root " + q(folder) +
           " --subset train",
       "subset \"train\" is empty"},
      {base + " --split " + q(*dir_ / "split_zhou_Tiny.json"), ""},  // no --image-root
      {base, ""},                                                    // no data
      {base + " --image-folder " + q(folder) + " --batch-size 0", "--batch-size must be positive"},
      {q(bin) + " zeroshot --device cpu --weights " + q(*dir_ / "tiny_nomerges.safetensors") +
           " --image-folder " + q(folder),
       "no embedded BPE merges"},
      {q(bin), ""},  // no subcommand
  };
  for (const Case& c : cases) {
    std::string out;
    EXPECT_EQ(run_command(c.args, *dir_, &out), 1) << c.args << "\n" << out;
    if (!c.expect.empty()) {
      EXPECT_NE(out.find(c.expect), std::string::npos) << c.args << "\n" << out;
    }
  }
  EXPECT_FALSE(fs::exists(*dir_ / "eval_bad" / "metrics.json"));
}

TEST_F(ZeroShotTest, EmbedTool) {
  const fs::path bin = tool_path("tgpt-embed");
  if (!fs::exists(bin)) GTEST_SKIP() << "tgpt-embed not built next to the tests";
  const ClipModel m = ClipModel::load(model_path());
  const ClipTokenizer tok = tokenizer();
  const fs::path folder = *dir_ / "folder";
  const std::vector<std::string> paths = {(folder / "cat/img0.png").string(),
                                          (folder / "dog/img1.png").string(),
                                          (folder / "sea/img0.png").string()};
  write_text(*dir_ / "images.txt", paths[1] + "\n\n" + paths[2] + "\n");
  write_text(*dir_ / "texts.txt", "\ndog here\r\n  \n");
  const fs::path out = *dir_ / "emb.safetensors", pre = *dir_ / "pre.safetensors";
  std::string log;
  ASSERT_EQ(run_command(q(bin) + " --device cpu --weights " + q(model_path()) + " --image " +
                            q(paths[0]) + " --image-list " + q(*dir_ / "images.txt") +
                            " --text 'a cat' --text-list " + q(*dir_ / "texts.txt") +
                            " --batch-size 2 --save-preprocessed " + q(pre) + " -o " + q(out),
                        *dir_, &log),
            0)
      << log;
  const SafetensorsFile st = SafetensorsFile::open(out.string());
  const Tensor imf = st.get("image_features"), txf = st.get("text_features"),
               tt = st.get("text_tokens");
  ASSERT_EQ(imf.shape(), Shape({3, 16}));
  ASSERT_EQ(txf.shape(), Shape({2, 16}));
  ASSERT_EQ(tt.shape(), Shape({2, 77}));
  EXPECT_EQ(imf.dtype(), DType::f32);
  EXPECT_EQ(tt.dtype(), DType::i32);
  EXPECT_EQ(st.metadata().at("tgpt.normalized"), "false");
  for (size_t i = 0; i < 3; ++i) {
    const Tensor x = clip_preprocess(decode_image_file(paths[i]), 16).unsqueeze(0);
    test::expect_close(imf.narrow(0, static_cast<int64_t>(i), 1), m.encode_image(x), 1e-5, 1e-6,
                       "image_features row");
  }
  const std::vector<std::string> texts = {"a cat", "dog here"};
  EXPECT_EQ(std::vector<int32_t>(tt.data<int32_t>(), tt.data<int32_t>() + 154),
            tok.tokenize(texts));
  for (size_t i = 0; i < 2; ++i)
    test::expect_close(txf.narrow(0, static_cast<int64_t>(i), 1),
                       m.encode_text(tok.tokenize_tensor({texts[i]})), 1e-5, 1e-6,
                       "text_features row");
  const Tensor images = SafetensorsFile::open(pre.string()).get("images");
  ASSERT_EQ(images.shape(), Shape({3, 3, 16, 16}));
  EXPECT_EQ(test::max_abs_error(images, preprocess_image_files(paths, 16)), 0.0);

  // The saved batch back in through --image-tensor, normalised.
  const fs::path out2 = *dir_ / "emb2.safetensors";
  ASSERT_EQ(run_command(q(bin) + " --device cpu --weights " + q(model_path()) + " --image-tensor " +
                            q(pre.string() + ":images") + " --normalize -o " + q(out2),
                        *dir_, &log),
            0)
      << log;
  const SafetensorsFile st2 = SafetensorsFile::open(out2.string());
  EXPECT_FALSE(st2.contains("text_features"));
  test::expect_close(st2.get("image_features"), l2_normalize_rows(imf), 1e-5, 1e-6, "normalised");
  EXPECT_EQ(st2.metadata().at("tgpt.normalized"), "true");

  // Errors: exit 1 with a message, no output file.
  save_safetensors((*dir_ / "small.safetensors").string(),
                   {{"images", Tensor::zeros({2, 3, 8, 8})}});
  write_text(*dir_ / "broken.jpg", "not a jpeg");
  const fs::path bad_out = *dir_ / "bad.safetensors";
  const std::string base =
      q(bin) + " --device cpu --weights " + q(model_path()) + " -o " + q(bad_out);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {q(bin) + " --device cpu --weights " + q(*dir_ / "missing.safetensors") + " --text cat -o " +
           q(bad_out),
       "missing.safetensors"},
      {base + " --image " + q(*dir_ / "broken.jpg"), "broken.jpg"},
      {base + " --image " + q(*dir_ / "no_such.png"), "no_such.png"},
      {base + " --image-tensor " + q(pre.string() + ":nope"), "no tensor \"nope\""},
      {base + " --image-tensor " + q(*dir_ / "small.safetensors") + ":images", "[N, 3, 16, 16]"},
      {base + " --image-tensor nocolon", "FILE:NAME"},
      {base + " --image-list " + q(*dir_ / "none.txt"), "none.txt"},
      {base + " --image-tensor " + q(pre.string() + ":images") + " --image " + q(paths[0]),
       "cannot be combined"},
      {base, "nothing to embed"},
      {base + " --text cat --batch-size -3", "batch-size"},
      {q(bin) + " --device cpu --weights " + q(model_path()) + " --text cat", ""},  // no -o
  };
  for (const auto& [args, expect] : cases) {
    EXPECT_EQ(run_command(args, *dir_, &log), 1) << args << "\n" << log;
    if (!expect.empty()) {
      EXPECT_NE(log.find(expect), std::string::npos) << args << "\n" << log;
    }
  }
  EXPECT_FALSE(fs::exists(bad_out));
}

// With OpenAI's merges file (from ../shared when present) and a model of CLIP's vocabulary size.
TEST_F(ZeroShotTest, EmbedToolWithVocabFile) {
  const fs::path bin = tool_path("tgpt-embed");
  if (!fs::exists(bin)) GTEST_SKIP() << "tgpt-embed not built next to the tests";
  const fs::path merges = fs::path(test::shared_dir()) / "clip" / "bpe_simple_vocab_16e6.txt.gz";
  if (!fs::exists(merges)) GTEST_SKIP() << "no " << merges;
  const fs::path model = *dir_ / "tiny_full_vocab.safetensors";
  write_tiny_clip(model.string(), "", 11, 49408);
  const fs::path out = *dir_ / "emb_vocab.safetensors";
  std::string log;
  ASSERT_EQ(run_command(q(bin) + " --device cpu --weights " + q(model) + " --vocab " + q(merges) +
                            " --text 'a photo of a x.' -o " + q(out),
                        *dir_, &log),
            0)
      << log;
  const SafetensorsFile st = SafetensorsFile::open(out.string());
  const Tensor tt = st.get("text_tokens");
  ASSERT_EQ(tt.shape(), Shape({1, 77}));
  // Ids from ../shared/spec/method.md §1.2: SOT 49406, a 320, photo 1125, of 539, x 343, . 269.
  const std::vector<int32_t> want = {49406, 320, 1125, 539, 320, 343, 269, 49407, 0};
  EXPECT_EQ(std::vector<int32_t>(tt.data<int32_t>(), tt.data<int32_t>() + 9), want);
  const ClipModel m = ClipModel::load(model.string());
  test::expect_close(st.get("text_features"), m.encode_text(tt), 1e-5, 1e-6, "text_features");
  // The merges file does not fit the tiny model's vocabulary of 518.
  EXPECT_EQ(run_command(q(bin) + " --device cpu --weights " + q(model_path()) + " --vocab " +
                            q(merges) + " --text cat -o " + q(*dir_ / "never.safetensors"),
                        *dir_, &log),
            1)
      << log;
  EXPECT_NE(log.find("do not belong to this model"), std::string::npos) << log;
}

// --device / --precision of tgpt-embed and tgpt-eval (tools/tool_options.h).
TEST_F(ZeroShotTest, ToolsDeviceAndPrecisionOptions) {
  const fs::path embed = tool_path("tgpt-embed"), eval = tool_path("tgpt-eval");
  if (!fs::exists(embed) || !fs::exists(eval)) GTEST_SKIP() << "tools not built next to the tests";
  const fs::path img = *dir_ / "folder" / "cat" / "img0.png";
  const std::string common =
      " --weights " + q(model_path()) + " --image " + q(img) + " --text 'a cat' --batch-size 2";
  std::string log;

  // The CPU at bf16: the tool's features are those of the bf16 CPU model, bit for bit.
  const fs::path out_bf16 = *dir_ / "emb_bf16.safetensors";
  ASSERT_EQ(run_command(q(embed) + common + " --device cpu --precision bf16 -o " + q(out_bf16),
                        *dir_, &log),
            0)
      << log;
  EXPECT_NE(log.find("on cpu (bf16)"), std::string::npos) << log;
  {
    const SafetensorsFile st = SafetensorsFile::open(out_bf16.string());
    EXPECT_EQ(st.metadata().at("tgpt.placement"), "cpu (bf16)");
    const ClipModel m = ClipModel::load(model_path(), Device::CPU, DType::bf16);
    const Tensor x = clip_preprocess(decode_image_file(img.string()), 16).unsqueeze(0);
    const Tensor imf = st.get("image_features");
    EXPECT_EQ(imf.dtype(), DType::f32);
    EXPECT_EQ(test::max_abs_error(imf, m.encode_image(x)), 0.0);
    EXPECT_EQ(test::max_abs_error(st.get("text_features"), m.encode_text(st.get("text_tokens"))),
              0.0);
  }

  // auto picks the CPU in f32 when there is no CUDA device.
  if (!cuda_available()) {
    const fs::path out_auto = *dir_ / "emb_auto.safetensors";
    ASSERT_EQ(run_command(q(embed) + common + " -o " + q(out_auto), *dir_, &log), 0) << log;
    EXPECT_NE(log.find("on cpu (f32)"), std::string::npos) << log;
    EXPECT_EQ(SafetensorsFile::open(out_auto.string()).metadata().at("tgpt.placement"),
              "cpu (f32)");
  }

  // eval records the placement in metrics.json.
  const fs::path out_eval = *dir_ / "eval_placement";
  ASSERT_EQ(
      run_command(q(eval) + " zeroshot --device cpu --precision f32 --weights " + q(model_path()) +
                      " --image-folder " + q(*dir_ / "folder") + " --output " + q(out_eval),
                  *dir_, &log),
      0)
      << log;
  EXPECT_EQ(nlohmann::json::parse(read_text(out_eval / "metrics.json"))["placement"], "cpu (f32)");

  // Unknown choices, and cuda without a device: exit 1 with a message, no output.
  const fs::path never = *dir_ / "never.safetensors";
  std::vector<std::pair<std::string, std::string>> cases = {
      {q(embed) + common + " --precision f64 -o " + q(never), "--precision"},
      {q(embed) + common + " --device tpu -o " + q(never), "--device"},
      {q(eval) + " zeroshot --device gpu --weights " + q(model_path()) + " --image-folder " +
           q(*dir_ / "folder"),
       "--device"},
  };
  if (!cuda_available())
    cases.push_back({q(embed) + common + " --device cuda -o " + q(never), "no CUDA device"});
  for (const auto& [args, expect] : cases) {
    EXPECT_EQ(run_command(args, *dir_, &log), 1) << args << "\n" << log;
    EXPECT_NE(log.find(expect), std::string::npos) << args << "\n" << log;
  }
  EXPECT_FALSE(fs::exists(never));
}

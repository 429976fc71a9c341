/*
 * test_tgpt.cpp — TGP-T (models/tgpt) and its replay (train/tgpt_replay) against our PyTorch
 * reference (tests/golden/tgpt_ref.py, fixtures from gen_tgpt.py: a small random CLIP, an initial
 * TGP-T state under the official names, one batch, and the f64 reference trace of 3 AdamW steps
 * with the warm-up + cosine schedule).
 *
 * Tolerances (relative to the reference tensor's largest magnitude):
 *   f64 replay (CLIP, Bonders, heads, losses and AdamW all in f64; trace rounded to f32 like the
 *     reference's): every tensor <= 5e-7, i.e. a few f32 roundings — the same math exactly.
 *   f32 replay (the production path): losses and forward outputs <= 1e-5, first gradients
 *     <= 1e-4, parameters after steps 1..3 <= 1e-5 on every element whose reference gradient
 *     exceeds the f32 gradient's own error bound (1e-4 of the tensor's largest gradient).
 *     AdamW's first updates are lr · g / (|g| + eps): an element whose true gradient is below
 *     the f32 rounding noise of the backward pass gets an update of arbitrary size in ANY f32
 *     implementation (PyTorch's f32 included); those elements are covered by the f64 replay.
 * Requires the fixtures (ctest) and OpenAI's merges from ../shared (skips otherwise).
 */
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <unistd.h>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/safetensors.h"
#include "models/clip/zeroshot.h"
#include "models/tgpt/tgpt.h"
#include "tests/test_util.h"
#include "train/tgpt_replay.h"
#include "train/tgpt_weights.h"

namespace fs = std::filesystem;
using namespace tgpt;

namespace {

std::string merges_path() {
  return (fs::path(test::shared_dir()) / "clip" / "bpe_simple_vocab_16e6.txt.gz").string();
}

class TgptGolden : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (test::golden_dir().empty()) GTEST_SKIP() << "run via ctest, which writes the fixtures";
    if (!fs::exists(merges_path())) GTEST_SKIP() << "no " << merges_path();
    dir_ = test::golden_dir() + "/tgpt/";
    prefix_ = GetParam();
    tmp_ = fs::temp_directory_path() / ("tgpt_test_tgpt_" + std::to_string(::getpid()));
    fs::create_directories(tmp_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!tmp_.empty()) fs::remove_all(tmp_, ec);
  }
  std::string file(const std::string& what) const { return dir_ + prefix_ + what; }

  // Runs the replay with the reference's arguments; returns the trace path.
  std::string replay(DType dtype) const {
    const SafetensorsFile ref = SafetensorsFile::open(file("trace.safetensors"));
    const nlohmann::json args = nlohmann::json::parse(ref.metadata().at("tgpt.replay"));
    TgptReplayOptions o;
    o.weights = file("clip.safetensors");
    o.merges = merges_path();
    o.init = file("init.safetensors");
    o.batch = file("batch.safetensors");
    o.trace = (tmp_ / (std::string("trace_") + dtype_name(dtype) + ".safetensors")).string();
    o.steps = args.at("steps");
    o.lr = args.at("lr");
    o.max_iter = args.at("max_iter");
    o.warmup_iter = args.at("warmup_iter");
    o.compute_dtype = dtype;
    run_tgpt_replay(o, nullptr);
    return o.trace;
  }

  std::string dir_, prefix_;
  fs::path tmp_;
};

double rel_to_max(const Tensor& a, const Tensor& ref) {
  return test::rel_error_to_max(a.to(DType::f64), ref.to(DType::f64));
}

TEST_P(TgptGolden, F64ReplayMatchesTheReferenceExactly) {
  const SafetensorsFile ref = SafetensorsFile::open(file("trace.safetensors"));
  const SafetensorsFile ours = SafetensorsFile::open(replay(DType::f64));
  std::set<std::string> ours_names, ref_names;
  for (const std::string& n : ours.names()) ours_names.insert(n);
  for (const std::string& n : ref.names()) ref_names.insert(n);
  int compared = 0;
  for (const std::string& name : ref_names) {
    ASSERT_TRUE(ours_names.count(name)) << "the replay trace has no " << name;
    const Tensor r = ref.get(name), o = ours.get(name);
    ASSERT_EQ(o.shape(), r.shape()) << name;
    EXPECT_LE(rel_to_max(o, r), 5e-7) << name;
    ++compared;
  }
  EXPECT_GT(compared, 40);
  // Tensors the reference leaves out are exactly the ones without a gradient (the unused
  // norms) and the timing.
  for (const std::string& n : ours_names) {
    if (!ref_names.count(n)) {
      EXPECT_EQ(n, "step.seconds") << "unexpected trace tensor " << n;
    }
  }
}

TEST_P(TgptGolden, F32ReplayMatchesTheReference) {
  const SafetensorsFile ref = SafetensorsFile::open(file("trace.safetensors"));
  const SafetensorsFile ours = SafetensorsFile::open(replay(DType::f32));
  const nlohmann::json args = nlohmann::json::parse(ref.metadata().at("tgpt.replay"));
  const int64_t steps = args.at("steps");
  for (const std::string& name : ref.names()) {
    const Tensor r = ref.get(name), o = ours.get(name);
    ASSERT_EQ(o.shape(), r.shape()) << name;
    if (name.rfind("grad1.", 0) == 0) {
      EXPECT_LE(rel_to_max(o, r), 1e-4) << name;
    } else if (name.rfind("param", 0) == 0) {
      const std::string pname = name.substr(name.find('.') + 1);
      const std::vector<double> g = ref.get("grad1." + pname).to_double_vector();
      const std::vector<double> pr = r.to_double_vector(), po = o.to_double_vector();
      double gmax = 0, pmax = 0;
      for (double v : g) gmax = std::max(gmax, std::abs(v));
      for (double v : pr) pmax = std::max(pmax, std::abs(v));
      double worst = 0;
      int64_t checked = 0;
      for (size_t i = 0; i < pr.size(); ++i) {
        if (std::abs(g[i]) <= 1e-4 * gmax) continue;
        worst = std::max(worst, std::abs(pr[i] - po[i]) / pmax);
        ++checked;
      }
      EXPECT_LE(worst, 1e-5) << name;
      EXPECT_GE(checked, static_cast<int64_t>(pr.size()) * 9 / 10) << name;
    } else if (name == "step.lr") {
      EXPECT_LE(rel_to_max(o, r), 1e-12) << name;
    } else {
      EXPECT_LE(rel_to_max(o, r), 1e-5) << name;
    }
  }
  // The loss falls over the steps and every step was timed.
  const std::vector<double> total = ours.get("step.loss_total").to_double_vector();
  ASSERT_EQ(static_cast<int64_t>(total.size()), steps);
  EXPECT_LT(total.back(), total.front());
  for (double s : ours.get("step.seconds").to_double_vector()) EXPECT_GT(s, 0.0);
}

INSTANTIATE_TEST_SUITE_P(Cases, TgptGolden, ::testing::Values(std::string(), "case2."),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           return p.param.empty() ? std::string("default") : "case2";
                         });

// ---------------------------------------------------------------------------------------------
// The model's parameters, targets and errors on a golden CLIP.

class TgptModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test::golden_dir().empty()) GTEST_SKIP() << "run via ctest, which writes the fixtures";
    if (!fs::exists(merges_path())) GTEST_SKIP() << "no " << merges_path();
    clip_ = std::make_unique<ClipModel>(
        ClipModel::load(test::golden_dir() + "/tgpt/clip.safetensors"));
    tok_ = std::make_unique<ClipTokenizer>(ClipTokenizer::from_file(merges_path()));
  }
  std::unique_ptr<ClipModel> clip_;
  std::unique_ptr<ClipTokenizer> tok_;
};

TEST_F(TgptModelTest, OfficialParameterNamesAndCounts) {
  TgptConfig cfg;
  cfg.num_classes = 7;
  Generator gen(1);
  TgptModel m(*clip_, cfg, tgpt_token_ids(*tok_, "a photo of a"), gen);
  const int64_t W = clip_->config().transformer_width;
  int64_t bonder[2] = {0, 0};
  std::set<std::string> names;
  for (const auto& [name, t] : m.parameters().items()) {
    names.insert(name);
    if (name.rfind("prompt_learner.bonder_category.", 0) == 0) bonder[0] += t.numel();
    if (name.rfind("prompt_learner.bonder_content.", 0) == 0) bonder[1] += t.numel();
  }
  // method.md §2.3: 2,105,344 at W = 512 = 8 W² (qkv, proj, q, proj, fc1, fc2) + 4 W (biases)
  // + 6 LayerNorms of 2 W.
  EXPECT_EQ(bonder[0], 8 * W * W + 16 * W);
  EXPECT_EQ(bonder[1], 8 * W * W + 16 * W);
  for (const char* n :
       {"prompt_learner.query_category", "prompt_learner.query_content",
        "prompt_learner.bonder_category.attn.qkv.weight",
        "prompt_learner.bonder_content.cross_attn.q.weight",
        "prompt_learner.bonder_content.cross_attn.norm_img.bias",
        "prompt_learner.bonder_category.mlp.fc2.bias", "cls_head.fc.weight", "zs_weights"})
    EXPECT_TRUE(names.count(n)) << n;
  EXPECT_FALSE(names.count("prompt_learner.bonder_category.attn.qkv.bias"));  // qkv_bias=False
  EXPECT_FALSE(names.count("prompt_learner.bonder_category.cross_attn.q.bias"));
  EXPECT_FALSE(m.parameters().trainable("zs_weights"));
  EXPECT_TRUE(m.parameters().trainable("cls_head.fc.weight"));
  EXPECT_EQ(m.parameters().get("cls_head.fc.weight").shape(),
            Shape({7, 2 * clip_->config().embed_dim}));

  // Category queries 0..3 = the token embeddings of "a photo of a"; the others N(0, 0.02²).
  const Tensor q = m.parameters().get("prompt_learner.query_category");
  const Tensor emb = clip_->embed_tokens(Tensor::from_vector({320, 1125, 539, 320}, {4}, DType::i64));
  EXPECT_LE(test::max_abs_error(q.narrow(1, 0, 4).reshape({4, W}), emb), 0.0);
  const std::vector<double> rest = q.narrow(1, 4, 28).contiguous().to_double_vector();
  double ss = 0;
  for (double v : rest) ss += v * v;
  EXPECT_NEAR(std::sqrt(ss / static_cast<double>(rest.size())), 0.02, 0.002);
}

TEST_F(TgptModelTest, CategoryTargetsAsTheOfficialCode) {
  // method.md §3.1: "dog" -> [320,1125,539,320,1929,269,49407,−100×25].
  const Tensor tokens = tgpt_category_sentence_tokens(*tok_, {"dog", "Apply_Eye(Makeup)"}, 77);
  const Tensor t = tgpt_token_targets(tokens, 32);
  ASSERT_EQ(t.shape(), Shape({2, 32}));
  std::vector<int64_t> want = {320, 1125, 539, 320, 1929, 269, 49407};
  want.resize(32, -100);
  EXPECT_EQ(std::vector<int64_t>(t.data<int64_t>(), t.data<int64_t>() + 32), want);
  EXPECT_EQ(tgpt_category_name("Apply_Eye(Makeup)"), "Apply Eye Makeup ");
  EXPECT_EQ(tok_->encode("a photo of a Apply Eye Makeup ."), [&] {
    std::vector<int32_t> v;
    for (int64_t j = 0; j < 32 && t.data<int64_t>()[32 + j] != 49407; ++j)
      v.push_back(static_cast<int32_t>(t.data<int64_t>()[32 + j]));
    return v;
  }());
}

TEST_F(TgptModelTest, ZeroShotHeadIsTheNormalisedDuplicate) {
  const Tensor f = Tensor::from_vector({3, 4, 0, 5}, {2, 2});
  const std::vector<double> h = tgpt_zeroshot_head(f).to_double_vector();
  const double s = 1.0 / std::sqrt(2.0);
  const std::vector<double> want = {0.6 * s, 0.8 * s, 0.6 * s, 0.8 * s, 0, s, 0, s};
  ASSERT_EQ(h.size(), want.size());
  for (size_t i = 0; i < h.size(); ++i) EXPECT_NEAR(h[i], want[i], 1e-7) << i;
}

TEST_F(TgptModelTest, BadInputGetsClearErrors) {
  Generator gen(1);
  TgptConfig cfg;
  cfg.num_classes = 3;
  const TgptTokenIds ids = tgpt_token_ids(*tok_, "a photo of a");
  TgptConfig big = cfg;
  big.content_queries = 75;
  try {
    TgptModel m(*clip_, big, ids, gen);
    FAIL() << "75 queries accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("context length"), std::string::npos) << e.what();
  }
  TgptModel m(*clip_, cfg, ids, gen);
  m.set_category_sentences(tgpt_category_sentence_tokens(*tok_, {"a", "b", "c"}, 77));
  EXPECT_THROW(m.set_zeroshot_head(Tensor::zeros({4, 2 * clip_->config().embed_dim})), Error);
  EXPECT_THROW(m.set_category_sentences(tgpt_category_sentence_tokens(*tok_, {"a", "b"}, 77)),
               Error);
  const int64_t R = clip_->config().image_resolution;
  const TgptModel::ImageFeatures img = m.encode_images(Generator(2).randn({2, 3, R, R}));
  const TgptModel::Output out = m.forward(img);
  try {
    m.losses(out, {0, 3}, Tensor());
    FAIL() << "label 3 of 3 classes accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("outside [0, 3)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(m.losses(out, {0}, Tensor()), Error);
  // Without captions there is no content loss, and the total is cls + category.
  const TgptModel::Losses l = m.losses(out, {0, 2}, Tensor());
  EXPECT_FALSE(l.content.defined());
  EXPECT_NEAR(l.total.item(), l.cls.item() + l.category.item(), 1e-5);
}

// Official checkpoints (Dassl-style per-module files, a whole state dict) and tgpt's own model
// file give the reference's eval logits after the replay.
TEST_F(TgptModelTest, OfficialCheckpointsGiveTheReferenceEvalLogits) {
  const std::string dir = test::golden_dir() + "/tgpt/";
  const SafetensorsFile init = SafetensorsFile::open(dir + "init.safetensors");
  const SafetensorsFile trace = SafetensorsFile::open(dir + "trace.safetensors");
  const SafetensorsFile batch = SafetensorsFile::open(dir + "batch.safetensors");
  TgptConfig cfg;
  cfg.num_classes = init.get("zs_weights").size(0);
  const TgptTokenIds ids = tgpt_token_ids(*tok_, "a photo of a");
  auto eval_logits = [&](TgptModel& m) {
    NoGradGuard no_grad;
    const TgptModel::Output out = m.forward(m.encode_images(batch.get("images")));
    return std::make_pair(m.logits(out.features), m.logits_wiseft(out.features));
  };
  std::string saved;
  for (const std::string& src : {dir + "official", dir + "official/prompt_learner/../",
                                dir + "official_full.pth", std::string("tgpt")}) {
    SCOPED_TRACE(src);
    Generator gen(5);
    TgptModel m(*clip_, cfg, ids, gen);
    m.set_zeroshot_head(init.get("zs_weights"));
    const TgptWeights w = read_tgpt_weights(src == "tgpt" ? saved : src);
    const TgptLoadReport r = load_tgpt_weights(m, w);
    EXPECT_EQ(r.has_zeroshot_head, src == "tgpt" || src.ends_with(".pth"));
    if (src.ends_with(".pth")) {
      EXPECT_NE(std::find(r.ignored.begin(), r.ignored.end(), "prompt_learner.vocab_head.weight"),
                r.ignored.end());
    }
    const auto [plain, wise] = eval_logits(m);
    EXPECT_LE(rel_to_max(plain, trace.get("eval.logits")), 1e-5);
    EXPECT_LE(rel_to_max(wise, trace.get("eval.logits_wiseft")), 1e-5);
    if (saved.empty()) {
      saved = (fs::temp_directory_path() / ("tgpt_test_model_" + std::to_string(::getpid()) +
                                            ".safetensors"))
                  .string();
      m.parameters().save(saved, {{"tgpt.format", "tgpt-prompt"}});
    }
  }
  fs::remove(saved);

  // Another class count, missing tensors, a CLIP file: clear errors.
  TgptConfig other = cfg;
  other.num_classes = cfg.num_classes + 1;
  Generator gen(5);
  TgptModel m(*clip_, other, ids, gen);
  try {
    load_tgpt_weights(m, read_tgpt_weights(dir + "official"));
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another dataset"), std::string::npos) << e.what();
  }
  TgptModel m2(*clip_, cfg, ids, gen);
  try {
    load_tgpt_weights(m2, read_tgpt_weights(dir + "official/prompt_learner/model-best.pth.tar"));
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cls_head.fc.weight"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_tgpt_weights(dir + "clip.safetensors"), Error);
  EXPECT_THROW(read_tgpt_weights(dir + "does_not_exist"), Error);
}

// A CLIP whose embed dim differs from its text width cannot feed the official Bonder.
TEST(TgptModel, RefusesClipWhoseEmbedDimDiffersFromTextWidth) {
  ClipConfig c = ClipConfig::openai("ViT-B/32");
  c.embed_dim = 16;
  c.transformer_width = 24;
  c.transformer_heads = 8;
  c.transformer_layers = 1;
  c.vision_width = 16;
  c.vision_layers = 1;
  c.vision_heads = 2;
  c.vision_patch_size = 8;
  c.image_resolution = 16;
  c.vocab_size = 300;
  std::map<std::string, Tensor> t;
  Generator g(3);
  for (const auto& [name, shape] : expected_clip_tensors(c)) t[name] = g.randn(shape, DType::f32, 0.02);
  const ClipModel clip = ClipModel::from_tensors(t, c);
  TgptConfig cfg;
  cfg.num_classes = 2;
  TgptTokenIds ids;
  ids.sot = 298;
  ids.eot = 299;
  ids.period = 10;
  try {
    TgptModel m(clip, cfg, ids, g);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("embed_dim != transformer_width"), std::string::npos)
        << e.what();
  }
}

}  // namespace

/*
 * test_coop.cpp — the CoOp baseline (models/coop) against our PyTorch reference, plus its input
 * checks.
 *
 * Golden part (fixtures from tests/golden/gen_coop.py via ctest): a random CLIP with CLIP's real
 * vocabulary (49408 ids, text width 64, 2 layers), six class names, 5 image features and labels.
 * Cases "generic." (n_ctx 16, ctx ~ N(0, 0.02²)) and, when the fixtures were made with the real
 * BPE merges, "init." ("a photo of a"). The C++ model is built from the fixture's prompt tokens
 * and ctx; text features and logits are compared as max|ours - ref| / max|ref| with the f64
 * reference (≤ 1e-5), the loss as |ours - ref| / |ref| (≤ 1e-5), d loss / d ctx as
 * max|ours - ref| / max|ref| (≤ 1e-4). With ../shared/clip/bpe_simple_vocab_16e6.txt.gz the model
 * is also built from the class names with our tokenizer and must give the reference's tokens
 * (and, for the init text, its ctx).
 *
 * The other tests use a small random CLIP built in memory (independent of the fixtures): the
 * parameter set, the seeded initialisation, chunked evaluation without a tape, CoOp with ctx set
 * to the X tokens' own embeddings equals encode_text of the prompts, and bad input (wrong class
 * count, labels out of range, prompts that do not fit 77 tokens, bad n_ctx / init text / tokens)
 * refused with a tgpt::Error.
 */
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "engine/safetensors.h"
#include "models/coop/coop.h"
#include "tests/test_util.h"

using namespace tgpt;
namespace fs = std::filesystem;

namespace {

std::string merges_path() {
  return test::shared_dir() + "/clip/bpe_simple_vocab_16e6.txt.gz";
}

// The BPE tokenizer from ../shared, or null when the merges file is absent.
const ClipTokenizer* shared_tokenizer() {
  static std::unique_ptr<ClipTokenizer> tok = [] {
    std::unique_ptr<ClipTokenizer> t;
    if (fs::exists(merges_path()))
      t = std::make_unique<ClipTokenizer>(ClipTokenizer::from_file(merges_path()));
    return t;
  }();
  return tok.get();
}

void expect_error(const std::function<void()>& f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing \"" << fragment << "\"";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

// ---- golden -------------------------------------------------------------------------------------

class CoopGolden : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (test::golden_dir().empty()) GTEST_SKIP() << "run via ctest, which writes the fixtures";
    const std::string dir = test::golden_dir() + "/coop/";
    io_ = std::make_unique<SafetensorsFile>(SafetensorsFile::open(dir + "coop.io.safetensors"));
    prefix_ = GetParam();
    const auto& names = io_->names();
    if (std::find(names.begin(), names.end(), prefix_ + "tokens") == names.end())
      GTEST_SKIP() << "case " << prefix_ << " needs fixtures made with the BPE merges";
    clip_ = std::make_unique<ClipModel>(ClipModel::load(dir + "clip.safetensors"));
    tokens_ = get("tokens");
    n_ctx_ = get("ctx").size(0);
  }
  Tensor get(const std::string& name) const {
    const auto& names = io_->names();
    const std::string key =
        std::find(names.begin(), names.end(), name) != names.end() ? name : prefix_ + name;
    return io_->get(key);
  }
  // The model on the fixture's tokens with the fixture's ctx.
  CoopModel model() const {
    CoopOptions o;
    o.n_ctx = n_ctx_;
    CoopModel m = CoopModel::from_prompt_tokens(*clip_, tokens_, o);
    const std::map<std::string, Tensor> ctx = {{"prompt_learner.ctx", get("ctx")}};
    nn::ParameterSet::LoadOptions only_ctx;
    only_ctx.allow_missing = true;  // the buffers come from the tokens
    m.parameters().load(ctx, "fixture " + prefix_ + "ctx", only_ctx);
    return m;
  }

  std::unique_ptr<SafetensorsFile> io_;
  std::string prefix_;
  std::unique_ptr<ClipModel> clip_;
  Tensor tokens_;
  int64_t n_ctx_ = 0;
};

TEST_P(CoopGolden, ForwardAndBackwardMatchReference) {
  CoopModel m = model();
  EXPECT_EQ(m.num_classes(), tokens_.size(0));
  EXPECT_EQ(m.n_ctx(), n_ctx_);
  Tensor img = get("image_features"), labels = get("labels");

  Tensor text = m.text_features();
  ASSERT_TRUE(text.requires_grad());
  Tensor logits = m.logits(img);
  Tensor loss = m.loss(img, labels);
  loss.backward();
  Tensor dctx = m.ctx().grad();
  ASSERT_TRUE(dctx.defined());
  clear_tape();  // the text_features and logits graphs were never run backward

  const double e_text = test::rel_error_to_max(text.detach(), get("text_features.f64"));
  const double e_logits = test::rel_error_to_max(logits.detach(), get("logits.f64"));
  const double ref_loss = get("loss.f64").item();
  const double e_loss = std::abs(loss.item() - ref_loss) / std::abs(ref_loss);
  const double e_dctx = test::rel_error_to_max(dctx, get("dctx.f64"));
  std::printf("  %s text %.2e logits %.2e loss %.2e dctx %.2e (torch f32: dctx %.2e)\n",
              prefix_.c_str(), e_text, e_logits, e_loss, e_dctx,
              test::rel_error_to_max(get("dctx"), get("dctx.f64")));
  EXPECT_LE(e_text, 1e-5);
  EXPECT_LE(e_logits, 1e-5);
  EXPECT_LE(e_loss, 1e-5);
  EXPECT_LE(e_dctx, 1e-4);

  // Only ctx gets a gradient: the buffers and CLIP's weights are frozen.
  EXPECT_FALSE(m.parameters().get("prompt_learner.token_suffix").grad().defined());
  EXPECT_FALSE(m.clip().weight("token_embedding.weight").grad().defined());
  EXPECT_FALSE(m.clip().weight("transformer.resblocks.0.attn.in_proj_weight").grad().defined());
}

TEST_P(CoopGolden, ChunkedEvaluationMatchesTrainingForward) {
  CoopModel m = model();
  Tensor img = get("image_features");
  Tensor full = m.text_features().detach();
  clear_tape();
  for (int64_t chunk : {0, 1, 4, 6, 100}) {
    Tensor t = m.class_text_features(chunk);
    EXPECT_EQ(tape_size(), 0u) << "chunk " << chunk;
    EXPECT_FALSE(t.requires_grad());
    EXPECT_LE(test::rel_error_to_max(t, full), 1e-6) << "chunk " << chunk;
    EXPECT_LE(test::rel_error_to_max(t, get("text_features.f64")), 1e-5) << "chunk " << chunk;
  }
  Tensor logits = m.logits(img, m.class_text_features(4));
  EXPECT_LE(test::rel_error_to_max(logits, get("logits.f64")), 1e-5);
}

TEST_P(CoopGolden, ClassNamesTokenizeAsTheReference) {
  const ClipTokenizer* tok = shared_tokenizer();
  if (!tok) GTEST_SKIP() << merges_path() << " is absent";
  const auto& meta = io_->metadata();
  if (meta.at("coop.tokenizer") != "bpe") GTEST_SKIP() << "fixtures made without the merges";
  const auto names =
      nlohmann::json::parse(meta.at("coop.class_names")).get<std::vector<std::string>>();
  CoopOptions o;
  if (prefix_ == "init.")
    o.init_text = meta.at("coop.init_text");
  else
    o.n_ctx = std::stoll(meta.at("coop.n_ctx"));
  CoopModel m(*clip_, *tok, names, o);
  EXPECT_EQ(m.n_ctx(), n_ctx_);
  EXPECT_EQ(m.prompt_tokens().to_double_vector(), tokens_.to_double_vector());
  if (prefix_ == "init.") {
    EXPECT_EQ(m.ctx().to_double_vector(), get("ctx").to_double_vector());  // the words' embeddings
    Tensor loss = m.loss(get("image_features"), get("labels"));
    EXPECT_LE(std::abs(loss.item() - get("loss.f64").item()) / get("loss.f64").item(), 1e-5);
    clear_tape();
  }
  EXPECT_EQ(m.text_encoder_sequences(), static_cast<int64_t>(names.size()));
}

INSTANTIATE_TEST_SUITE_P(Cases, CoopGolden, ::testing::Values("generic.", "init."),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                           return std::string(p.param) == "generic." ? "Generic" : "InitText";
                         });

// ---- in-memory model ----------------------------------------------------------------------------

ClipConfig small_config(int64_t vocab) {
  ClipConfig c;
  c.embed_dim = 16;
  c.image_resolution = 16;
  c.vision_layers = 1;
  c.vision_width = 16;
  c.vision_patch_size = 8;
  c.vision_heads = 1;
  c.context_length = 77;
  c.vocab_size = vocab;
  c.transformer_width = 32;
  c.transformer_heads = 2;
  c.transformer_layers = 1;
  return c;
}

ClipModel small_clip(int64_t vocab = 49408) {
  const ClipConfig c = small_config(vocab);
  Generator g(11);
  std::map<std::string, Tensor> t;
  for (const auto& [name, shape] : expected_clip_tensors(c)) {
    const bool ln_weight = name.find("ln_") != std::string::npos && name.ends_with(".weight");
    t[name] = ln_weight ? g.randn(shape, DType::f32, 0.1) + 1.0 : g.randn(shape, DType::f32, 0.3);
  }
  t["logit_scale"] = Tensor::full(Shape{}, std::log(100.0));
  return ClipModel::from_tensors(t, c);
}

// Prompt tokens [C,77] i64 made up as SOT, X (343) per context slot, `name_len` ids, '.', EOT.
Tensor made_up_tokens(int64_t C, int64_t n_ctx, int64_t name_len = 2) {
  std::vector<int64_t> v(static_cast<size_t>(C * 77), 0);
  for (int64_t c = 0; c < C; ++c) {
    int64_t* row = v.data() + c * 77;
    int64_t p = 0;
    row[p++] = 49406;
    for (int64_t i = 0; i < n_ctx; ++i) row[p++] = 343;
    for (int64_t i = 0; i < name_len + c % 3; ++i) row[p++] = 1000 + 37 * c + i;
    row[p++] = 269;
    row[p++] = 49407;
  }
  return Tensor::from_data(v.data(), {C, 77});
}

TEST(Coop, ParametersAndSeededInitialisation) {
  const ClipModel clip = small_clip();
  CoopOptions o;
  o.n_ctx = 16;
  o.seed = 3;
  CoopModel m = CoopModel::from_prompt_tokens(clip, made_up_tokens(5, 16), o);
  const nn::ParameterSet& p = m.parameters();
  EXPECT_EQ(p.names(),
            (std::vector<std::string>{"prompt_learner.ctx", "prompt_learner.token_prefix",
                                      "prompt_learner.token_suffix"}));
  EXPECT_TRUE(p.trainable("prompt_learner.ctx"));
  EXPECT_FALSE(p.trainable("prompt_learner.token_prefix"));
  EXPECT_FALSE(p.trainable("prompt_learner.token_suffix"));
  EXPECT_EQ(p.get("prompt_learner.ctx").shape(), Shape({16, 32}));
  EXPECT_EQ(p.get("prompt_learner.token_prefix").shape(), Shape({5, 1, 32}));
  EXPECT_EQ(p.get("prompt_learner.token_suffix").shape(), Shape({5, 60, 32}));
  EXPECT_EQ(p.numel(true), 16 * 32);
  // The buffers are the prompts' token embeddings around the context slots.
  Tensor emb = clip.embed_tokens(m.prompt_tokens());
  EXPECT_EQ(p.get("prompt_learner.token_prefix").to_double_vector(),
            emb.narrow(1, 0, 1).contiguous().to_double_vector());
  EXPECT_EQ(p.get("prompt_learner.token_suffix").to_double_vector(),
            emb.narrow(1, 17, 60).contiguous().to_double_vector());

  // N(0, 0.02²): the sample std of 512 draws is within 15% of 0.02, the mean near 0.
  std::vector<double> v = m.ctx().to_double_vector();
  double s = 0, s2 = 0;
  for (double x : v) s += x, s2 += x * x;
  const double mean = s / v.size(), sd = std::sqrt(s2 / v.size() - mean * mean);
  EXPECT_NEAR(sd, 0.02, 0.003);
  EXPECT_NEAR(mean, 0.0, 0.003);
  EXPECT_EQ(CoopModel::from_prompt_tokens(clip, made_up_tokens(5, 16), o).ctx().to_double_vector(),
            v);
  o.seed = 4;
  EXPECT_NE(CoopModel::from_prompt_tokens(clip, made_up_tokens(5, 16), o).ctx().to_double_vector(),
            v);

  EXPECT_EQ(m.text_encoder_sequences(), 5);
  EXPECT_EQ(m.text_encoder_tokens(), 5 * (1 + 16 + 4 + 2));  // longest prompt: 4 name ids
}

TEST(Coop, OwnEmbeddingsAsContextGiveEncodeText) {
  // With ctx = the embedding of X, the CoOp prompts are the token embeddings themselves.
  const ClipModel clip = small_clip();
  CoopOptions o;
  o.n_ctx = 8;
  CoopModel m = CoopModel::from_prompt_tokens(clip, made_up_tokens(7, 8), o);
  Tensor x_ids = Tensor::full({8}, 343.0, DType::i64);
  m.ctx().detach().copy_(clip.embed_tokens(x_ids));
  Tensor ours = m.class_text_features(3);
  Tensor ref = clip.encode_text(m.prompt_tokens());
  EXPECT_LE(test::rel_error_to_max(ours, ref), 1e-6);
}

TEST(Coop, GradientMatchesFiniteDifferences) {
  // d loss / d ctx of the whole CoOp pipeline against central differences of the loss (f64 CLIP
  // on the CPU) along the coordinates of one context vector.
  const ClipConfig c = small_config(49408);
  const ClipModel clip32 = small_clip();
  std::map<std::string, Tensor> t;
  for (const std::string& n : clip32.parameters().names()) t[n] = clip32.parameters().get(n);
  const ClipModel clip = ClipModel::from_tensors(t, c, Device::CPU, DType::f64);
  CoopOptions o;
  o.n_ctx = 4;
  o.init_std = 0.3;
  CoopModel m = CoopModel::from_prompt_tokens(clip, made_up_tokens(4, 4), o);
  Generator g(5);
  Tensor img = g.randn({3, 16}, DType::f64);
  std::vector<int64_t> y = {2, 0, 3};
  Tensor labels = Tensor::from_data(y.data(), {3});
  m.loss(img, labels).backward();
  std::vector<double> grad = m.ctx().grad().to_double_vector();
  NoGradGuard no_grad;
  float* p = m.ctx().data<float>();
  for (int64_t i = 32; i < 64; ++i) {  // context vector 1
    const float orig = p[i];
    const float up = orig + 1e-2f, down = orig - 1e-2f;  // the steps actually taken in f32
    p[i] = up;
    const double lp = m.loss(img, labels).item();
    p[i] = down;
    const double lm = m.loss(img, labels).item();
    p[i] = orig;
    const double num = (lp - lm) / (static_cast<double>(up) - down);
    EXPECT_NEAR(grad[static_cast<size_t>(i)], num, 2e-3 * std::max(1.0, std::abs(num))) << i;
  }
}

TEST(Coop, BadInputIsRefused) {
  const ClipModel clip = small_clip();
  CoopOptions o;
  o.n_ctx = 4;
  CoopModel m = CoopModel::from_prompt_tokens(clip, made_up_tokens(3, 4), o);
  Generator g(1);
  Tensor img = g.randn({2, 16});
  std::vector<int64_t> ok = {0, 2}, high = {0, 3}, negative = {-1, 0};

  // Wrong class count / shapes.
  expect_error(
      [&] {
        m.logits(img, g.randn({4, 16}));
      },
      "text features have 4 classes, the model has 3");
  expect_error([&] { m.logits(g.randn({2, 15})); }, "image features must be [B, 16]");
  expect_error([&] { m.logits(Tensor::zeros({2, 16}, DType::i64)); }, "must be float");
  // Labels.
  expect_error([&] { m.loss(img, Tensor::from_data(high.data(), {2})); },
               "label 3 of image 1 is outside [0, 3)");
  expect_error([&] { m.loss(img, Tensor::from_data(negative.data(), {2})); },
               "label -1 of image 0");
  expect_error([&] { m.loss(img, Tensor::from_data(ok.data(), {1, 2})); }, "labels must be [2]");
  expect_error([&] { m.loss(img, g.randn({2})); }, "labels must be i32 or i64");
  EXPECT_EQ(tape_size(), 0u);  // refused before any op ran
  EXPECT_TRUE(std::isfinite(m.loss(img, Tensor::from_data(ok.data(), {2})).item()));
  clear_tape();
  expect_error([&] { m.class_text_features(-1); }, "negative");
  expect_error([&] { m.prompts(2, 2); }, "outside [0, 3)");

  // Prompt tokens.
  expect_error(
      [&] { CoopModel::from_prompt_tokens(clip, made_up_tokens(3, 4).narrow(1, 0, 70), o); },
      "prompt tokens must be [C, 77]");
  expect_error([&] { CoopModel::from_prompt_tokens(clip, made_up_tokens(3, 0, 1), o); },
               "prompt 0 has its EOT (largest id) at position 3, which leaves no room after SOT "
               "for 4 context tokens");
  EXPECT_NO_THROW(CoopModel::from_prompt_tokens(clip, made_up_tokens(3, 4), o));
  o.n_ctx = 0;
  expect_error([&] { CoopModel::from_prompt_tokens(clip, made_up_tokens(3, 4), o); }, "n_ctx = 0");
  o.n_ctx = 75;
  expect_error([&] { CoopModel::from_prompt_tokens(clip, made_up_tokens(3, 4), o); }, "n_ctx = 75");
  o.n_ctx = 4;
  const ClipModel small_vocab = small_clip(1000);
  expect_error([&] { CoopModel::from_prompt_tokens(small_vocab, made_up_tokens(3, 4), o); },
               "outside the vocabulary [0, 1000)");
}

TEST(Coop, BadClassNamesAreRefused) {
  const ClipTokenizer* tok = shared_tokenizer();
  if (!tok) GTEST_SKIP() << merges_path() << " is absent";
  const ClipModel clip = small_clip();
  CoopOptions o;  // n_ctx 16
  // 16 X's + SOT + '.' + EOT leave 58 tokens for a name.
  std::string long_name;
  for (int i = 0; i < 58; ++i) long_name += "cat ";
  EXPECT_NO_THROW(CoopModel(clip, *tok, {"dog", long_name}, o));
  long_name += "cat";
  expect_error([&] { CoopModel(clip, *tok, {"dog", long_name}, o); }, "class 1 \"cat cat");
  expect_error(
      [&] {
        CoopModel(clip, *tok, {"dog", long_name}, o);
      },
      "is 78 tokens with SOT and EOT (16 context + 60 for the name and '.'), more than the "
      "context length 77");
  expect_error([&] { CoopModel(clip, *tok, {}, o); }, "no class names");
  expect_error([&] { CoopModel(clip, *tok, {"dog", " _ "}, o); }, "class 1 has an empty name");
  o.init_text = "a photograph-of";
  expect_error([&] { CoopModel(clip, *tok, {"dog"}, o); }, "one token per word");
  o.init_text = "a_photo_of_a";  // '_' becomes ' ' as in CoOp
  CoopModel m(clip, *tok, {"sea_lion"}, o);
  EXPECT_EQ(m.n_ctx(), 4);
  std::vector<double> row = m.prompt_tokens().narrow(1, 0, 9).to_double_vector();
  EXPECT_EQ(row, (std::vector<double>{49406, 320, 1125, 539, 320, 2102, 5567, 269, 49407}));
  const ClipModel small_vocab = small_clip(1000);
  o.init_text.clear();
  expect_error([&] { CoopModel(small_vocab, *tok, {"dog"}, o); },
               "do not fit the model's vocabulary");
}

}  // namespace

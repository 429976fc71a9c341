/*
 * test_clip_model.cpp — the CLIP model (models/clip) against our PyTorch reference, plus loading,
 * validation and input errors.
 *
 * Golden part (fixtures from tests/golden/gen_clip_model.py via ctest): two random ViT CLIPs
 * (A: width 128/2 heads, patch 8, QuickGELU; B: width 64/1 head, patch 16, text 3 heads, GELU),
 * each as the canonical f32 file and OpenAI's mixed layout (A f16, B bf16). Image features, image
 * tokens (no ln_post), text features from token ids (i64 and i32), text features from input
 * embeddings and their gradient for a fixed upstream gradient are compared, per tensor, as
 * max|ours - ref| / max|ref|: within 1e-5 of the reference computed in f64, and within 1e-5 plus
 * PyTorch f32's own error of the reference computed in f32.
 *
 * The other tests build small random models in memory (independent of the fixtures): file
 * validation (missing/extra/int/wrongly shaped tensors, metadata, config JSON, ResNet), config
 * JSON round trip and names, input checks, autograd recording, EOT truncation invariance.
 */
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "engine/safetensors.h"
#include "models/clip/clip.h"
#include "tests/test_util.h"

using namespace tgpt;
namespace fs = std::filesystem;

namespace {

// max|a - ref| / max|ref| (shapes must match).
double rel_to_max(const Tensor& a, const Tensor& ref) {
  EXPECT_EQ(a.shape(), ref.shape()) << a.str() << " vs " << ref.str();
  std::vector<double> va = a.to_double_vector(), vr = ref.to_double_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < va.size() && i < vr.size(); ++i) {
    num = std::max(num, std::abs(va[i] - vr[i]));
    den = std::max(den, std::abs(vr[i]));
  }
  return den > 0 ? num / den : num;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_double_vector() == b.to_double_vector();
}

// ---- golden -------------------------------------------------------------------------------------

class ClipGolden : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (test::golden_dir().empty()) GTEST_SKIP() << "run via ctest, which writes the fixtures";
    dir_ = test::golden_dir() + "/clip_model/";
    io_ = std::make_unique<SafetensorsFile>(
        SafetensorsFile::open(dir_ + GetParam() + std::string(".io.safetensors")));
  }
  Tensor get(const std::string& name) const { return io_->get(name); }

  void check(const Tensor& ours, const std::string& key) const {
    Tensor ref32 = get(key), ref64 = get(key + ".f64");
    double e64 = rel_to_max(ours, ref64), e32 = rel_to_max(ours, ref32);
    double torch_err = rel_to_max(ref32, ref64);
    std::printf("  %s %-28s ours-vs-f64 %.2e  ours-vs-torch-f32 %.2e  (torch f32 vs f64 %.2e)\n",
                GetParam(), key.c_str(), e64, e32, torch_err);
    EXPECT_LE(e64, 1e-5) << key << " vs reference f64";
    EXPECT_LE(e32, 1e-5 + torch_err) << key << " vs reference f32";
  }

  // Every output of `model` against the "<prefix>..." references.
  void check_model(const ClipModel& model, const std::string& prefix) const {
    ClipModel::ImageOutput img = model.encode_image_with_tokens(get("images"));
    EXPECT_EQ(tape_size(), 0u);
    check(img.pooled, prefix + "image_features");
    check(img.tokens, prefix + "image_tokens");
    EXPECT_TRUE(bitwise_equal(model.encode_image(get("images")), img.pooled));

    Tensor tokens = get("tokens");
    Tensor text = model.encode_text(tokens);
    EXPECT_EQ(tape_size(), 0u);
    check(text, prefix + "text_features");
    EXPECT_TRUE(bitwise_equal(model.encode_text(tokens.to(DType::i32)), text));

    Tensor x = get("text_x").clone().set_requires_grad(true);
    Tensor y = model.encode_text_embeddings(x, get("text_eot"));
    ASSERT_TRUE(y.requires_grad());
    y.backward(get("text_dy"));
    check(y, prefix + "text_emb_features");
    ASSERT_TRUE(x.grad().defined());
    check(x.grad(), prefix + "text_emb_dx");
    EXPECT_FALSE(model.weight("token_embedding.weight").grad().defined());
    EXPECT_FALSE(model.weight("transformer.resblocks.0.attn.in_proj_weight").grad().defined());
  }

  std::string dir_;
  std::unique_ptr<SafetensorsFile> io_;
};

TEST_P(ClipGolden, CanonicalFileMatchesReference) {
  const std::string path = dir_ + GetParam() + ".safetensors";
  ClipModel model = ClipModel::load(path);
  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(model.config().to_json(),
            ClipConfig::from_json(f.metadata().at("tgpt.config")).to_json());
  auto merges = f.metadata().find("tgpt.bpe_merges");
  EXPECT_EQ(model.bpe_merges(), merges == f.metadata().end() ? "" : merges->second);
  EXPECT_DOUBLE_EQ(model.logit_scale(),
                   std::exp(static_cast<double>(f.get("logit_scale").to_float_vector()[0])));
  check_model(model, "");

  // from_tensors with the same tensors gives the same model.
  std::map<std::string, Tensor> tensors;
  for (const std::string& n : f.names()) tensors.emplace(n, f.get(n));
  ClipModel m2 = ClipModel::from_tensors(tensors, model.config());
  EXPECT_TRUE(bitwise_equal(m2.encode_image(get("images")), model.encode_image(get("images"))));
  EXPECT_TRUE(bitwise_equal(m2.encode_text(get("tokens")), model.encode_text(get("tokens"))));
}

TEST_P(ClipGolden, MixedPrecisionFileIsConvertedAtLoad) {
  const std::string path = dir_ + GetParam() + ".mixed.safetensors";
  SafetensorsFile f = SafetensorsFile::open(path);
  ASSERT_NE(f.entry("visual.proj").dtype, DType::f32);  // the fixture really is mixed
  ASSERT_EQ(f.entry("visual.ln_pre.weight").dtype, DType::f32);
  ClipModel model = ClipModel::load(path);
  for (const char* n : {"visual.proj", "text_projection", "visual.conv1.weight",
                        "transformer.resblocks.0.mlp.c_fc.bias", "visual.class_embedding"}) {
    EXPECT_EQ(model.weight(n).dtype(), DType::f32) << n;
    EXPECT_FALSE(model.weight(n).requires_grad()) << n;
    EXPECT_TRUE(bitwise_equal(model.weight(n), f.get(n).to(DType::f32))) << n;
  }
  check_model(model, "mixed.");
}

INSTANTIATE_TEST_SUITE_P(Configs, ClipGolden, ::testing::Values("A", "B"));

// ---- in-memory models ---------------------------------------------------------------------------

ClipConfig tiny_config() {
  ClipConfig c;
  c.embed_dim = 16;
  c.image_resolution = 16;
  c.vision_layers = 1;
  c.vision_width = 32;
  c.vision_patch_size = 8;
  c.vision_heads = 2;
  c.context_length = 77;
  c.vocab_size = 50;
  c.transformer_width = 24;
  c.transformer_heads = 2;
  c.transformer_layers = 2;
  return c;
}

void add_block(std::map<std::string, Tensor>& t, Generator& g, const std::string& p, int64_t w) {
  auto r = [&](Shape s, double std) { return g.randn(s, DType::f32, std); };
  t[p + "ln_1.weight"] = r({w}, 0.2) + 1.0;
  t[p + "ln_1.bias"] = r({w}, 0.1);
  t[p + "attn.in_proj_weight"] = r({3 * w, w}, 0.2);
  t[p + "attn.in_proj_bias"] = r({3 * w}, 0.2);
  t[p + "attn.out_proj.weight"] = r({w, w}, 0.2);
  t[p + "attn.out_proj.bias"] = r({w}, 0.2);
  t[p + "ln_2.weight"] = r({w}, 0.2) + 1.0;
  t[p + "ln_2.bias"] = r({w}, 0.1);
  t[p + "mlp.c_fc.weight"] = r({4 * w, w}, 0.2);
  t[p + "mlp.c_fc.bias"] = r({4 * w}, 0.2);
  t[p + "mlp.c_proj.weight"] = r({w, 4 * w}, 0.1);
  t[p + "mlp.c_proj.bias"] = r({w}, 0.2);
}

// Random tensors for every name of a ViT CLIP with config c (shapes per models/README.md).
std::map<std::string, Tensor> random_tensors(const ClipConfig& c, uint64_t seed = 7) {
  Generator g(seed);
  std::map<std::string, Tensor> t;
  const int64_t W = c.vision_width, Wt = c.transformer_width, E = c.embed_dim;
  const int64_t P = c.vision_patch_size;
  t["visual.conv1.weight"] = g.randn({W, 3, P, P}, DType::f32, 0.1);
  t["visual.class_embedding"] = g.randn({W}, DType::f32, 0.5);
  t["visual.positional_embedding"] = g.randn({c.vision_tokens(), W}, DType::f32, 0.5);
  t["visual.ln_pre.weight"] = g.randn({W}, DType::f32, 0.2) + 1.0;
  t["visual.ln_pre.bias"] = g.randn({W}, DType::f32, 0.1);
  t["visual.ln_post.weight"] = g.randn({W}, DType::f32, 0.2) + 1.0;
  t["visual.ln_post.bias"] = g.randn({W}, DType::f32, 0.1);
  t["visual.proj"] = g.randn({W, E}, DType::f32, 0.2);
  t["token_embedding.weight"] = g.randn({c.vocab_size, Wt}, DType::f32, 0.5);
  t["positional_embedding"] = g.randn({c.context_length, Wt}, DType::f32, 0.5);
  t["ln_final.weight"] = g.randn({Wt}, DType::f32, 0.2) + 1.0;
  t["ln_final.bias"] = g.randn({Wt}, DType::f32, 0.1);
  t["text_projection"] = g.randn({Wt, E}, DType::f32, 0.2);
  t["logit_scale"] = Tensor::full(Shape{}, std::log(100.0));
  for (int64_t i = 0; i < c.vision_layers; ++i)
    add_block(t, g, "visual.transformer.resblocks." + std::to_string(i) + ".", W);
  for (int64_t i = 0; i < c.transformer_layers; ++i)
    add_block(t, g, "transformer.resblocks." + std::to_string(i) + ".", Wt);
  return t;
}

std::map<std::string, std::string> clip_metadata(const ClipConfig& c) {
  return {{"tgpt.format", "clip"}, {"tgpt.format_version", "1"}, {"tgpt.config", c.to_json()}};
}

// Token rows [SOT, ids..., EOT, 0...] with EOT = V-1 at the given positions.
Tensor make_tokens(const ClipConfig& c, const std::vector<int64_t>& eot_at) {
  const int64_t N = static_cast<int64_t>(eot_at.size()), ctx = c.context_length;
  std::vector<int64_t> v(static_cast<size_t>(N * ctx), 0);
  for (int64_t n = 0; n < N; ++n) {
    v[static_cast<size_t>(n * ctx)] = c.vocab_size - 2;
    for (int64_t j = 1; j < eot_at[n]; ++j)
      v[static_cast<size_t>(n * ctx + j)] = 1 + (n * 7 + j) % 40;
    v[static_cast<size_t>(n * ctx + eot_at[n])] = c.vocab_size - 1;
  }
  return Tensor::from_data(v.data(), {N, ctx});
}

class ClipModelFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "tgpt_clip_XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::map<std::string, Tensor>& tensors,
                    const std::map<std::string, std::string>& meta) {
    std::string p = (fs::path(dir_) / "model.safetensors").string();
    std::vector<std::pair<std::string, Tensor>> list(tensors.begin(), tensors.end());
    save_safetensors(p, list, meta);
    return p;
  }
  // Expects load() to fail with a message naming the file and containing every part.
  void expect_load_error(const std::string& path, const std::vector<std::string>& parts) {
    try {
      ClipModel::load(path);
      ADD_FAILURE() << "load succeeded";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      for (const std::string& p : parts)
        EXPECT_NE(msg.find(p), std::string::npos) << p << " in\n" << msg;
    }
  }
  std::string dir_;
};

TEST_F(ClipModelFile, RoundTripThroughFile) {
  ClipConfig c = tiny_config();
  c.activation = Activation::gelu;
  auto t = random_tensors(c);
  auto meta = clip_metadata(c);
  meta["tgpt.bpe_merges"] = "a b\nab c";
  meta["tgpt.source_sha256"] = "0123";  // other metadata is ignored
  ClipModel m = ClipModel::load(write(t, meta));
  EXPECT_EQ(m.config().to_json(), c.to_json());
  EXPECT_EQ(m.bpe_merges(), "a b\nab c");
  EXPECT_NEAR(m.logit_scale(), 100.0, 1e-4);
  ClipModel m2 = ClipModel::from_tensors(t, c);
  Tensor img = Generator(3).randn({2, 3, 16, 16});
  EXPECT_TRUE(bitwise_equal(m.encode_image(img), m2.encode_image(img)));
  EXPECT_EQ(m.encode_image(img).shape(), Shape({2, 16}));
  ClipModel::ImageOutput o = m.encode_image_with_tokens(img);
  EXPECT_EQ(o.tokens.shape(), Shape({2, 5, 16}));
  EXPECT_THROW(m.weight("visual.nope"), Error);
}

TEST_F(ClipModelFile, MissingTensor) {
  auto t = random_tensors(tiny_config());
  t.erase("transformer.resblocks.1.mlp.c_proj.bias");
  expect_load_error(write(t, clip_metadata(tiny_config())),
                    {"missing", "transformer.resblocks.1.mlp.c_proj.bias"});
}

TEST_F(ClipModelFile, WrongShape) {
  auto t = random_tensors(tiny_config());
  t["visual.positional_embedding"] = Tensor::zeros({6, 32});
  expect_load_error(write(t, clip_metadata(tiny_config())),
                    {"visual.positional_embedding", "[6, 32]", "expected [5, 32]"});
}

TEST_F(ClipModelFile, ExtraTensor) {
  auto t = random_tensors(tiny_config());
  t["visual.transformer.resblocks.1.ln_1.weight"] = Tensor::zeros({32});  // one layer too many
  t["input_resolution"] = Tensor::zeros({}, DType::i64);
  expect_load_error(
      write(t, clip_metadata(tiny_config())),
      {"2 unexpected", "visual.transformer.resblocks.1.ln_1.weight", "input_resolution"});
}

TEST_F(ClipModelFile, AllProblemsInOneError) {
  auto t = random_tensors(tiny_config());
  t.erase("ln_final.bias");
  t["text_projection"] = Tensor::zeros({16, 24});  // transposed
  t["logit_scale"] = Tensor::zeros({}, DType::i64);
  t["extra"] = Tensor::zeros({1});
  expect_load_error(write(t, clip_metadata(tiny_config())),
                    {"4 problems", "ln_final.bias", "text_projection has shape [16, 24]",
                     "logit_scale has dtype i64", "extra"});
}

TEST_F(ClipModelFile, ResNetIsRejected) {
  auto t = random_tensors(tiny_config());
  t["visual.layer1.0.conv1.weight"] = Tensor::zeros({4, 4, 1, 1});
  expect_load_error(write(t, clip_metadata(tiny_config())), {"ResNet"});
}

TEST_F(ClipModelFile, Metadata) {
  const ClipConfig c = tiny_config();
  auto t = random_tensors(c);
  auto meta = clip_metadata(c);
  meta["tgpt.format"] = "tgpt-bonder";
  expect_load_error(write(t, meta), {"tgpt.format", "tgpt-bonder", "expected \"clip\""});
  meta = clip_metadata(c);
  meta.erase("tgpt.format");
  expect_load_error(write(t, meta), {"tgpt.format is missing"});
  meta = clip_metadata(c);
  meta["tgpt.format_version"] = "2";
  expect_load_error(write(t, meta), {"format_version", "\"2\""});
  meta = clip_metadata(c);
  meta.erase("tgpt.config");
  expect_load_error(write(t, meta), {"tgpt.config is missing"});
}

TEST_F(ClipModelFile, BadConfig) {
  const ClipConfig c = tiny_config();
  auto t = random_tensors(c);
  auto meta = clip_metadata(c);
  meta["tgpt.config"] = "{\"embed_dim\": 16,";
  expect_load_error(write(t, meta), {"tgpt.config", "not valid JSON"});
  meta["tgpt.config"] = "[1, 2]";
  expect_load_error(write(t, meta), {"not a JSON object"});
  std::string js = c.to_json();
  meta["tgpt.config"] = js.replace(js.find("\"vision_heads\":2"), 16, "\"vision_heads\":3");
  expect_load_error(write(t, meta), {"vision_width 32 is not divisible by vision_heads 3"});
}

TEST(ClipConfig, JsonRoundTripAndErrors) {
  ClipConfig c = tiny_config();
  c.activation = Activation::gelu;
  ClipConfig d = ClipConfig::from_json(c.to_json());
  EXPECT_EQ(d.to_json(), c.to_json());
  EXPECT_EQ(d.activation, Activation::gelu);
  EXPECT_EQ(d.vision_grid(), 2);
  EXPECT_EQ(d.vision_tokens(), 5);
  EXPECT_TRUE(c.problems().empty());

  auto expect_error = [](const std::string& js, const std::string& part) {
    try {
      ClipConfig::from_json(js);
      ADD_FAILURE() << "accepted " << js;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  std::string js = c.to_json();
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = js;
    size_t p = s.find(from);
    EXPECT_NE(p, std::string::npos) << from;
    return s.replace(p, from.size(), to);
  };
  expect_error(with("\"embed_dim\":16,", ""), "missing field \"embed_dim\"");
  expect_error(with("\"embed_dim\":16", "\"embed_dim\":16.5"), "must be an integer");
  expect_error(with("\"embed_dim\":16", "\"embed_dim\":\"16\""), "must be an integer");
  expect_error(with("\"embed_dim\":16", "\"embed_dim\":-16"), "embed_dim = -16");
  expect_error(with("\"embed_dim\":16", "\"embed_dim\":0"), "embed_dim = 0");
  expect_error(with("\"embed_dim\":16", "\"embed_dim\":99999999999999999999"), "embed_dim");
  expect_error(with("\"gelu\"", "\"relu\""), "activation");
  expect_error(with("\"embed_dim\":16", "\"embed_dim\":16,\"depth\":3"), "unknown field \"depth\"");
  expect_error(with("\"image_resolution\":16", "\"image_resolution\":20"),
               "image_resolution 20 is not a multiple of vision_patch_size 8");
  expect_error("", "not valid JSON");

  ClipConfig b16{512, 224, 12, 768, 16, 12, 77, 49408, 512, 8, 12, Activation::quick_gelu};
  EXPECT_EQ(b16.name(), "ViT-B/16");
  b16.vision_patch_size = 32;
  EXPECT_EQ(b16.name(), "ViT-B/32");
  ClipConfig l14{768, 336, 24, 1024, 14, 16, 77, 49408, 768, 12, 12, Activation::gelu};
  EXPECT_EQ(l14.name(), "ViT-L/14@336px (gelu)");
  EXPECT_NE(tiny_config().name().find("patch 8"), std::string::npos);
}

TEST(ClipModel, FromTensorsValidates) {
  ClipConfig c = tiny_config();
  auto t = random_tensors(c);
  c.transformer_heads = 5;
  EXPECT_THROW(ClipModel::from_tensors(t, c), Error);
  c = tiny_config();
  c.vocab_size = 51;
  try {
    ClipModel::from_tensors(t, c);
    ADD_FAILURE() << "accepted a wrong vocabulary size";
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("token_embedding.weight has shape [50, 24], expected [51, 24]"),
        std::string::npos)
        << e.what();
  }
  // The caller's tensors are not modified (requires_grad stays as given).
  t["visual.proj"].set_requires_grad(true);
  ClipModel m = ClipModel::from_tensors(t, tiny_config());
  EXPECT_TRUE(t["visual.proj"].requires_grad());
  EXPECT_FALSE(m.weight("visual.proj").requires_grad());
}

TEST(ClipModel, ParametersAreOpenAIsInStateDictOrder) {
  ClipConfig c = tiny_config();
  auto t = random_tensors(c);
  ClipModel m = ClipModel::from_tensors(t, c, Device::CPU, DType::f64);
  const nn::ParameterSet& ps = m.parameters();
  auto expected = expected_clip_tensors(c);
  std::vector<std::string> names = ps.names();
  ASSERT_EQ(names.size(), expected.size());
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(names[i], expected[i].first);
    const Tensor& w = ps.get(names[i]);
    EXPECT_EQ(w.shape(), expected[i].second) << names[i];
    EXPECT_EQ(w.dtype(), DType::f64) << names[i];
    EXPECT_TRUE(bitwise_equal(w, t.at(names[i]).to(DType::f64))) << names[i];
    EXPECT_TRUE(w.is_same(m.weight(names[i]))) << names[i];
  }
  EXPECT_EQ(ps.numel(/*trainable_only=*/true), 0);
}

TEST(ClipModel, InputChecks) {
  ClipModel m = ClipModel::from_tensors(random_tensors(tiny_config()), tiny_config());
  EXPECT_THROW(m.encode_image(Tensor::zeros({1, 3, 32, 32})), Error);
  EXPECT_THROW(m.encode_image(Tensor::zeros({1, 1, 16, 16})), Error);
  EXPECT_THROW(m.encode_image(Tensor::zeros({1, 3, 16, 16}, DType::i32)), Error);
  EXPECT_EQ(m.encode_image(Tensor::zeros({0, 3, 16, 16})).shape(), Shape({0, 16}));
  EXPECT_THROW(m.encode_text(Tensor::zeros({2, 76}, DType::i64)), Error);
  EXPECT_THROW(m.encode_text(Tensor::zeros({2, 77}, DType::f32)), Error);
  Tensor bad = make_tokens(tiny_config(), {3});
  bad.data<int64_t>()[5] = 50;  // outside the vocabulary
  EXPECT_THROW(m.encode_text(bad), Error);
  Tensor x = Tensor::zeros({2, 77, 24});
  EXPECT_THROW(m.encode_text_embeddings(x, Tensor::from_vector({1, 77}, {2}, DType::i64)), Error);
  EXPECT_THROW(m.encode_text_embeddings(x, Tensor::from_vector({1, -1}, {2}, DType::i64)), Error);
  EXPECT_THROW(m.encode_text_embeddings(x, Tensor::from_vector({1}, {1}, DType::i64)), Error);
  EXPECT_THROW(m.encode_text_embeddings(x, Tensor::from_vector({1, 2}, {2}, DType::f32)), Error);
  EXPECT_THROW(m.encode_text_embeddings(Tensor::zeros({2, 77, 25}),
                                        Tensor::from_vector({1, 2}, {2}, DType::i64)),
               Error);
  EXPECT_EQ(m.embed_tokens(make_tokens(tiny_config(), {3, 9})).shape(), Shape({2, 77, 24}));
  EXPECT_EQ(m.encode_text(Tensor::zeros({0, 77}, DType::i64)).shape(), Shape({0, 16}));
  EXPECT_EQ(
      m.encode_text_embeddings(Tensor::zeros({0, 77, 24}), Tensor::zeros({0}, DType::i64)).shape(),
      Shape({0, 16}));
}

TEST(ClipModel, TextPoolsAtFirstEotAndIgnoresLaterPositions) {
  const ClipConfig c = tiny_config();
  ClipModel m = ClipModel::from_tensors(random_tensors(c), c);
  Tensor tokens = make_tokens(c, {1, 9, 76});
  Tensor x = m.embed_tokens(tokens);
  Tensor eot = Tensor::from_vector({1, 9, 76}, {3}, DType::i64);
  Tensor ref = m.encode_text_embeddings(x, eot);
  EXPECT_TRUE(bitwise_equal(m.encode_text(tokens), ref));
  // Changing the embeddings after each row's EOT changes nothing (causal attention).
  Tensor x2 = x.clone();
  float* p = x2.data<float>();
  const int64_t at[3] = {1, 9, 76};
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t t = at[n] + 1; t < 77; ++t)
      for (int64_t k = 0; k < 24; ++k) p[(n * 77 + t) * 24 + k] += 3.0f;
  EXPECT_TRUE(bitwise_equal(m.encode_text_embeddings(x2, eot), ref));
  // A row alone (run over 2 or 10 positions) equals the same row in the full batch.
  for (int64_t n = 0; n < 2; ++n) {
    Tensor one = m.encode_text(tokens.narrow(0, n, 1));
    EXPECT_LE(rel_to_max(one, ref.narrow(0, n, 1)), 1e-6) << n;
  }
  // A second EOT: pooling takes the first.
  Tensor two = tokens.narrow(0, 2, 1).clone();
  two.data<int64_t>()[4] = c.vocab_size - 1;
  Tensor pooled4 =
      m.encode_text_embeddings(m.embed_tokens(two), Tensor::from_vector({4}, {1}, DType::i64));
  EXPECT_TRUE(bitwise_equal(m.encode_text(two), pooled4));
}

TEST(ClipModel, AutogradRecordsOnlyWhenAsked) {
  const ClipConfig c = tiny_config();
  ClipModel m = ClipModel::from_tensors(random_tensors(c), c);
  Tensor tokens = make_tokens(c, {4, 6});
  Tensor eot = Tensor::from_vector({4, 6}, {2}, DType::i64);
  clear_tape();
  m.encode_text(tokens);
  m.encode_image(Generator(1).randn({1, 3, 16, 16}));
  Tensor y = m.encode_text_embeddings(m.embed_tokens(tokens), eot);
  EXPECT_EQ(tape_size(), 0u);
  EXPECT_FALSE(y.requires_grad());
  Tensor x = m.embed_tokens(tokens).clone().set_requires_grad(true);
  {
    NoGradGuard ng;
    EXPECT_FALSE(m.encode_text_embeddings(x, eot).requires_grad());
  }
  EXPECT_EQ(tape_size(), 0u);
  y = m.encode_text_embeddings(x, eot);
  EXPECT_TRUE(y.requires_grad());
  EXPECT_GT(tape_size(), 0u);
  sum(y).backward();
  EXPECT_EQ(tape_size(), 0u);
  ASSERT_TRUE(x.grad().defined());
  // Positions after the last EOT get a zero gradient, earlier ones a non-zero one.
  std::vector<double> g = x.grad().to_double_vector();
  double before = 0, after = 0;
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t t = 0; t < 77; ++t)
      for (int64_t k = 0; k < 24; ++k)
        (t <= (n ? 6 : 4) ? before : after) +=
            std::abs(g[static_cast<size_t>((n * 77 + t) * 24 + k)]);
  EXPECT_GT(before, 0.0);
  EXPECT_EQ(after, 0.0);
}

TEST(ClipModel, DeviceAndComputeDtypeChecks) {
  const ClipConfig c = tiny_config();
  auto t = random_tensors(c);
  // The one-argument forms are the CPU f32 model, identical to naming CPU/f32.
  ClipModel m = ClipModel::from_tensors(t, c);
  EXPECT_EQ(m.device(), Device::CPU);
  EXPECT_EQ(m.compute_dtype(), DType::f32);
  ClipModel m2 = ClipModel::from_tensors(t, c, Device::CPU, DType::f32);
  Tensor images = Generator(3).randn({2, 3, 16, 16});
  EXPECT_TRUE(bitwise_equal(m.encode_image(images), m2.encode_image(images)));
  EXPECT_DOUBLE_EQ(m.logit_scale(), m2.logit_scale());
  EXPECT_NEAR(m.logit_scale(), 100.0, 1e-4);
  auto expect_error = [&](Device d, DType dt, const std::string& needle) {
    try {
      ClipModel::from_tensors(t, c, d, dt);
      ADD_FAILURE() << "accepted " << device_name(d) << " " << dtype_name(dt);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(Device::CPU, DType::i64, "compute dtype i64 is not a float type");
  // f64 and integer compute are refused on CUDA before any device is touched.
  expect_error(Device::CUDA, DType::f64, "compute dtype f64 is not supported on CUDA");
  expect_error(Device::CUDA, DType::i32, "is not supported on CUDA");
  if (!cuda_available()) {
    expect_error(Device::CUDA, DType::f16, "CUDA requested but no CUDA device is available");
    expect_error(Device::CUDA, DType::f32, "CUDA requested but no CUDA device is available");
  }
}

// The CPU reference precisions (f64, and op-by-op bf16/f16) that the CUDA tests compare against.
TEST(ClipModel, CpuReferenceDtypes) {
  const ClipConfig c = tiny_config();
  auto t = random_tensors(c);
  ClipModel m32 = ClipModel::from_tensors(t, c);
  Tensor images = Generator(5).randn({2, 3, 16, 16});
  Tensor tokens = make_tokens(c, {3, 8});
  Tensor eot = Tensor::from_vector({3, 8}, {2}, DType::i64);
  const Tensor img32 = m32.encode_image(images), txt32 = m32.encode_text(tokens);
  for (DType dt : {DType::f64, DType::bf16, DType::f16}) {
    ClipModel m = ClipModel::from_tensors(t, c, Device::CPU, dt);
    EXPECT_EQ(m.compute_dtype(), dt);
    EXPECT_EQ(m.weight("visual.proj").dtype(), dt);
    Tensor img = m.encode_image(images), txt = m.encode_text(tokens);
    const DType out_dt = dt == DType::f64 ? DType::f64 : DType::f32;  // f64 models keep f64
    EXPECT_EQ(img.dtype(), out_dt);
    EXPECT_EQ(txt.dtype(), out_dt);
    // f64 differs from f32 by f32 rounding only; bf16 (8-bit mantissa) and f16 (11-bit) by a few
    // roundings of each activation through 1-2 layers.
    const double tol = dt == DType::f64 ? 1e-5 : dt == DType::bf16 ? 0.1 : 0.02;
    EXPECT_LE(rel_to_max(img, img32), tol) << dtype_name(dt);
    EXPECT_LE(rel_to_max(txt, txt32), tol) << dtype_name(dt);
    Tensor x = m32.embed_tokens(tokens).clone().set_requires_grad(true);
    sum(m.encode_text_embeddings(x, eot)).backward();
    ASSERT_TRUE(x.grad().defined()) << dtype_name(dt);
    EXPECT_EQ(x.grad().dtype(), DType::f32);
    for (double v : x.grad().to_double_vector()) ASSERT_TRUE(std::isfinite(v)) << dtype_name(dt);
  }
}

TEST_F(ClipModelFile, LoadWithDeviceAndDtype) {
  const ClipConfig c = tiny_config();
  const std::string path = write(random_tensors(c), clip_metadata(c));
  ClipModel a = ClipModel::load(path);
  ClipModel b = ClipModel::load(path, Device::CPU, DType::f32);
  EXPECT_EQ(b.device(), Device::CPU);
  EXPECT_EQ(b.compute_dtype(), DType::f32);
  Tensor tokens = make_tokens(c, {3, 7});
  EXPECT_TRUE(bitwise_equal(a.encode_text(tokens), b.encode_text(tokens)));
  EXPECT_THROW(ClipModel::load(path, Device::CPU, DType::i32), Error);
  EXPECT_THROW(ClipModel::load(path, Device::CUDA, DType::f64), Error);
  if (!cuda_available()) {
    try {
      ClipModel::load(path, Device::CUDA, DType::f16);
      ADD_FAILURE() << "loaded onto CUDA without a device";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("no CUDA device is available"), std::string::npos)
          << e.what();
    }
  }
}

}  // namespace

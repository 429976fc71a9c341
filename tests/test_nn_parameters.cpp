/*
 * test_nn_parameters.cpp — models/nn ParameterSet: registration, trainable flags, placement that
 * keeps layer handles valid, save/load round trips, and one error listing every mismatch.
 */
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>

#include "engine/random.h"
#include "engine/safetensors.h"
#include "models/nn/parameters.h"
#include "tests/test_util.h"

namespace tgpt {
namespace {

namespace fs = std::filesystem;

std::string temp_dir() {
  std::string templ = (fs::temp_directory_path() / "tgpt_nnparams_XXXXXX").string();
  EXPECT_NE(mkdtemp(templ.data()), nullptr);
  return templ;
}

nn::ParameterSet two_layer_set(Generator& g) {
  nn::ParameterSet ps;
  ps.add("fc1.weight", g.randn({4, 3}), true);
  ps.add("fc1.bias", g.randn({4}), true);
  ps.add("embed.weight", g.randn({5, 3}, DType::f64), false);
  ps.add("ids", Tensor::from_vector({1, 2, 3}, {3}, DType::i64), false);
  return ps;
}

TEST(NnParameters, NamesFlagsAndCounts) {
  Generator g(1);
  nn::ParameterSet ps = two_layer_set(g);
  EXPECT_EQ(ps.names(), (std::vector<std::string>{"fc1.weight", "fc1.bias", "embed.weight", "ids"}));
  EXPECT_TRUE(ps.trainable("fc1.weight"));
  EXPECT_FALSE(ps.trainable("embed.weight"));
  EXPECT_EQ(ps.numel(), 12 + 4 + 15 + 3);
  EXPECT_EQ(ps.numel(true), 16);
  ASSERT_EQ(ps.items(true).size(), 2u);
  EXPECT_EQ(ps.items(true)[1].first, "fc1.bias");
  ps.set_trainable("fc1.bias", false);
  EXPECT_EQ(ps.numel(true), 12);
  EXPECT_THROW(ps.set_trainable("ids", true), Error);
  EXPECT_THROW(ps.add("fc1.weight", g.randn({1}), true), Error);  // duplicate
  EXPECT_THROW(ps.add("", g.randn({1}), true), Error);
  EXPECT_THROW(ps.add("x", Tensor(), true), Error);
  EXPECT_THROW(ps.add("y", Tensor::zeros({2}, DType::i32), true), Error);
  EXPECT_THROW(ps.get("nope"), Error);
}

TEST(NnParameters, PlacementKeepsHandlesValid) {
  Generator g(2);
  nn::ParameterSet ps = two_layer_set(g);
  Tensor w = ps.get("fc1.weight");  // a layer's handle
  Tensor ids = ps.get("ids");
  const std::vector<double> before = w.to_double_vector();
  ps.to(Device::CPU, DType::f64);
  EXPECT_EQ(w.dtype(), DType::f64);  // the layer sees the cast
  EXPECT_EQ(w.to_double_vector(), before);  // f32 -> f64 is exact
  EXPECT_TRUE(w.requires_grad());
  EXPECT_EQ(ids.dtype(), DType::i64);  // integer tensors keep their dtype
  ps.to(Device::CPU, DType::bf16);
  EXPECT_EQ(ps.get("embed.weight").dtype(), DType::bf16);
  EXPECT_EQ(w.dtype(), DType::bf16);
  EXPECT_THROW(ps.to(Device::CPU, DType::i32), Error);
}

TEST(NnParameters, SaveLoadRoundTripIsExact) {
  Generator g(3);
  nn::ParameterSet a = two_layer_set(g);
  const std::string dir = temp_dir();
  const std::string path = dir + "/p.safetensors";
  a.save(path, {{"tgpt.format", "test"}});
  EXPECT_EQ(SafetensorsFile::open(path).metadata().at("tgpt.format"), "test");
  Generator g2(99);
  nn::ParameterSet b = two_layer_set(g2);
  Tensor handle = b.get("fc1.bias");
  EXPECT_EQ(b.load(path).size(), 4u);
  for (const std::string& n : a.names())
    EXPECT_EQ(a.get(n).to_double_vector(), b.get(n).to_double_vector()) << n;
  EXPECT_EQ(handle.to_double_vector(), a.get("fc1.bias").to_double_vector());
  EXPECT_EQ(b.get("embed.weight").dtype(), DType::f64);

  // Only the trainable ones: loading them needs allow_missing.
  const std::string tpath = dir + "/trainable.safetensors";
  a.save(tpath, {}, true);
  EXPECT_EQ(SafetensorsFile::open(tpath).entries().size(), 2u);
  nn::ParameterSet c = two_layer_set(g2);
  EXPECT_THROW(c.load(tpath), Error);
  EXPECT_EQ(c.load(tpath, {.allow_missing = true}).size(), 2u);
  EXPECT_EQ(c.get("fc1.weight").to_double_vector(), a.get("fc1.weight").to_double_vector());
  fs::remove_all(dir);
}

TEST(NnParameters, LoadReportsEveryProblemAndChangesNothing) {
  Generator g(4);
  nn::ParameterSet ps = two_layer_set(g);
  const std::vector<double> before = ps.get("fc1.weight").to_double_vector();
  std::map<std::string, Tensor> src = {
      {"fc1.weight", g.randn({4, 3})},             // fine
      {"fc1.bias", g.randn({5})},                  // wrong shape
      {"ids", g.randn({3})},                       // float for an integer parameter
      {"extra.weight", g.randn({2})},              // unexpected
  };                                               // embed.weight missing
  try {
    ps.load(src, "ckpt.safetensors");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("ckpt.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("fc1.bias has shape [5], expected [4]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("ids has dtype f32"), std::string::npos) << msg;
    EXPECT_NE(msg.find("1 missing: embed.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("1 unexpected: extra.weight"), std::string::npos) << msg;
  }
  EXPECT_EQ(ps.get("fc1.weight").to_double_vector(), before);  // all-or-nothing
  // Tolerated when asked: unexpected ignored, missing left alone (shape errors never are).
  src.erase("fc1.bias");
  src.erase("ids");
  EXPECT_EQ(ps.load(src, "src", {.allow_missing = true, .allow_unexpected = true}),
            std::vector<std::string>{"fc1.weight"});
  EXPECT_EQ(ps.get("fc1.weight").to_double_vector(), src.at("fc1.weight").to_double_vector());
}

TEST(NnParameters, GradientsReachTheRegisteredTensors) {
  Generator g(5);
  nn::ParameterSet ps = two_layer_set(g);
  Tensor w = ps.get("fc1.weight");
  Tensor x = g.randn({2, 3});
  sum(linear(x, w, ps.get("fc1.bias"))).backward();
  ASSERT_TRUE(ps.get("fc1.weight").grad().defined());
  ps.zero_grad();
  EXPECT_FALSE(w.grad().defined());
}

}  // namespace
}  // namespace tgpt

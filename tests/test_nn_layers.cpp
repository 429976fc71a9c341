/*
 * test_nn_layers.cpp — the models/nn layers (Linear, LayerNorm, MultiheadSelfAttention,
 * CrossAttention, MLP, ResidualBlock).
 *
 * Golden part (fixtures from tests/golden/gen_nn_layers.py via ctest): each layer is built in f64,
 * its parameters are loaded by name from PyTorch's (so the names must be PyTorch's / timm's
 * exactly), and the output and the gradients of the input, the memory and every parameter for a
 * fixed upstream gradient are compared with PyTorch's f64 results. Error measure per tensor:
 * max|ours - ref| / max|ref| <= 1e-12 (f64 rounding over a few hundred operations); for a
 * gradient that is zero in exact arithmetic (max|ref| <= 1e-12), max|ours - ref| <= 1e-12. The same
 * layer moved to f32 with ParameterSet::to must reproduce the f64 output within 1e-5 (f32
 * rounding through LayerNorm, softmax and GEMMs of width <= 64).
 *
 * Other parts: parameter names and counts (CLIP's block, TGP-T's Bonder at width 512, whose
 * count method.md section 2.3 gives), initialisation, handles following ParameterSet placement,
 * and errors on bad configurations and inputs.
 */
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/safetensors.h"
#include "models/nn/attention.h"
#include "models/nn/layers.h"
#include "models/nn/residual_block.h"
#include "tests/test_util.h"

using namespace tgpt;
using namespace tgpt::nn;

namespace {

const ParamOptions kF64Trainable{DType::f64, true};

// TGP-T's Bonder CrossAttnBlock (method.md §2.2) as a ResidualBlock: timm's names, a packed qkv
// without bias, one-head cross-attention without K/V projections and scale (W/8)^-½, MLP ratio 1
// with exact GELU.
ResidualBlock bonder_block(ParameterSet& params, const std::string& prefix, int64_t width,
                           const ParamOptions& options) {
  ResidualBlock::Config c;
  c.attn = {width, width >= 64 ? 8 : 4, false, false, true};  // 8 heads (4 at test width 16)
  c.cross_attention = true;
  c.cross.heads = 1;
  c.cross.kv_projection = false;
  c.cross.q_bias = false;
  c.cross.scale = 1.0 / std::sqrt(static_cast<double>(width / 8));
  c.mlp_hidden = width;
  c.activation = Activation::gelu;
  ResidualBlock::Names n;
  n.ln_1 = "norm1.";
  n.attn_parts = {"qkv.", "proj."};
  n.ln_cross = "norm2_q.";
  n.ln_cross_kv = "norm2_kv.";
  n.cross_parts.q_proj = "q.";
  n.cross_parts.out_proj = "proj.";
  n.ln_2 = "norm_mlp.";
  n.mlp_parts = {"fc1.", "fc2."};
  return ResidualBlock(params, prefix, c, n, options);
}

class NnLayersGolden : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test::golden_dir().empty()) GTEST_SKIP() << "run via ctest, which writes the fixtures";
    file_ = std::make_unique<SafetensorsFile>(
        SafetensorsFile::open(test::golden_dir() + "/nn_layers.safetensors"));
  }
  bool has(const std::string& name) const {
    for (const SafetensorsEntry& e : file_->entries())
      if (e.name == name) return true;
    return false;
  }

  // Loads the case's parameters into `params` (every name must match), runs `forward` in f64
  // and checks the output and all gradients, then in f32 and checks the output.
  void check(const std::string& name, ParameterSet& params,
             const std::function<Tensor(const Tensor&, const Tensor&)>& forward) {
    SCOPED_TRACE(name);
    const std::string pp = name + ".p.";
    std::map<std::string, Tensor> values;
    for (const SafetensorsEntry& e : file_->entries())
      if (e.name.rfind(pp, 0) == 0) values.emplace(e.name.substr(pp.size()), file_->get(e.name));
    params.load(values, name);  // throws listing every name that differs
    const bool has_memory = has(name + ".m");
    Tensor x = file_->get(name + ".x").clone().set_requires_grad(true);
    Tensor m = has_memory ? file_->get(name + ".m").clone().set_requires_grad(true) : Tensor();
    Tensor y = forward(x, m);
    y.backward(file_->get(name + ".dy"));
    auto expect = [&](const Tensor& ours, const std::string& key) {
      ASSERT_TRUE(ours.defined()) << key << ": no result";
      Tensor ref = file_->get(key);
      // A gradient that is zero in exact arithmetic (the K bias: softmax ignores a per-row
      // constant) is rounding noise in both: compare absolutely.
      const double ref_max = test::max_abs_error(ref, Tensor::zeros(ref.shape(), ref.dtype()));
      const double e =
          ref_max <= 1e-12 ? test::max_abs_error(ours, ref) : test::rel_error_to_max(ours, ref);
      EXPECT_LE(e, 1e-12) << key;
    };
    expect(y, name + ".y");
    expect(x.grad(), name + ".dx");
    if (has_memory) expect(m.grad(), name + ".dm");
    for (const auto& [pname, t] : params.items()) expect(t.grad(), name + ".g." + pname);

    params.to(Device::CPU, DType::f32);
    NoGradGuard no_grad;
    Tensor y32 = forward(x.detach().to(DType::f32), has_memory ? m.detach().to(DType::f32) : m);
    ASSERT_EQ(y32.dtype(), DType::f32);
    EXPECT_LE(test::rel_error_to_max(y32, file_->get(name + ".y")), 1e-5) << name << " in f32";
  }

  std::unique_ptr<SafetensorsFile> file_;
};

}  // namespace

TEST_F(NnLayersGolden, Linear) {
  for (bool bias : {true, false}) {
    ParameterSet ps;
    Linear l(ps, "", 6, 5, bias, kF64Trainable);
    check(bias ? "linear.bias" : "linear.nobias", ps,
          [&](const Tensor& x, const Tensor&) { return l.forward(x); });
  }
}

TEST_F(NnLayersGolden, LayerNorm) {
  for (double eps : {1e-5, 1e-3}) {
    ParameterSet ps;
    LayerNorm ln(ps, "", 8, eps, kF64Trainable);
    check(eps == 1e-5 ? "ln.default" : "ln.eps", ps,
          [&](const Tensor& x, const Tensor&) { return ln.forward(x); });
  }
}

TEST_F(NnLayersGolden, MultiheadSelfAttention) {
  struct Case {
    const char* name;
    bool causal, bias;
  };
  for (Case c : {Case{"mhsa.full", false, true}, Case{"mhsa.causal", true, true},
                 Case{"mhsa.nobias", true, false}}) {
    ParameterSet ps;
    MultiheadSelfAttention a(ps, "", {16, 4, c.causal, c.bias, c.bias}, {}, kF64Trainable);
    check(c.name, ps, [&](const Tensor& x, const Tensor&) { return a.forward(x); });
  }
}

TEST_F(NnLayersGolden, CrossAttentionMultiHead) {
  ParameterSet ps;
  CrossAttention::Config c;
  c.width = 16;
  c.memory_width = 12;
  c.heads = 4;
  CrossAttention a(ps, "", c, {}, kF64Trainable);
  check("cross.mh", ps, [&](const Tensor& x, const Tensor& m) { return a.forward(x, m); });
}

TEST_F(NnLayersGolden, CrossAttentionBonder) {
  ParameterSet ps;
  CrossAttention::Config c;
  c.width = 16;
  c.heads = 1;
  c.kv_projection = false;
  c.q_bias = false;
  c.scale = 1.0 / std::sqrt(16.0 / 8.0);
  CrossAttention a(ps, "", c, {"q.", "", "", "proj."}, kF64Trainable);
  check("cross.bonder", ps, [&](const Tensor& x, const Tensor& m) { return a.forward(x, m); });
}

TEST_F(NnLayersGolden, MLP) {
  for (Activation act : {Activation::quick_gelu, Activation::gelu}) {
    ParameterSet ps;
    MLP mlp(ps, "", 8, 32, act, true, {}, kF64Trainable);
    check(std::string("mlp.") + activation_name(act), ps,
          [&](const Tensor& x, const Tensor&) { return mlp.forward(x); });
  }
}

TEST_F(NnLayersGolden, ClipResidualBlock) {
  ParameterSet ps;
  ResidualBlock::Config c;
  c.attn = {16, 4, true, true, true};
  ResidualBlock blk(ps, "", c, {}, kF64Trainable);
  check("block.clip", ps, [&](const Tensor& x, const Tensor&) { return blk.forward(x); });
}

TEST_F(NnLayersGolden, BonderResidualBlock) {
  ParameterSet ps;
  ResidualBlock blk = bonder_block(ps, "", 16, kF64Trainable);
  check("block.bonder", ps, [&](const Tensor& x, const Tensor& m) { return blk.forward(x, m); });
}

// ---- names, counts, init, placement, errors
// ------------------------------------------------------

TEST(NnLayers, ClipBlockNamesAreOpenAIs) {
  ParameterSet ps;
  ResidualBlock::Config c;
  c.attn = {64, 4, false, true, true};
  ResidualBlock blk(ps, "transformer.resblocks.3.", c);
  const std::vector<std::string> expected = {
      "ln_1.weight",          "ln_1.bias",          "attn.in_proj_weight", "attn.in_proj_bias",
      "attn.out_proj.weight", "attn.out_proj.bias", "ln_2.weight",         "ln_2.bias",
      "mlp.c_fc.weight",      "mlp.c_fc.bias",      "mlp.c_proj.weight",   "mlp.c_proj.bias"};
  std::vector<std::string> names = ps.names();
  ASSERT_EQ(names.size(), expected.size());
  for (size_t i = 0; i < names.size(); ++i)
    EXPECT_EQ(names[i], "transformer.resblocks.3." + expected[i]);
  EXPECT_EQ(ps.get("transformer.resblocks.3.mlp.c_fc.weight").shape(), Shape({256, 64}));
  EXPECT_EQ(ps.numel(), 12 * 64 * 64 + 13 * 64);  // 3W²+3W + W²+W + 8W²+5W + 4W
  EXPECT_EQ(ps.numel(true), 0);                   // frozen by default
}

TEST(NnLayers, BonderParameterCountsMatchTheSpec) {
  // method.md §2.3 at width 512: self-attention 1,049,088; cross-attention 524,800; MLP 525,312;
  // four LayerNorms 4,096 (the two unused LayerNorms of the original are not part of the block).
  ParameterSet ps;
  bonder_block(ps, "prompt_learner.bonder_category.", 512, {DType::f32, true});
  auto count = [&](const std::string& part) {
    int64_t n = 0;
    for (const auto& [name, t] : ps.items())
      if (name.find(part) != std::string::npos) n += t.numel();
    return n;
  };
  EXPECT_EQ(count(".attn."), 1049088);
  EXPECT_EQ(count(".cross_attn."), 524800);
  EXPECT_EQ(count(".mlp."), 525312);
  EXPECT_EQ(count(".norm"), 4096);
  EXPECT_EQ(ps.numel(true), 1049088 + 524800 + 525312 + 4096);
  EXPECT_TRUE(ps.contains("prompt_learner.bonder_category.cross_attn.q.weight"));
  EXPECT_FALSE(ps.contains("prompt_learner.bonder_category.cross_attn.q.bias"));
  EXPECT_FALSE(ps.contains("prompt_learner.bonder_category.attn.qkv.bias"));
}

TEST(NnLayers, InitIsPyTorchsDefault) {
  ParameterSet ps;
  Generator gen(5);
  ResidualBlock blk = bonder_block(ps, "", 64, {});
  blk.init(gen);
  const double bound = 1.0 / std::sqrt(64.0);
  for (const auto& [name, t] : ps.items()) {
    std::vector<double> v = t.to_double_vector();
    if (name.rfind("norm", 0) == 0) {
      const double want = name.find("weight") != std::string::npos ? 1.0 : 0.0;
      for (double e : v) ASSERT_EQ(e, want) << name;
      continue;
    }
    double lo = 0, hi = 0;
    for (double e : v) lo = std::min(lo, e), hi = std::max(hi, e);
    EXPECT_GE(lo, -bound) << name;
    EXPECT_LE(hi, bound) << name;
    EXPECT_GT(hi - lo, bound) << name << " looks constant";  // drawn, not left at zero
  }
}

TEST(NnLayers, HandlesFollowPlacement) {
  ParameterSet ps;
  Generator gen(1);
  MLP mlp(ps, "mlp.", 8, 16, Activation::gelu);
  mlp.init(gen);
  Tensor x = gen.randn({2, 3, 8});
  Tensor y32 = mlp.forward(x);
  ps.to(Device::CPU, DType::f64);
  EXPECT_EQ(mlp.fc().weight().dtype(), DType::f64);
  Tensor y64 = mlp.forward(x.to(DType::f64));
  EXPECT_EQ(y64.dtype(), DType::f64);
  EXPECT_LE(test::rel_error_to_max(y32, y64), 1e-6);
  // loading by name changes what the layer computes with
  std::map<std::string, Tensor> zero;
  for (const auto& [name, t] : ps.items()) zero[name] = Tensor::zeros(t.shape(), DType::f32);
  ps.load(zero, "zeros");
  EXPECT_EQ(
      test::max_abs_error(mlp.forward(x.to(DType::f64)), Tensor::zeros({2, 3, 8}, DType::f64)),
      0.0);
}

TEST(NnLayers, Errors) {
  ParameterSet ps;
  EXPECT_THROW(Linear(ps, "a.", 0, 4, true), Error);
  EXPECT_THROW(LayerNorm(ps, "b.", 4, 0.0), Error);
  EXPECT_THROW(MultiheadSelfAttention(ps, "c.", {10, 3, false, true, true}), Error);
  CrossAttention::Config cc;
  cc.width = 16;
  cc.memory_width = 10;
  cc.heads = 4;
  cc.kv_projection = false;  // attention width = memory width 10, not divisible by 4
  EXPECT_THROW(CrossAttention(ps, "d.", cc), Error);
  cc.scale = -1;
  cc.heads = 2;
  EXPECT_THROW(CrossAttention(ps, "e.", cc), Error);

  ParameterSet ps2;
  Linear l(ps2, "l.", 4, 4, true);
  EXPECT_THROW(Linear(ps2, "l.", 4, 4, true), Error);  // duplicate names
  EXPECT_THROW(l.forward(Tensor::zeros({2, 5})), Error);
  MultiheadSelfAttention a(ps2, "attn.", {8, 2, false, true, true});
  EXPECT_THROW(a.forward(Tensor::zeros({2, 8})), Error);
  EXPECT_THROW(a.forward(Tensor::zeros({1, 2, 6})), Error);
  CrossAttention::Config c2;
  c2.width = 8;
  c2.memory_width = 6;
  c2.heads = 2;
  CrossAttention x(ps2, "x.", c2);
  EXPECT_THROW(x.forward(Tensor::zeros({2, 3, 8}), Tensor::zeros({2, 4, 8})), Error);  // width
  EXPECT_THROW(x.forward(Tensor::zeros({2, 3, 8}), Tensor::zeros({3, 4, 6})), Error);  // batch
  EXPECT_EQ(x.forward(Tensor::zeros({1, 3, 8}), Tensor::zeros({3, 4, 6})).shape(),
            Shape({3, 3, 8}));  // batch-1 queries are shared
  ResidualBlock::Config bc;
  bc.attn = {8, 2, false, true, true};
  ResidualBlock plain(ps2, "blk.", bc);
  EXPECT_THROW(plain.forward(Tensor::zeros({1, 3, 8}), Tensor::zeros({1, 4, 8})), Error);
  bc.cross_attention = true;
  ResidualBlock cross(ps2, "xblk.", bc);
  EXPECT_THROW(cross.forward(Tensor::zeros({1, 3, 8})), Error);
  EXPECT_THROW(cross.forward(Tensor::zeros({2, 3, 8}), Tensor::zeros({3, 4, 8})), Error);
  EXPECT_EQ(cross.forward(Tensor::zeros({1, 3, 8}), Tensor::zeros({3, 4, 8})).shape(),
            Shape({3, 3, 8}));
  EXPECT_THROW(Linear().forward(Tensor::zeros({2, 4})), Error);
}

TEST(NnLayers, ChainedResidualFormEqualsBlockByBlock) {
  // The Residual form defers each block's last add into the next block's LayerNorm; on the CPU
  // add_layer_norm is the same add then LayerNorm, so the results are bit-identical.
  ParameterSet ps;
  Generator gen(9);
  ResidualBlock::Config c;
  c.attn = {32, 4, true, true, true};
  std::vector<ResidualBlock> blocks;
  for (int i = 0; i < 3; ++i) blocks.emplace_back(ps, str_cat("resblocks.", i, "."), c);
  for (ResidualBlock& b : blocks) b.init(gen);
  Tensor x = gen.randn({2, 6, 32});
  Tensor y = x;
  for (const ResidualBlock& b : blocks) y = b.forward(y);
  ResidualBlock::Residual r{x, Tensor()};
  for (const ResidualBlock& b : blocks) r = b.forward(r);
  EXPECT_TRUE(r.pending.defined());
  EXPECT_EQ(test::max_abs_error(r.resolve(), y), 0.0);
}

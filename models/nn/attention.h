/*
 * attention.h — attention layers: multi-head self-attention on a packed qkv projection (CLIP,
 * torch.nn.MultiheadAttention) and cross-attention of queries over a memory (TGP-T's Bonder).
 *
 * Shapes: B batch, T tokens, W width, H heads, D = W / H head width, Tq/Tk query/memory tokens,
 * Wk memory width.
 *
 * MultiheadSelfAttention, x [B, T, W] -> [B, T, W]:
 *   qkv = x in_projᵀ + in_proj_b                   in_proj [3W, W] (rows: Q, K, V), bias [3W]
 *   per head h: P = softmax(Q_h K_hᵀ / sqrt(D) + mask), O_h = P V_h
 *                                                   mask: -inf above the diagonal when causal
 *   y = concat_h(O_h) out_projᵀ + out_proj_b        out_proj [W, W], bias [W]
 * The attention itself is the engine's `attention` op (kernels/cpu/attention.h). Names follow
 * nn.MultiheadAttention ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias");
 * timm's Attention packs the same way under "qkv.weight" / "proj.weight" (see Names).
 *
 * CrossAttention, queries x [Bq, Tq, W] over memory m [B, Tk, Wk] -> [B, Tq, W] (Bq is B or 1;
 * batch-1 queries are shared by every memory item):
 *   Q = x q_projᵀ (+ b)                             q_proj [E, W], E = W with K/V projections,
 *                                                   E = Wk without (Q must match the keys)
 *   K = m k_projᵀ (+ b), V = m v_projᵀ (+ b)         k_proj, v_proj [W, Wk]; or K = V = m
 *   per head h (E split into H slices of E / H): P = softmax(scale · Q_h K_hᵀ), O_h = P V_h
 *   y = concat_h(O_h) out_projᵀ (+ b)               out_proj [W, E]
 * scale defaults to 1/sqrt(E / H) and can be set: TGP-T's Bonder uses one head over the full
 * width, no K/V projections and scale (E / 8)^-½. Built from linear, matmul and softmax ops.
 */
#pragma once

#include <cstdint>
#include <string>

#include "models/nn/layers.h"

namespace tgpt::nn {

// Under the prefix: in_proj + "weight" / in_proj + "bias", out_proj + "weight" / "bias".
struct SelfAttentionNames {
  std::string in_proj = "in_proj_";    // nn.MultiheadAttention; timm: "qkv."
  std::string out_proj = "out_proj.";  // timm: "proj."
};

class MultiheadSelfAttention {
 public:
  using Names = SelfAttentionNames;
  struct Config {
    int64_t width = 0;
    int heads = 1;
    bool causal = false;
    bool in_proj_bias = true;
    bool out_proj_bias = true;
  };
  MultiheadSelfAttention() = default;
  MultiheadSelfAttention(ParameterSet& params, const std::string& prefix, const Config& config,
                         const Names& names = {}, const ParamOptions& options = {});

  // x [B, T, W] -> [B, T, W]
  Tensor forward(const Tensor& x) const;
  // Linear's default for both projections (as timm; nn.MultiheadAttention itself draws
  // in_proj_weight Xavier-uniform and zeroes the biases).
  void init(Generator& gen) const;

  const Config& config() const { return config_; }
  const Linear& in_proj() const { return in_proj_; }
  const Linear& out_proj() const { return out_proj_; }

 private:
  Config config_;
  Linear in_proj_;   // [3W, W]
  Linear out_proj_;  // [W, W]
};

struct CrossAttentionNames {
  std::string q_proj = "q_proj.";  // TGP-T's Bonder: "q."
  std::string k_proj = "k_proj.";
  std::string v_proj = "v_proj.";
  std::string out_proj = "out_proj.";  // TGP-T's Bonder: "proj."
};

class CrossAttention {
 public:
  using Names = CrossAttentionNames;
  struct Config {
    int64_t width = 0;         // W, of the queries and the output
    int64_t memory_width = 0;  // Wk (0: W)
    int heads = 1;
    bool kv_projection = true;  // false: K = V = memory
    bool q_bias = true;
    bool kv_bias = true;
    bool out_bias = true;
    double scale = 0;  // 0: 1 / sqrt(E / heads)
  };
  CrossAttention() = default;
  CrossAttention(ParameterSet& params, const std::string& prefix, const Config& config,
                 const Names& names = {}, const ParamOptions& options = {});

  // x [Bq, Tq, W], memory [B, Tk, Wk] with Bq == B or Bq == 1 -> [B, Tq, W]
  Tensor forward(const Tensor& x, const Tensor& memory) const;
  void init(Generator& gen) const;  // Linear's default for every projection

  const Config& config() const { return config_; }
  int64_t inner_width() const { return inner_; }  // E
  double scale() const { return scale_; }

 private:
  Config config_;
  int64_t inner_ = 0;  // E
  double scale_ = 0;
  Linear q_proj_, k_proj_, v_proj_, out_proj_;  // k/v_proj empty without K/V projections
};

}  // namespace tgpt::nn

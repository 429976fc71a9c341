/*
 * residual_block.h — the pre-LN residual transformer block (CLIP's ResidualAttentionBlock, TGP-T's
 * Bonder CrossAttnBlock).
 *
 * x [Bq, T, W] (and, with cross-attention, memory [B, Tk, Wk], Bq == B or 1) -> [B, T, W]:
 *   x = x + attn(ln_1(x))                          MultiheadSelfAttention (causal optional)
 *   x = x + cross_attn(ln_cross(x), ln_cross_kv(m)) only when the block has cross-attention;
 *                                                   batch-1 x is broadcast to B first
 *   x = x + mlp(ln_2(x))                           MLP W -> hidden -> W
 * LayerNorm eps from the config (CLIP and the Bonder: 1e-5). Each residual add runs fused with the
 * LayerNorm that follows it (engine add_layer_norm; on the CPU the same add then LayerNorm), also
 * across blocks through the Residual form below; the MLP's first bias runs fused with its
 * activation (bias_activation).
 *
 * Parameter names (under the prefix) default to OpenAI CLIP's: ln_1, attn.in_proj_weight,
 * attn.in_proj_bias, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj. Every part's name is in Names,
 * so TGP-T's Bonder is norm1, attn.qkv, attn.proj, norm2_q, norm2_kv, cross_attn.q,
 * cross_attn.proj, norm_mlp, mlp.fc1, mlp.fc2.
 */
#pragma once

#include <cstdint>
#include <string>

#include "models/nn/attention.h"
#include "models/nn/layers.h"

namespace tgpt::nn {

struct ResidualBlockNames {
  std::string ln_1 = "ln_1.";
  std::string attn = "attn.";
  SelfAttentionNames attn_parts;
  std::string ln_cross = "ln_cross.";
  std::string ln_cross_kv = "ln_cross_kv.";
  std::string cross_attn = "cross_attn.";
  CrossAttentionNames cross_parts;
  std::string ln_2 = "ln_2.";
  std::string mlp = "mlp.";
  MLPNames mlp_parts;
};

class ResidualBlock {
 public:
  using Names = ResidualBlockNames;
  struct Config {
    MultiheadSelfAttention::Config attn;  // width, heads, causal, biases
    bool cross_attention = false;
    CrossAttention::Config cross;  // width is attn.width (set by the block)
    int64_t mlp_hidden = 0;        // 0: 4 W
    Activation activation = Activation::quick_gelu;
    bool mlp_bias = true;
    double eps = 1e-5;
  };
  ResidualBlock() = default;
  ResidualBlock(ParameterSet& params, const std::string& prefix, const Config& config,
                const Names& names = {}, const ParamOptions& options = {});

  // x [Bq, T, W] (memory [B, Tk, Wk] with cross-attention, else undefined) -> [B, T, W]
  Tensor forward(const Tensor& x, const Tensor& memory = Tensor()) const;

  // The residual stream as x + pending, where pending (when defined, same shape as x) is the
  // last branch output not yet added: a block returns its MLP output unadded, so that the next
  // block adds it inside its first LayerNorm (one fused op). resolve() does the add.
  struct Residual {
    Tensor x;        // [B, T, W]
    Tensor pending;  // [B, T, W] or undefined
    Tensor resolve() const;
  };
  // The same block on a stream in that form; returns {x after attention (and cross-attention),
  // MLP output}. Chaining blocks this way and resolving at the end computes forward() of each.
  Residual forward(const Residual& stream, const Tensor& memory = Tensor()) const;
  // PyTorch defaults: LayerNorms 1/0, Linears uniform ±1/sqrt(fan_in).
  void init(Generator& gen) const;

  const Config& config() const { return config_; }

 private:
  Config config_;
  LayerNorm ln_1_, ln_cross_, ln_cross_kv_, ln_2_;
  MultiheadSelfAttention attn_;
  CrossAttention cross_attn_;
  MLP mlp_;
};

}  // namespace tgpt::nn

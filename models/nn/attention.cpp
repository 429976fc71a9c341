/*
 * attention.cpp — MultiheadSelfAttention and CrossAttention (models/nn/attention.h).
 */
#include "models/nn/attention.h"

#include <cmath>

#include "engine/ops.h"

namespace tgpt::nn {

// ---- MultiheadSelfAttention ---------------------------------------------------------------------

MultiheadSelfAttention::MultiheadSelfAttention(ParameterSet& params, const std::string& prefix,
                                               const Config& config, const Names& names,
                                               const ParamOptions& options)
    : config_(config) {
  TGPT_CHECK(config.width > 0 && config.heads > 0 && config.width % config.heads == 0,
             "nn::MultiheadSelfAttention \"", prefix, "\": width ", config.width,
             " must be positive and divisible by heads ", config.heads);
  const int64_t W = config.width;
  in_proj_ = Linear(params, prefix + names.in_proj, W, 3 * W, config.in_proj_bias, options);
  out_proj_ = Linear(params, prefix + names.out_proj, W, W, config.out_proj_bias, options);
}

Tensor MultiheadSelfAttention::forward(const Tensor& x) const {
  TGPT_CHECK(x.defined() && x.dim() == 3 && x.size(2) == config_.width,
             "nn::MultiheadSelfAttention: x must be [B, T, ", config_.width, "], got ",
             x.defined() ? x.shape().str() : std::string("undefined"));
  Tensor qkv = in_proj_.forward(x);                          // [B,T,3W]
  Tensor a = attention(qkv, config_.heads, config_.causal);  // [B,T,W]
  return out_proj_.forward(a);                               // [B,T,W]
}

void MultiheadSelfAttention::init(Generator& gen) const {
  in_proj_.init(gen);
  out_proj_.init(gen);
}

// ---- CrossAttention -----------------------------------------------------------------------------

CrossAttention::CrossAttention(ParameterSet& params, const std::string& prefix,
                               const Config& config, const Names& names,
                               const ParamOptions& options)
    : config_(config) {
  const int64_t W = config.width;
  const int64_t Wk = config.memory_width > 0 ? config.memory_width : W;
  config_.memory_width = Wk;
  TGPT_CHECK(W > 0 && config.memory_width >= 0 && config.heads > 0, "nn::CrossAttention \"", prefix,
             "\": width ", W, ", memory width ", config.memory_width, " and heads ", config.heads,
             " must be positive");
  inner_ = config.kv_projection ? W : Wk;
  TGPT_CHECK(inner_ % config.heads == 0, "nn::CrossAttention \"", prefix, "\": attention width ",
             inner_, " is not divisible by heads ", config.heads);
  TGPT_CHECK(config.scale >= 0 && std::isfinite(config.scale), "nn::CrossAttention \"", prefix,
             "\": scale must be finite and >= 0 (0: 1/sqrt(head width)), got ", config.scale);
  scale_ =
      config.scale > 0 ? config.scale : 1.0 / std::sqrt(static_cast<double>(inner_ / config.heads));
  q_proj_ = Linear(params, prefix + names.q_proj, W, inner_, config.q_bias, options);
  if (config.kv_projection) {
    k_proj_ = Linear(params, prefix + names.k_proj, Wk, inner_, config.kv_bias, options);
    v_proj_ = Linear(params, prefix + names.v_proj, Wk, inner_, config.kv_bias, options);
  }
  out_proj_ = Linear(params, prefix + names.out_proj, inner_, W, config.out_bias, options);
}

Tensor CrossAttention::forward(const Tensor& x, const Tensor& memory) const {
  const int64_t W = config_.width, Wk = config_.memory_width, E = inner_;
  const int64_t H = config_.heads, Dh = E / H;
  TGPT_CHECK(x.defined() && x.dim() == 3 && x.size(2) == W,
             "nn::CrossAttention: x must be [B, Tq, ", W, "], got ",
             x.defined() ? x.shape().str() : std::string("undefined"));
  TGPT_CHECK(memory.defined() && memory.dim() == 3 && memory.size(2) == Wk,
             "nn::CrossAttention: memory must be [B, Tk, ", Wk, "], got ",
             memory.defined() ? memory.shape().str() : std::string("undefined"));
  const int64_t B = memory.size(0), Tq = x.size(1), Tk = memory.size(1);
  TGPT_CHECK(x.size(0) == B || x.size(0) == 1, "nn::CrossAttention: x batch ", x.size(0),
             " must be 1 or the memory batch ", B);
  Tensor q = q_proj_.forward(x);                                        // [Bq,Tq,E]
  Tensor k = config_.kv_projection ? k_proj_.forward(memory) : memory;  // [B,Tk,E]
  Tensor v = config_.kv_projection ? v_proj_.forward(memory) : memory;  // [B,Tk,E]
  if (q.size(0) != B) q = broadcast_to(q, {B, Tq, E});                  // [B,Tq,E]
  if (H > 1) {
    q = q.reshape({B, Tq, H, Dh}).transpose(1, 2);  // [B,H,Tq,Dh]
    k = k.reshape({B, Tk, H, Dh}).transpose(1, 2);  // [B,H,Tk,Dh]
    v = v.reshape({B, Tk, H, Dh}).transpose(1, 2);  // [B,H,Tk,Dh]
  }
  const int d = q.dim();
  Tensor s = mul(matmul(q, k.transpose(d - 2, d - 1)), scale_);  // [B,(H,)Tq,Tk]
  Tensor o = matmul(softmax(s), v);                              // [B,(H,)Tq,Dh]
  if (H > 1) o = o.transpose(1, 2).reshape({B, Tq, E});          // [B,Tq,E]
  return out_proj_.forward(o);                                   // [B,Tq,W]
}

void CrossAttention::init(Generator& gen) const {
  q_proj_.init(gen);
  if (config_.kv_projection) {
    k_proj_.init(gen);
    v_proj_.init(gen);
  }
  out_proj_.init(gen);
}

}  // namespace tgpt::nn

/*
 * residual_block.cpp — the pre-LN residual block (models/nn/residual_block.h).
 */
#include "models/nn/residual_block.h"

#include "engine/ops.h"

namespace tgpt::nn {

ResidualBlock::ResidualBlock(ParameterSet& params, const std::string& prefix, const Config& config,
                             const Names& names, const ParamOptions& options)
    : config_(config) {
  const int64_t W = config.attn.width;
  if (config_.mlp_hidden == 0) config_.mlp_hidden = 4 * W;
  TGPT_CHECK(config_.mlp_hidden > 0, "nn::ResidualBlock \"", prefix,
             "\": mlp_hidden must be positive (0: 4 W), got ", config.mlp_hidden);
  ln_1_ = LayerNorm(params, prefix + names.ln_1, W, config.eps, options);
  attn_ =
      MultiheadSelfAttention(params, prefix + names.attn, config.attn, names.attn_parts, options);
  if (config.cross_attention) {
    config_.cross.width = W;
    const int64_t Wk = config.cross.memory_width > 0 ? config.cross.memory_width : W;
    ln_cross_ = LayerNorm(params, prefix + names.ln_cross, W, config.eps, options);
    ln_cross_kv_ = LayerNorm(params, prefix + names.ln_cross_kv, Wk, config.eps, options);
    cross_attn_ = CrossAttention(params, prefix + names.cross_attn, config_.cross,
                                 names.cross_parts, options);
  }
  ln_2_ = LayerNorm(params, prefix + names.ln_2, W, config.eps, options);
  mlp_ = MLP(params, prefix + names.mlp, W, config_.mlp_hidden, config.activation, config.mlp_bias,
             names.mlp_parts, options);
}

Tensor ResidualBlock::Residual::resolve() const {
  return pending.defined() ? add(x, pending) : x;
}

Tensor ResidualBlock::forward(const Tensor& x, const Tensor& memory) const {
  return forward(Residual{x, Tensor()}, memory).resolve();
}

ResidualBlock::Residual ResidualBlock::forward(const Residual& stream, const Tensor& memory) const {
  TGPT_CHECK(!memory.defined() || config_.cross_attention,
             "nn::ResidualBlock: a memory was given to a block without cross-attention");
  TGPT_CHECK(memory.defined() || !config_.cross_attention,
             "nn::ResidualBlock: this block has cross-attention and needs a memory");
  TGPT_CHECK(stream.x.defined(), "nn::ResidualBlock: x is undefined");
  Tensor x = stream.x;  // the residual stream [Bq,T,W]
  Tensor h;
  if (stream.pending.defined()) {
    h = ln_1_.forward_add(stream.x, stream.pending, &x);  // x = x + pending
  } else {
    h = ln_1_.forward(x);
  }
  Tensor branch = attn_.forward(h);  // [Bq,T,W], not yet added to x
  if (config_.cross_attention) {
    TGPT_CHECK(memory.dim() == 3 && (x.size(0) == memory.size(0) || x.size(0) == 1),
               "nn::ResidualBlock: memory must be [B, Tk, Wk] with B = ", x.size(0),
               " (or any B for batch-1 queries), got ", memory.shape().str());
    const int64_t B = memory.size(0);
    if (x.size(0) == B) {
      Tensor sum;
      h = ln_cross_.forward_add(x, branch, &sum);
      x = sum;
    } else {  // batch-1 queries: the stream becomes [B,T,W] here
      x = broadcast_to(add(x, branch), {B, x.size(1), x.size(2)});
      h = ln_cross_.forward(x);
    }
    branch = cross_attn_.forward(h, ln_cross_kv_.forward(memory));  // [B,T,W]
  }
  Tensor sum;                              // [B,T,W]
  h = ln_2_.forward_add(x, branch, &sum);  // [B,T,W]
  return {sum, mlp_.forward(h)};
}

void ResidualBlock::init(Generator& gen) const {
  ln_1_.init();
  attn_.init(gen);
  if (config_.cross_attention) {
    ln_cross_.init();
    ln_cross_kv_.init();
    cross_attn_.init(gen);
  }
  ln_2_.init();
  mlp_.init(gen);
}

}  // namespace tgpt::nn

/*
 * layers.cpp — Linear, LayerNorm and MLP (models/nn/layers.h) on the engine's ops.
 */
#include "models/nn/layers.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops.h"

namespace tgpt::nn {

namespace {

// Overwrites a parameter's values (any device) with `values` (CPU), outside autograd.
void assign(const Tensor& param, const Tensor& values) {
  NoGradGuard no_grad;
  Tensor p = param;
  p.copy_(values);
}

}  // namespace

// ---- Linear -------------------------------------------------------------------------------------

Linear::Linear(ParameterSet& params, const std::string& prefix, int64_t in, int64_t out, bool bias,
               const ParamOptions& options)
    : in_(in), out_(out) {
  TGPT_CHECK(in > 0 && out > 0, "nn::Linear \"", prefix, "\": in and out must be positive, got in ",
             in, ", out ", out);
  TGPT_CHECK(dtype_is_float(options.dtype), "nn::Linear \"", prefix, "\": dtype ",
             dtype_name(options.dtype), " is not a float type");
  weight_ =
      params.add(prefix + "weight", Tensor::zeros({out, in}, options.dtype), options.trainable);
  if (bias)
    bias_ = params.add(prefix + "bias", Tensor::zeros({out}, options.dtype), options.trainable);
}

Tensor Linear::forward(const Tensor& x) const {
  TGPT_CHECK(weight_.defined(), "nn::Linear: forward on a default-constructed layer");
  return linear(x, weight_, bias_);  // [..., out]
}

Tensor Linear::forward_no_bias(const Tensor& x) const {
  TGPT_CHECK(weight_.defined(), "nn::Linear: forward on a default-constructed layer");
  return linear(x, weight_);  // [..., out]
}

void Linear::init(Generator& gen) const {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_));
  assign(weight_, gen.uniform(weight_.shape(), -bound, bound, DType::f64));
  if (bias_.defined()) assign(bias_, gen.uniform(bias_.shape(), -bound, bound, DType::f64));
}

// ---- LayerNorm ----------------------------------------------------------------------------------

LayerNorm::LayerNorm(ParameterSet& params, const std::string& prefix, int64_t width, double eps,
                     const ParamOptions& options)
    : width_(width), eps_(eps) {
  TGPT_CHECK(width > 0, "nn::LayerNorm \"", prefix, "\": width must be positive, got ", width);
  TGPT_CHECK(eps > 0 && std::isfinite(eps), "nn::LayerNorm \"", prefix,
             "\": eps must be positive and finite, got ", eps);
  TGPT_CHECK(dtype_is_float(options.dtype), "nn::LayerNorm \"", prefix, "\": dtype ",
             dtype_name(options.dtype), " is not a float type");
  weight_ = params.add(prefix + "weight", Tensor::ones({width}, options.dtype), options.trainable);
  bias_ = params.add(prefix + "bias", Tensor::zeros({width}, options.dtype), options.trainable);
}

Tensor LayerNorm::forward(const Tensor& x) const {
  TGPT_CHECK(weight_.defined(), "nn::LayerNorm: forward on a default-constructed layer");
  return layer_norm(x, weight_, bias_, eps_);  // [..., W]
}

Tensor LayerNorm::forward_add(const Tensor& x, const Tensor& residual, Tensor* sum_out) const {
  TGPT_CHECK(weight_.defined(), "nn::LayerNorm: forward on a default-constructed layer");
  return add_layer_norm(x, residual, weight_, bias_, eps_, sum_out);  // [..., W]
}

void LayerNorm::init() const {
  NoGradGuard no_grad;
  Tensor w = weight_, b = bias_;
  w.fill_(1.0);
  b.fill_(0.0);
}

// ---- MLP ----------------------------------------------------------------------------------------

Tensor activation(const Tensor& x, Activation act) {
  switch (act) {
    case Activation::relu: return relu(x);
    case Activation::gelu: return gelu(x);
    case Activation::quick_gelu: return quick_gelu(x);
  }
  throw Error(str_cat("nn::activation: unknown activation ", static_cast<int>(act)));
}

MLP::MLP(ParameterSet& params, const std::string& prefix, int64_t width, int64_t hidden,
         Activation act, bool bias, const Names& names, const ParamOptions& options)
    : act_(act),
      fc_(params, prefix + names.fc, width, hidden, bias, options),
      proj_(params, prefix + names.proj, hidden, width, bias, options) {}

Tensor MLP::forward(const Tensor& x) const {
  Tensor h = fc_.bias().defined()
                 ? bias_activation(fc_.forward_no_bias(x), fc_.bias(), act_)  // [..., H]
                 : activation(fc_.forward(x), act_);
  return proj_.forward(h);  // [..., W]
}

void MLP::init(Generator& gen) const {
  fc_.init(gen);
  proj_.init(gen);
}

}  // namespace tgpt::nn

/*
 * layers.h — basic layers on the engine's ops: Linear, LayerNorm, MLP.
 *
 * Every layer registers its tensors in a ParameterSet (models/nn/parameters.h) under
 * `prefix + "weight"` / `prefix + "bias"` (PyTorch's state-dict names) and keeps the returned
 * handles, so ParameterSet::to / load change what the layer computes with. Parameters are created
 * on the CPU in `ParamOptions::dtype` (place them with ParameterSet::to), zero-filled except
 * LayerNorm's weight (ones); `init` draws PyTorch's default initialisation. Layers are cheap
 * handle holders: copying one shares its tensors.
 *
 * Shapes: x [..., in] (any number of leading dims), W width, H hidden width.
 *   Linear     y = x Wᵀ + b           weight [out, in] (PyTorch layout), bias [out] (optional)
 *   LayerNorm  y = (x - mean) / sqrt(var + eps) * weight + bias over the last dim; weight,
 *              bias [W]; var is the biased variance (as torch.nn.LayerNorm)
 *   MLP        y = proj(act(fc(x)))    fc: Linear W -> H, proj: Linear H -> W, act from
 *              base/activation.h; with a bias, fc's bias and the activation run as one fused
 *              op (bias_activation) after the unbiased product
 */
#pragma once

#include <cstdint>
#include <string>

#include "base/activation.h"
#include "engine/random.h"
#include "engine/tensor.h"
#include "models/nn/parameters.h"

namespace tgpt::nn {

// How a layer creates its parameters: dtype (on the CPU) and the trainable flag.
struct ParamOptions {
  DType dtype = DType::f32;
  bool trainable = false;
};

class Linear {
 public:
  Linear() = default;
  // Registers prefix + "weight" [out, in] and, when `bias`, prefix + "bias" [out].
  Linear(ParameterSet& params, const std::string& prefix, int64_t in, int64_t out, bool bias,
         const ParamOptions& options = {});

  // x [..., in] -> [..., out]
  Tensor forward(const Tensor& x) const;
  // x [..., in] -> x Wᵀ without the bias [..., out] (for a fused bias + activation after it).
  Tensor forward_no_bias(const Tensor& x) const;
  // PyTorch's nn.Linear default: weight and bias uniform in ±1/sqrt(in).
  void init(Generator& gen) const;

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  // undefined without bias

 private:
  int64_t in_ = 0, out_ = 0;
  Tensor weight_;  // [out, in]
  Tensor bias_;    // [out] or undefined
};

class LayerNorm {
 public:
  LayerNorm() = default;
  // Registers prefix + "weight" [width] (ones) and prefix + "bias" [width] (zeros).
  LayerNorm(ParameterSet& params, const std::string& prefix, int64_t width, double eps = 1e-5,
            const ParamOptions& options = {});

  // x [..., W] -> [..., W]
  Tensor forward(const Tensor& x) const;
  // LayerNorm of s = x + residual (same shapes, [..., W]) as one fused op (engine add_layer_norm);
  // stores s in *sum_out when non-null (the updated residual stream).
  Tensor forward_add(const Tensor& x, const Tensor& residual, Tensor* sum_out) const;
  // PyTorch's default: weight 1, bias 0.
  void init() const;

  int64_t width() const { return width_; }
  double eps() const { return eps_; }
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  int64_t width_ = 0;
  double eps_ = 1e-5;
  Tensor weight_, bias_;  // [W]
};

// act(x) by the engine's op for `act` (relu, gelu, quick_gelu).
Tensor activation(const Tensor& x, Activation act);

// MLP parameter names under the prefix: CLIP's defaults ("c_fc.", "c_proj."); timm's Mlp uses
// "fc1." and "fc2.".
struct MLPNames {
  std::string fc = "c_fc.";
  std::string proj = "c_proj.";
};

class MLP {
 public:
  using Names = MLPNames;
  MLP() = default;
  // fc: Linear width -> hidden, proj: Linear hidden -> width, both with bias when `bias`.
  MLP(ParameterSet& params, const std::string& prefix, int64_t width, int64_t hidden,
      Activation act, bool bias = true, const Names& names = {}, const ParamOptions& options = {});

  // x [..., W] -> [..., W]
  Tensor forward(const Tensor& x) const;
  void init(Generator& gen) const;

  Activation act() const { return act_; }
  const Linear& fc() const { return fc_; }
  const Linear& proj() const { return proj_; }

 private:
  Activation act_ = Activation::gelu;
  Linear fc_, proj_;
};

}  // namespace tgpt::nn

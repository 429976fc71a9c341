/*
 * cuda_clip_weights.h — random CLIP weights for the CUDA model tests (CLIP, CoOp, TGP-T): f32,
 * every tensor of the config, LayerNorm gains around 1, matrices scaled by 1/sqrt(fan_in) so
 * activations stay O(1) through the layers, logit_scale = ln 100.
 */
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>

#include "engine/ops.h"
#include "engine/random.h"
#include "models/clip/clip.h"

namespace tgpt::cudatest {

inline std::map<std::string, Tensor> random_clip_weights(const ClipConfig& c, uint64_t seed) {
  Generator g(seed);
  std::map<std::string, Tensor> t;
  for (const auto& [name, shape] : expected_clip_tensors(c)) {
    const bool ln_weight =
        name.find("ln_") != std::string::npos && name.compare(name.size() - 7, 7, ".weight") == 0;
    if (name == "logit_scale") {
      t[name] = Tensor::full(Shape{}, std::log(100.0));
    } else if (ln_weight) {
      t[name] = g.randn(shape, DType::f32, 0.2) + 1.0;
    } else if (shape.size() >= 2 && name.find("embedding") == std::string::npos) {
      const int64_t fan_in = shape.numel() / shape[0];
      const bool in_out = name == "visual.proj" || name == "text_projection";  // [in, out]
      t[name] = g.randn(shape, DType::f32,
                        1.0 / std::sqrt(static_cast<double>(in_out ? shape[0] : fan_in)));
    } else {
      t[name] = g.randn(shape, DType::f32, name.find("embedding") != std::string::npos ? 0.5 : 0.1);
    }
  }
  return t;
}

}  // namespace tgpt::cudatest

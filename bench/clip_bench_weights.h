/*
 * clip_bench_weights.h — random CLIP weights of a config's real shapes for the benchmarks
 * (bench_clip_cpu, clip-gpu-bench): N(0, 1/fan_in) for matrices, N(0, 1) for vectors, f32 on the
 * host, under OpenAI's names.
 */
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>

#include "engine/random.h"
#include "models/clip/clip.h"

namespace tgpt::bench {

inline std::map<std::string, Tensor> random_clip_weights(const ClipConfig& cfg, uint64_t seed) {
  Generator gen(seed);
  std::map<std::string, Tensor> w;
  for (const auto& [name, shape] : expected_clip_tensors(cfg)) {
    const double fan_in = shape.size() >= 2 ? static_cast<double>(shape.numel() / shape[0]) : 1.0;
    w[name] = gen.randn(shape, DType::f32, 1.0 / std::sqrt(fan_in));
  }
  return w;
}

}  // namespace tgpt::bench

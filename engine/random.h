/*
 * random.h — seeded random tensors (CPU) for tests, benchmarks and parameter initialisation.
 */
#pragma once

#include <cstdint>
#include <random>

#include "engine/tensor.h"

namespace tgpt {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : rng_(seed) {}
  // Standard normal values scaled by std, converted to dtype.
  Tensor randn(const Shape& shape, DType dtype = DType::f32, double std = 1.0);
  // Uniform values in [lo, hi).
  Tensor uniform(const Shape& shape, double lo, double hi, DType dtype = DType::f32);
  // Integers uniform in [lo, hi).
  Tensor randint(const Shape& shape, int64_t lo, int64_t hi, DType dtype = DType::i64);
  std::mt19937_64& engine() { return rng_; }

 private:
  std::mt19937_64 rng_;
};

}  // namespace tgpt

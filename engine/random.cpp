/*
 * random.cpp — Generator implementation (mt19937_64; not bit-compatible with PyTorch).
 */
#include "engine/random.h"

#include <vector>

namespace tgpt {

Tensor Generator::randn(const Shape& shape, DType dtype, double std) {
  std::normal_distribution<double> dist(0.0, std);
  std::vector<double> v(static_cast<size_t>(shape.numel()));
  for (double& x : v) x = dist(rng_);
  return Tensor::from_vector(v, shape, dtype);
}

Tensor Generator::uniform(const Shape& shape, double lo, double hi, DType dtype) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(static_cast<size_t>(shape.numel()));
  for (double& x : v) x = dist(rng_);
  return Tensor::from_vector(v, shape, dtype);
}

Tensor Generator::randint(const Shape& shape, int64_t lo, int64_t hi, DType dtype) {
  TGPT_CHECK(hi > lo, "randint: empty range [", lo, ", ", hi, ")");
  std::uniform_int_distribution<int64_t> dist(lo, hi - 1);
  std::vector<double> v(static_cast<size_t>(shape.numel()));
  for (double& x : v) x = static_cast<double>(dist(rng_));
  return Tensor::from_vector(v, shape, dtype);
}

}  // namespace tgpt

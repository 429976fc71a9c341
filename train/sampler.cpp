/*
 * sampler.cpp — RandomSampler (see sampler.h): Fisher–Yates with a rejection-sampled bounded
 * draw, epoch bookkeeping, and state checks.
 */
#include "train/sampler.h"

#include <algorithm>

#include "base/error.h"

namespace tgpt {

namespace {

// Uniform integer in [0, bound) from 64-bit draws, without modulo bias: draws in the top partial
// block [limit, 2^64) are rejected.
uint64_t bounded_draw(std::mt19937_64& rng, uint64_t bound) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;  // a multiple of bound
  uint64_t x;
  do {
    x = rng();
  } while (x >= limit);
  return x % bound;
}

}  // namespace

RandomSampler::RandomSampler(int64_t size, int64_t batch_size, uint64_t seed)
    : size_(size), batch_size_(batch_size), seed_(seed), rng_(seed) {
  TGPT_CHECK(size > 0, "RandomSampler: the dataset is empty (size ", size, ")");
  TGPT_CHECK(batch_size > 0, "RandomSampler: batch size must be positive, got ", batch_size);
}

void RandomSampler::new_epoch() {
  permutation_.resize(static_cast<size_t>(size_));
  for (int64_t i = 0; i < size_; ++i) permutation_[i] = i;
  for (int64_t i = size_ - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(bounded_draw(rng_, static_cast<uint64_t>(i) + 1));
    std::swap(permutation_[i], permutation_[j]);
  }
  ++epoch_;
  index_ = 0;
}

std::vector<int64_t> RandomSampler::next_batch() {
  if (permutation_.empty() || index_ >= size_) new_epoch();
  const int64_t len = std::min(batch_size_, size_ - index_);
  std::vector<int64_t> batch(permutation_.begin() + index_, permutation_.begin() + index_ + len);
  index_ += len;
  return batch;
}

void RandomSampler::set_state(const State& s) {
  TGPT_CHECK(s.epoch >= 0, "RandomSampler: negative epoch ", s.epoch);
  if (s.epoch == 0) {
    TGPT_CHECK(s.permutation.empty() && s.index == 0,
               "RandomSampler: a state before the first epoch has no permutation and index 0");
  } else {
    TGPT_CHECK(static_cast<int64_t>(s.permutation.size()) == size_,
               "RandomSampler: permutation of ", s.permutation.size(), " indices for a dataset of ",
               size_);
    std::vector<char> seen(static_cast<size_t>(size_), 0);
    for (int64_t v : s.permutation) {
      TGPT_CHECK(v >= 0 && v < size_ && !seen[v], "RandomSampler: the permutation is not a ",
                 "permutation of [0, ", size_, ") (bad or repeated index ", v, ")");
      seen[v] = 1;
    }
    TGPT_CHECK(s.index >= 0 && s.index <= size_, "RandomSampler: index ", s.index, " outside [0, ",
               size_, "]");
  }
  epoch_ = s.epoch;
  index_ = s.index;
  permutation_ = s.permutation;
  rng_ = s.rng;
}

}  // namespace tgpt

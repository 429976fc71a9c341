/*
 * sampler.h — RandomSampler: seeded shuffled mini-batches of dataset indices, endlessly.
 *
 * PyTorch's RandomSampler under a DataLoader with drop_last=False that is re-created when
 * exhausted (TGP-T's loop, ../shared/spec/method.md §4.4): each epoch draws a fresh permutation
 * of [0, N) and hands it out batch_size indices at a time; the last batch of an epoch is short
 * when batch_size does not divide N. The permutation is a Fisher–Yates shuffle driven by the
 * sampler's own std::mt19937_64 (seeded at construction) with an unbiased bounded draw written
 * here, so the order depends only on the seed (not on the standard library's distributions).
 *
 * Position: epoch() = permutations drawn so far (the current one is epoch() - 1), index() = the
 * next position in the current permutation. state()/set_state() export and restore everything
 * (position, permutation, generator) for checkpoints: a restored sampler continues exactly.
 */
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace tgpt {

class RandomSampler {
 public:
  // size N >= 1 items, batch_size >= 1.
  RandomSampler(int64_t size, int64_t batch_size, uint64_t seed);

  // The next batch of indices (min(batch_size, rest of the epoch) of them).
  std::vector<int64_t> next_batch();

  int64_t size() const { return size_; }
  int64_t batch_size() const { return batch_size_; }
  uint64_t seed() const { return seed_; }
  int64_t epoch() const { return epoch_; }
  int64_t index() const { return index_; }
  const std::vector<int64_t>& permutation() const { return permutation_; }  // empty before epoch 1

  struct State {
    int64_t epoch = 0;
    int64_t index = 0;
    std::vector<int64_t> permutation;  // empty (epoch 0) or a permutation of [0, N)
    std::mt19937_64 rng;
  };
  State state() const { return State{epoch_, index_, permutation_, rng_}; }
  // Throws (changing nothing) unless the state fits this sampler: epoch >= 0; epoch 0 with no
  // permutation and index 0, or a permutation of [0, N) with index in [0, N].
  void set_state(const State& state);

 private:
  void new_epoch();

  int64_t size_, batch_size_;
  uint64_t seed_;
  int64_t epoch_ = 0, index_ = 0;
  std::vector<int64_t> permutation_;
  std::mt19937_64 rng_;
};

}  // namespace tgpt

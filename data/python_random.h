/*
 * python_random.h — CPython's random.Random (3.11), exactly as far as the few-shot draw of
 * Dassl / TGP-T needs it (../shared/spec/data.md §1.3), so a split drawn here is the one
 * `random.seed(S); random.sample(...)` draws in Python, bit for bit.
 *
 * Generator: MT19937 (Matsumoto & Nishimura, 32-bit words, N = 624, M = 397), CPython's
 *   _randommodule.c. seed(a) for an int a: init_by_array over the 32-bit little-endian words of
 *   |a| (no leading zero word; a = 0 gives the one word 0).
 * getrandbits(k): k <= 32: next() >> (32 - k). k > 32: ceil(k / 32) draws filling the result from
 *   the least significant word up; the last (most significant) word keeps the top k mod 32 bits of
 *   its draw. getrandbits(0) = 0 without a draw.
 * randbelow(n), n >= 1: k = n.bit_length(); r = getrandbits(k) until r < n.
 * random(): (a * 2^26 + b) / 2^53 with a = next() >> 5, b = next() >> 6.
 * sample(n, k) over range(n), returning the chosen indices in draw order:
 *   setsize = 21, plus 4 ** ceil(log(3k, 4)) (double math.log, as CPython) when k > 5;
 *   n <= setsize: pool swap, j = randbelow(n - i), take pool[j], pool[j] = pool[n - i - 1];
 *   else: j = randbelow(n) until j is not yet selected.
 * shuffle(x): for i = len-1 .. 1: j = randbelow(i + 1), swap x[i], x[j].
 */
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace tgpt {

class PythonRandom {
 public:
  // random.Random(seed); like CPython the sign is dropped (seed(-5) == seed(5)).
  explicit PythonRandom(int64_t seed = 0) { this->seed(seed); }

  // random.seed(seed) for an int seed.
  void seed(int64_t seed);
  // random.seed(a) for an int of any size, given |a| as 32-bit words, least significant first
  // (leading zero words are ignored; an empty list is 0).
  void seed_words(std::vector<uint32_t> abs_words);

  // The next 32-bit output of MT19937 (genrand_uint32).
  uint32_t next_uint32();
  // getrandbits(k) for 0 <= k <= 64.
  uint64_t getrandbits(int k);
  // getrandbits(k) for any k >= 0, as 32-bit words least significant first ([ceil(k/32)]).
  std::vector<uint32_t> getrandbits_words(int64_t k);
  // _randbelow(n) for n >= 1: uniform in [0, n).
  uint64_t randbelow(uint64_t n);
  // random(): uniform double in [0, 1) with 53 random bits.
  double random();
  // sample(range(population_size), k): k distinct indices in draw order; 0 <= k <= n.
  std::vector<int64_t> sample(int64_t population_size, int64_t k);
  // shuffle(x) in place.
  template <typename T>
  void shuffle(std::vector<T>& x) {
    for (size_t i = x.size(); i-- > 1;) {
      const size_t j = static_cast<size_t>(randbelow(static_cast<uint64_t>(i) + 1));
      std::swap(x[i], x[j]);
    }
  }

  // The set size random.sample compares n against (21 + 4 ** ceil(log(3k, 4)) for k > 5).
  static int64_t sample_setsize(int64_t k);

 private:
  static constexpr int kN = 624;
  std::array<uint32_t, kN> mt_{};
  int index_ = kN;
};

}  // namespace tgpt

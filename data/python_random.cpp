/*
 * python_random.cpp — CPython's MT19937 seeding and draws, getrandbits, randbelow, random and
 * sample (algorithms and word orders in python_random.h).
 */
#include "data/python_random.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "base/error.h"

namespace tgpt {

namespace {

constexpr int kM = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfU;
constexpr uint32_t kUpperMask = 0x80000000U;
constexpr uint32_t kLowerMask = 0x7fffffffU;

// Bits needed to write n (Python's int.bit_length()); 0 for 0.
int bit_length(uint64_t n) {
  int k = 0;
  while (n) ++k, n >>= 1;
  return k;
}

}  // namespace

void PythonRandom::seed(int64_t seed) {
  // |seed| without overflow for INT64_MIN.
  const uint64_t mag =
      seed < 0 ? static_cast<uint64_t>(-(seed + 1)) + 1 : static_cast<uint64_t>(seed);
  seed_words({static_cast<uint32_t>(mag & 0xffffffffU), static_cast<uint32_t>(mag >> 32)});
}

void PythonRandom::seed_words(std::vector<uint32_t> key) {
  while (key.size() > 1 && key.back() == 0) key.pop_back();
  if (key.empty()) key.push_back(0);
  // init_genrand(19650218)
  mt_[0] = 19650218U;
  for (int i = 1; i < kN; ++i)
    mt_[i] = 1812433253U * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + static_cast<uint32_t>(i);
  // init_by_array(key)
  size_t i = 1, j = 0;
  for (size_t k = std::max<size_t>(kN, key.size()); k; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1664525U)) + key[j] +
             static_cast<uint32_t>(j);
    ++i, ++j;
    if (i >= kN) mt_[0] = mt_[kN - 1], i = 1;
    if (j >= key.size()) j = 0;
  }
  for (size_t k = kN - 1; k; --k) {
    mt_[i] =
        (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1566083941U)) - static_cast<uint32_t>(i);
    ++i;
    if (i >= kN) mt_[0] = mt_[kN - 1], i = 1;
  }
  mt_[0] = 0x80000000U;
  index_ = kN;
}

uint32_t PythonRandom::next_uint32() {
  static constexpr uint32_t mag01[2] = {0x0U, kMatrixA};
  if (index_ >= kN) {
    int kk = 0;
    for (; kk < kN - kM; ++kk) {
      const uint32_t y = (mt_[kk] & kUpperMask) | (mt_[kk + 1] & kLowerMask);
      mt_[kk] = mt_[kk + kM] ^ (y >> 1) ^ mag01[y & 0x1U];
    }
    for (; kk < kN - 1; ++kk) {
      const uint32_t y = (mt_[kk] & kUpperMask) | (mt_[kk + 1] & kLowerMask);
      mt_[kk] = mt_[kk + (kM - kN)] ^ (y >> 1) ^ mag01[y & 0x1U];
    }
    const uint32_t y = (mt_[kN - 1] & kUpperMask) | (mt_[0] & kLowerMask);
    mt_[kN - 1] = mt_[kM - 1] ^ (y >> 1) ^ mag01[y & 0x1U];
    index_ = 0;
  }
  uint32_t y = mt_[index_++];
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680U;
  y ^= (y << 15) & 0xefc60000U;
  y ^= (y >> 18);
  return y;
}

std::vector<uint32_t> PythonRandom::getrandbits_words(int64_t k) {
  TGPT_CHECK(k >= 0, "getrandbits: number of bits must be non-negative, got ", k);
  std::vector<uint32_t> words;
  if (k == 0) return words;
  words.reserve(static_cast<size_t>((k - 1) / 32 + 1));
  for (int64_t left = k; left > 0; left -= 32) {
    uint32_t r = next_uint32();
    if (left < 32) r >>= (32 - left);  // the most significant word keeps the top bits
    words.push_back(r);
  }
  return words;
}

uint64_t PythonRandom::getrandbits(int k) {
  TGPT_CHECK(k >= 0 && k <= 64, "getrandbits: k must be in [0, 64] here, got ", k);
  if (k == 0) return 0;
  if (k <= 32) return next_uint32() >> (32 - k);
  const uint64_t low = next_uint32();
  const uint64_t high = next_uint32() >> (64 - k);
  return low | (high << 32);
}

uint64_t PythonRandom::randbelow(uint64_t n) {
  TGPT_CHECK(n >= 1, "randbelow: the bound must be positive, got ", n);
  const int k = bit_length(n);
  uint64_t r = getrandbits(k);
  while (r >= n) r = getrandbits(k);
  return r;
}

double PythonRandom::random() {
  const uint32_t a = next_uint32() >> 5, b = next_uint32() >> 6;
  return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

int64_t PythonRandom::sample_setsize(int64_t k) {
  TGPT_CHECK(k >= 0 && k <= (int64_t{1} << 56), "sample: k out of range: ", k);
  int64_t setsize = 21;
  if (k > 5) {
    // CPython: 4 ** _ceil(_log(k * 3, 4)), math.log(x, base) = log(x) / log(base) in double.
    const double e = std::ceil(std::log(static_cast<double>(k * 3)) / std::log(4.0));
    setsize += int64_t{1} << (2 * static_cast<int>(e));
  }
  return setsize;
}

std::vector<int64_t> PythonRandom::sample(int64_t n, int64_t k) {
  TGPT_CHECK(n >= 0 && n <= (int64_t{1} << 56), "sample: population size out of range: ", n);
  TGPT_CHECK(k >= 0 && k <= n, "sample: k = ", k,
             " is larger than the population or negative (population size ", n, ")");
  std::vector<int64_t> result;
  result.reserve(static_cast<size_t>(k));
  if (n <= sample_setsize(k)) {
    // An n-length list is smaller than a k-length set: pool swap.
    std::vector<int64_t> pool(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) pool[i] = i;
    for (int64_t i = 0; i < k; ++i) {
      const auto j = static_cast<int64_t>(randbelow(static_cast<uint64_t>(n - i)));
      result.push_back(pool[j]);
      pool[j] = pool[n - i - 1];
    }
  } else {
    std::unordered_set<int64_t> selected;
    for (int64_t i = 0; i < k; ++i) {
      auto j = static_cast<int64_t>(randbelow(static_cast<uint64_t>(n)));
      while (selected.count(j)) j = static_cast<int64_t>(randbelow(static_cast<uint64_t>(n)));
      selected.insert(j);
      result.push_back(j);
    }
  }
  return result;
}

}  // namespace tgpt

/*
 * test_python_random.cpp — CPython's random (data/python_random.h) against Python itself: the
 * golden vector of data.md §1.3 and the fixtures of tests/golden/gen_python_random.py (seeds
 * 0..3, 42, 2**32+5, negative, 2**63-1 and beyond 64 bits; 32-bit outputs; getrandbits of 1, 31,
 * 32, 33, 64, 100 bits; random(); randbelow up to 2**64-1; chains of sample(range(n), k) for
 * n = 1..2000 on both sides of the set-size switch with k = 0, 1, 2, 4, 8, 16 and n; shuffle),
 * compared exactly; set sizes and bad arguments.
 */
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/error.h"
#include "data/python_random.h"
#include "tests/test_files.h"
#include "tests/test_util.h"

using namespace tgpt;

namespace {

using test::error_message;

std::vector<uint32_t> words_of(const nlohmann::json& j) {
  return j.get<std::vector<uint32_t>>();
}

PythonRandom seeded(const nlohmann::json& c) {
  PythonRandom r;
  r.seed_words(words_of(c["seed_words"]));
  return r;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// CPython's random

TEST(PythonRandom, GoldenVector) {
  // data.md §1.3: random.seed(1); random.sample(range(100), 5) == [17, 72, 97, 8, 32]
  PythonRandom r(1);
  EXPECT_EQ(r.sample(100, 5), (std::vector<int64_t>{17, 72, 97, 8, 32}));
  // Python: random.seed(-1) is random.seed(1).
  PythonRandom neg(-1);
  EXPECT_EQ(neg.sample(100, 5), (std::vector<int64_t>{17, 72, 97, 8, 32}));
  // Python: random.seed(0); random.getrandbits(32) == 3626764237 (init_by_array([0])).
  // std::mt19937(0) would give 2357136044: seeding is not init_genrand.
  PythonRandom z(0);
  EXPECT_EQ(z.next_uint32(), 3626764237u);
}

TEST(PythonRandom, SeedWords) {
  PythonRandom a(5), b, c(int64_t{1} << 40), d;
  b.seed_words({5, 0, 0});  // leading zero words do not change the key
  d.seed_words({0, 256});
  for (int i = 0; i < 8; ++i) EXPECT_EQ(a.next_uint32(), b.next_uint32());
  for (int i = 0; i < 8; ++i) EXPECT_EQ(c.next_uint32(), d.next_uint32());
  PythonRandom m(INT64_MIN), w;  // |INT64_MIN| = 2**63 without overflow
  w.seed_words({0, 0x80000000u});
  for (int i = 0; i < 8; ++i) EXPECT_EQ(m.next_uint32(), w.next_uint32());
}

TEST(PythonRandom, SampleSetSize) {
  EXPECT_EQ(PythonRandom::sample_setsize(0), 21);
  EXPECT_EQ(PythonRandom::sample_setsize(5), 21);
  EXPECT_EQ(PythonRandom::sample_setsize(6), 21 + 64);    // log4(18) = 2.08 -> 3
  EXPECT_EQ(PythonRandom::sample_setsize(16), 21 + 64);   // log4(48) = 2.79 -> 3
  EXPECT_EQ(PythonRandom::sample_setsize(22), 21 + 256);  // log4(66) = 3.02 -> 4
  // ceil(log(3k, 4)) in double equals the exact smallest m with 4**m > 3k (3k is never a power
  // of 4) for every k a dataset can have.
  for (int64_t k = 6; k <= 2000000; ++k) {
    int64_t p = 1;
    while (p <= 3 * k) p *= 4;
    ASSERT_EQ(PythonRandom::sample_setsize(k), 21 + p) << k;
  }
}

TEST(PythonRandom, BadArguments) {
  PythonRandom r(3);
  EXPECT_NE(error_message([&] { r.sample(10, 11); }).find("larger than the population"),
            std::string::npos);
  EXPECT_THROW(r.sample(10, -1), Error);
  EXPECT_THROW(r.sample(-1, 0), Error);
  EXPECT_THROW(r.randbelow(0), Error);
  EXPECT_THROW(r.getrandbits(65), Error);
  EXPECT_THROW(r.getrandbits(-1), Error);
  EXPECT_THROW(r.getrandbits_words(-1), Error);
  EXPECT_TRUE(r.sample(0, 0).empty());
  EXPECT_TRUE(r.getrandbits_words(0).empty());
}

TEST(PythonRandom, MatchesCPython) {
  const nlohmann::json j = test::load_golden_json("python_random/random.json");
  if (j.is_null()) GTEST_SKIP() << "run via ctest (tests/golden/gen_python_random.py)";
  EXPECT_EQ(j["golden"]["picked"].get<std::vector<int64_t>>(),
            (std::vector<int64_t>{17, 72, 97, 8, 32}));
  ASSERT_GE(j["cases"].size(), 10u);
  for (const auto& c : j["cases"]) {
    const std::string seed = c["seed"];
    SCOPED_TRACE("seed " + seed);
    // The int64 path agrees with the words path where the seed fits.
    if (seed.size() < 19) {
      PythonRandom a(std::stoll(seed));
      PythonRandom b = seeded(c);
      for (int i = 0; i < 4; ++i) ASSERT_EQ(a.next_uint32(), b.next_uint32());
    }
    PythonRandom r = seeded(c);
    for (const auto& v : c["uint32"]) ASSERT_EQ(r.getrandbits(32), v.get<uint64_t>());
    for (const auto& g : c["getrandbits"]) {
      const int k = g["k"];
      const std::vector<uint32_t> want = words_of(g["words"]);
      if (k <= 64) {
        PythonRandom copy = r;
        const uint64_t v = copy.getrandbits(k);
        uint64_t w = want.empty() ? 0 : want[0];
        if (want.size() > 1) w |= static_cast<uint64_t>(want[1]) << 32;
        EXPECT_EQ(v, w) << "getrandbits(" << k << ")";
      }
      EXPECT_EQ(r.getrandbits_words(k), want) << "getrandbits(" << k << ")";
    }
    for (const auto& v : c["random53"]) {
      const double x = r.random();
      EXPECT_EQ(std::ldexp(x, 53), static_cast<double>(v.get<uint64_t>()));
    }
    for (const auto& b : c["randbelow"])
      ASSERT_EQ(r.randbelow(std::stoull(b["n"].get<std::string>())),
                std::stoull(b["r"].get<std::string>()))
          << "randbelow(" << b["n"] << ")";
    size_t n_pool = 0, n_set = 0;
    for (const auto& s : c["samples"]) {
      const int64_t n = s["n"], k = s["k"];
      (n <= PythonRandom::sample_setsize(k) ? n_pool : n_set) += 1;
      ASSERT_EQ(r.sample(n, k), s["picked"].get<std::vector<int64_t>>())
          << "sample(range(" << n << "), " << k << ")";
    }
    EXPECT_GT(n_pool, 10u);  // both algorithms are exercised
    EXPECT_GT(n_set, 10u);
    for (const auto& s : c["shuffles"]) {
      std::vector<int64_t> x(s.size());
      for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<int64_t>(i);
      r.shuffle(x);
      ASSERT_EQ(x, s.get<std::vector<int64_t>>());
    }
  }
}

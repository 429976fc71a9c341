/*
 * test_bpe_learn.cpp — learning CLIP-format BPE merges (models/bpe_learn.h): hand-checked merges
 * on a tiny corpus, frequent words becoming single tokens, round trips through
 * ClipTokenizer::decode, determinism, the learned vocabulary in ClipTokenizer (SOT/EOT last,
 * context 77), bad arguments, exact equality with the plain Python algorithm
 * (tests/golden/gen_bpe_learn.py), and `tgpt-tokenize learn`.
 */
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "models/bpe_learn.h"
#include "models/tokenizer.h"
#include "tests/test_files.h"
#include "tests/tool_test_util.h"

using namespace tgpt;
namespace fs = std::filesystem;

namespace {

// A small caption world: a few frequent words and some rare ones.
std::vector<std::string> caption_corpus(int n, uint32_t seed) {
  const std::vector<std::string> colours = {"red", "green", "blue", "yellow", "purple"};
  const std::vector<std::string> shapes = {"circle", "square", "triangle", "star"};
  const std::vector<std::string> rare = {"zebra", "quokka", "Café", "x-ray", "42", "it's"};
  std::mt19937 rng(seed);
  std::vector<std::string> texts;
  for (int i = 0; i < n; ++i) {
    std::string t = "a " + colours[rng() % colours.size()] + " " + shapes[rng() % shapes.size()];
    if (rng() % 2) t += " on a " + colours[rng() % colours.size()] + " background";
    if (rng() % 10 == 0) t += ", " + rare[rng() % rare.size()];
    texts.push_back(t);
  }
  return texts;
}

// The text decode gives for encode(text): its pre-tokens, each followed by a space (the special
// tokens without).
std::string pretokens_joined(const std::string& text) {
  std::string out;
  for (const std::string& p : clip_pretokenize(clip_clean_text(text)))
    out += p == "<|startoftext|>" || p == "<|endoftext|>" ? p : p + " ";
  return out;
}

std::string read_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::vector<std::string> merge_lines(const std::string& merges) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < merges.size()) {
    const size_t eol = merges.find('\n', pos);
    lines.push_back(merges.substr(pos, eol - pos));
    pos = eol + 1;
  }
  return lines;
}

}  // namespace

TEST(BpeLearn, HandCheckedMerges) {
  // Words: "low" x5, "lower" x2, "newest" x6, "widest" x3 (Sennrich et al.'s example).
  std::vector<std::string> texts;
  for (int i = 0; i < 5; ++i) texts.push_back("low");
  for (int i = 0; i < 2; ++i) texts.push_back("lower");
  for (int i = 0; i < 6; ++i) texts.push_back("newest");
  for (int i = 0; i < 3; ++i) texts.push_back("widest");
  BpeLearnStats stats;
  const std::string merges = learn_bpe_merges(texts, 4, 2, &stats);
  // Pair counts: e s 9, s t</w> 9, w e 8, l o 7, n e 6, e w 6, o w</w> 5, ... -> "e s" (tie
  // with "s t</w>": 'e' < 's'); then "es t</w>" 9; w e falls to 2 (newest is n e w es now), so
  // "l o" 7; then ties at 6 (n e, e w, w est</w>; lo w</w> is 5) -> "e w".
  EXPECT_EQ(merges, "#version: 0.2\ne s\nes t</w>\nl o\ne w\n");
  EXPECT_EQ(stats.merges, 4);
  EXPECT_EQ(stats.words, 16);
  EXPECT_EQ(stats.distinct, 4);
  EXPECT_EQ(stats.last_count, 6);
  // a a 2 ties a a</w> 2: "a" < "a</w>"; then "aa a</w>". Overlapping occurrences merge left to
  // right and count once per position: in "aaaa" (a a a a</w>) "a a" counts 2 and its merge
  // gives aa a a</w>.
  EXPECT_EQ(learn_bpe_merges({"aaa", "aaa"}, 10, 2), "#version: 0.2\na a\naa a</w>\n");
  EXPECT_EQ(learn_bpe_merges({"aaaa"}, 1, 1), "#version: 0.2\na a\n");
  const ClipTokenizer tok(learn_bpe_merges({"aaaa"}, 1, 1));
  ASSERT_EQ(tok.encode("aaaa").size(), 3u);
  EXPECT_EQ(tok.token(tok.encode("aaaa")[0]), "aa");
}

TEST(BpeLearn, FrequentWordsBecomeSingleTokens) {
  const std::vector<std::string> texts = caption_corpus(500, 1);
  const std::string merges = learn_bpe_merges(texts, 200, 2);
  const ClipTokenizer tok(merges, "learned merges");
  for (const char* word : {"red", "green", "blue", "yellow", "purple", "circle", "square",
                           "triangle", "star", "background", "on", "a"}) {
    const std::vector<int32_t> ids = tok.encode(word);
    ASSERT_EQ(ids.size(), 1u) << word;
    EXPECT_EQ(tok.token(ids[0]), std::string(word) + "</w>");
  }
  // A word not in the corpus still encodes, in pieces.
  EXPECT_GT(tok.encode("xylophone").size(), 1u);
}

TEST(BpeLearn, RoundTripThroughDecode) {
  std::vector<std::string> texts = caption_corpus(300, 2);
  texts.push_back("  Crème Brûlée &amp; 猫 — it's 3.14!  ");
  texts.push_back("<|startoftext|>HELLO<|endoftext|>");
  const std::string merges = learn_bpe_merges(texts, 150, 2);
  const ClipTokenizer tok(merges);
  for (const std::string& t : texts) EXPECT_EQ(tok.decode(tok.encode(t)), pretokens_joined(t)) << t;
  // Unseen text with bytes outside the corpus.
  const std::string unseen = "Ünïcödé ZEBRA-42 \xF0\x9F\x98\x80 end";
  EXPECT_EQ(tok.decode(tok.encode(unseen)), pretokens_joined(unseen));
  EXPECT_EQ(tok.decode({tok.sot_id(), tok.eot_id()}), "<|startoftext|><|endoftext|>");
}

TEST(BpeLearn, Deterministic) {
  std::vector<std::string> texts = caption_corpus(400, 3);
  const std::string a = learn_bpe_merges(texts, 300, 2);
  EXPECT_EQ(learn_bpe_merges(texts, 300, 2), a);
  // The order of the texts does not matter (only word counts do).
  std::reverse(texts.begin(), texts.end());
  EXPECT_EQ(learn_bpe_merges(texts, 300, 2), a);
  // Fewer merges give a prefix of the same list.
  const std::string b = learn_bpe_merges(texts, 50, 2);
  EXPECT_EQ(a.compare(0, b.size(), b), 0);
}

TEST(BpeLearn, VocabularyInClipTokenizer) {
  const std::vector<std::string> texts = caption_corpus(400, 4);
  BpeLearnStats stats;
  const std::string merges = learn_bpe_merges(texts, 50, 2, &stats);
  ASSERT_EQ(stats.merges, 50);
  EXPECT_EQ(merge_lines(merges).size(), 51u);
  EXPECT_EQ(merge_lines(merges)[0], "#version: 0.2");
  const ClipTokenizer tok(merges);
  EXPECT_EQ(tok.num_merges(), 50);
  EXPECT_EQ(tok.vocab_size(), 512 + 50 + 2);
  EXPECT_EQ(tok.sot_id(), tok.vocab_size() - 2);
  EXPECT_EQ(tok.eot_id(), tok.vocab_size() - 1);
  const std::vector<int32_t> ids = tok.tokenize(texts, ClipTokenizer::kContextLength);
  ASSERT_EQ(ids.size(), texts.size() * 77);
  for (size_t t = 0; t < texts.size(); ++t) {
    const int32_t* row = ids.data() + t * 77;
    EXPECT_EQ(row[0], tok.sot_id());
    const std::vector<int32_t> body = tok.encode(texts[t]);
    ASSERT_LT(body.size() + 2, 77u);
    EXPECT_TRUE(std::equal(body.begin(), body.end(), row + 1));
    EXPECT_EQ(row[body.size() + 1], tok.eot_id());
    for (size_t k = body.size() + 2; k < 77; ++k) EXPECT_EQ(row[k], 0);
  }
}

TEST(BpeLearn, StopsAtMinFrequency) {
  const std::vector<std::string> texts = {"abc abc abd", "xyz"};
  BpeLearnStats stats;
  // "a b" 3, "ab c</w>" 2, then only pairs seen once.
  EXPECT_EQ(learn_bpe_merges(texts, 100, 2, &stats), "#version: 0.2\na b\nab c</w>\n");
  EXPECT_EQ(stats.merges, 2);
  EXPECT_EQ(stats.last_count, 2);
  // min_frequency 1 merges until every word is one symbol: abc, abd, xyz -> 2 + 1 + 2 merges.
  EXPECT_EQ(learn_bpe_merges(texts, 100, 1, &stats),
            "#version: 0.2\na b\nab c</w>\nab d</w>\nx y\nxy z</w>\n");
  EXPECT_EQ(learn_bpe_merges(texts, 0, 1), "#version: 0.2\n");
  EXPECT_EQ(learn_bpe_merges({}, 10, 1), "#version: 0.2\n");
  EXPECT_EQ(learn_bpe_merges({"<|endoftext|>", "  ", "!"}, 10, 1), "#version: 0.2\n");
}

TEST(BpeLearn, BadArguments) {
  EXPECT_THROW(learn_bpe_merges({"a"}, -1, 2), Error);
  EXPECT_THROW(learn_bpe_merges({"a"}, ClipTokenizer::kNumMerges + 1, 2), Error);
  EXPECT_THROW(learn_bpe_merges({"a"}, 10, 0), Error);
  try {
    learn_bpe_merges({"ok", "bad \xFF byte"}, 10, 2);
    ADD_FAILURE() << "invalid UTF-8 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("text 1"), std::string::npos) << e.what();
  }
}

TEST(BpeLearnGolden, MatchesPythonReference) {
  const nlohmann::json fx = test::load_golden_json("bpe_learn.json");
  if (fx.is_null()) GTEST_SKIP() << "bpe_learn.json not found in TGPT_GOLDEN_DIR (run ctest)";
  const std::vector<std::string> texts = fx["texts"].get<std::vector<std::string>>();
  ASSERT_FALSE(fx["cases"].empty());
  for (const nlohmann::json& c : fx["cases"]) {
    const int num_merges = c["num_merges"].get<int>();
    const int min_frequency = c["min_frequency"].get<int>();
    EXPECT_EQ(learn_bpe_merges(texts, num_merges, min_frequency), c["merges"].get<std::string>())
        << "num_merges " << num_merges << " min_frequency " << min_frequency;
  }
}

TEST(BpeLearnTool, LearnWritesMergesThatTokenize) {
  const fs::path bin = test::tool_path("tgpt-tokenize");
  if (!fs::exists(bin)) GTEST_SKIP() << "tgpt-tokenize not built next to tgpt_tests";
  const fs::path dir = fs::temp_directory_path() / ("tgpt_bpe_learn_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::vector<std::string> texts = caption_corpus(200, 5);
  {
    std::ofstream a(dir / "captions.txt"), b(dir / "more.txt"), lines(dir / "lines.txt");
    for (size_t i = 0; i < texts.size(); ++i) {
      (i % 2 ? a : b) << "img" << i << ".png\t" << texts[i] << "\n";
      lines << texts[i] << "\n";
    }
  }
  const std::string learned = learn_bpe_merges(texts, 60, 2);
  const std::string tool = test::shell_quote(bin);
  std::string out;
  ASSERT_EQ(
      test::run_command(tool + " learn --captions " + test::shell_quote(dir / "captions.txt") +
                            " --captions " + test::shell_quote(dir / "more.txt") +
                            " --merges 60 -o " + test::shell_quote(dir / "merges.txt"),
                        dir, &out),
      0)
      << out;
  EXPECT_NE(out.find("learned 60 merges from 200 texts"), std::string::npos) << out;
  EXPECT_EQ(read_file(dir / "merges.txt"), learned);

  ASSERT_EQ(test::run_command(tool + " learn --text-lines --captions " +
                                  test::shell_quote(dir / "lines.txt") + " --merges 60 -o " +
                                  test::shell_quote(dir / "merges2.txt"),
                              dir, &out),
            0)
      << out;
  EXPECT_EQ(read_file(dir / "merges2.txt"), learned);

  // The learned file tokenizes with --merges-file: SOT = 512 + 60, EOT = 573.
  ASSERT_EQ(test::run_command(tool + " --merges-file " + test::shell_quote(dir / "merges.txt") +
                                  " 'a red circle'",
                              dir, &out),
            0)
      << out;
  const ClipTokenizer tok(learned);
  std::string want;
  const std::vector<int32_t> ids = tok.tokenize({"a red circle"});
  for (size_t k = 0; k < ids.size(); ++k) want += (k ? " " : "") + std::to_string(ids[k]);
  EXPECT_EQ(out, want + "\n");
  EXPECT_EQ(ids[0], 572);

  // Bad input: a captions line without a tab, a missing file, a bad merges count.
  {
    std::ofstream bad(dir / "bad.txt");
    bad << "no tab here\n";
  }
  EXPECT_EQ(test::run_command(tool + " learn --captions " + test::shell_quote(dir / "bad.txt") +
                                  " --merges 10 -o " + test::shell_quote(dir / "x.txt"),
                              dir, &out),
            1);
  EXPECT_NE(out.find("bad.txt"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir / "x.txt"));
  EXPECT_EQ(test::run_command(tool + " learn --captions " + test::shell_quote(dir / "nope.txt") +
                                  " --merges 10 -o " + test::shell_quote(dir / "x.txt"),
                              dir, &out),
            1);
  EXPECT_NE(out.find("nope.txt"), std::string::npos) << out;
  EXPECT_NE(
      test::run_command(tool + " learn --captions " + test::shell_quote(dir / "lines.txt") +
                            " --text-lines --merges -3 -o " + test::shell_quote(dir / "x.txt"),
                        dir, &out),
      0);
  EXPECT_FALSE(fs::exists(dir / "x.txt"));
  fs::remove_all(dir);
}

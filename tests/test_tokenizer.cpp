/*
 * test_tokenizer.cpp — CLIP BPE tokenizer: a synthetic merges table with hand-derived ids, merges
 * file errors, and golden comparisons (exact) against our Python reference
 * (tests/golden/clip_tokenizer_ref.py, which cleans with the real ftfy.fix_text, via
 * gen_tokenizer.py): html.unescape, NFC, str.lower,
 * cleaning and pre-tokenisation over every assigned code point, and token ids from the real merges
 * file for hand-picked and random texts.
 */
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/tokenizer.h"
#include "tests/test_files.h"
#include "tests/test_util.h"

using namespace tgpt;

namespace {

// Merges 0..5 -> ids 512..517; SOT 518, EOT 519.
const char* kSyntheticMerges =
    "#version: 0.2\n"
    "h e\n"
    "l l\n"
    "he ll\n"
    "hell o</w>\n"
    "c a\n"
    "ca t</w>\n";

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("tgpt_tok_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string gzip_bytes(const std::string& text) {
  const std::string path = temp_path("gz_tmp.gz");
  gzFile f = gzopen(path.c_str(), "wb");
  EXPECT_NE(f, nullptr);
  gzwrite(f, text.data(), static_cast<unsigned>(text.size()));
  gzclose(f);
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::filesystem::remove(path);
  return bytes;
}

template <typename F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ClipTokenizer, SyntheticMergesVocabulary) {
  ClipTokenizer tok(kSyntheticMerges);
  EXPECT_EQ(tok.num_merges(), 6);
  EXPECT_EQ(tok.vocab_size(), 520);
  EXPECT_EQ(tok.sot_id(), 518);
  EXPECT_EQ(tok.eot_id(), 519);
  EXPECT_EQ(tok.token(0), "!");
  EXPECT_EQ(tok.token(256), "!</w>");
  EXPECT_EQ(tok.token(188), "\xC4\x80");  // byte 0x00 -> U+0100
  EXPECT_EQ(tok.token(512), "he");
  EXPECT_EQ(tok.token(515), "hello</w>");
  EXPECT_EQ(tok.token(519), "<|endoftext|>");
  EXPECT_THROW(tok.token(520), Error);
  EXPECT_THROW(tok.token(-1), Error);
}

TEST(ClipTokenizer, SyntheticMergesEncode) {
  ClipTokenizer tok(kSyntheticMerges);
  // h e l l o</w> -> he l l o</w> -> he ll o</w> -> hell o</w> -> hello</w>
  EXPECT_EQ(tok.encode("hello"), std::vector<int32_t>({515}));
  // lowercased; ',' = byte 0x2C -> id 11, +256 with </w>; "cat" -> ca t</w> -> cat</w>; '!' -> 256
  EXPECT_EQ(tok.encode("Hello, CAT!"), std::vector<int32_t>({515, 267, 517, 256}));
  // no merge applies: 'h' = 0x68 -> 71, 'i</w>' = 256 + 72
  EXPECT_EQ(tok.encode("hi"), std::vector<int32_t>({71, 328}));
  // digits split one by one
  EXPECT_EQ(tok.encode("12"), std::vector<int32_t>({256 + 0x31 - 0x21, 256 + 0x32 - 0x21}));
  // é = C3 A9: printable bytes 0xAE..0xFF start at id 106, 0xA1..0xAC at id 94
  EXPECT_EQ(tok.encode("\xC3\xA9"), std::vector<int32_t>({106 + 0xC3 - 0xAE, 256 + 94 + 8}));
  // Ā lowercases to ā = C4 81; byte 0x81 is remapped: 33 bytes 0x00..0x20, 0x7F, then 0x80.. ->
  // 188+35
  EXPECT_EQ(tok.encode("\xC4\x80"), std::vector<int32_t>({106 + 0xC4 - 0xAE, 256 + 188 + 35}));
  // special tokens pass through; white space is dropped
  EXPECT_EQ(tok.encode("  <|endoftext|>hello\t"), std::vector<int32_t>({519, 515}));
  EXPECT_EQ(tok.encode("&lt;"), tok.encode("<"));
  EXPECT_EQ(tok.encode(""), std::vector<int32_t>{});
}

TEST(ClipTokenizer, SyntheticTokenize) {
  ClipTokenizer tok(kSyntheticMerges);
  EXPECT_EQ(tok.tokenize({"hello", ""}, 5),
            std::vector<int32_t>({518, 515, 519, 0, 0, 518, 519, 0, 0, 0}));
  EXPECT_EQ(tok.tokenize({"hi"}, 4), std::vector<int32_t>({518, 71, 328, 519}));
  EXPECT_THROW(tok.tokenize({"hi"}, 3), Error);
  EXPECT_EQ(tok.tokenize({"hi hi hi"}, 5, /*truncate=*/true),
            std::vector<int32_t>({518, 71, 328, 71, 519}));
  const std::string msg = error_message([&] { tok.tokenize({"ok", "hi hi hi"}, 5); });
  EXPECT_NE(msg.find("\"hi hi hi\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("context length 5"), std::string::npos) << msg;
  EXPECT_THROW(tok.tokenize({"hi"}, 0), Error);
  Tensor t = tok.tokenize_tensor({"hello", "cat"}, 4);
  EXPECT_EQ(t.dtype(), DType::i32);
  EXPECT_EQ(t.shape(), Shape({2, 4}));
  const int32_t* p = t.data<int32_t>();
  EXPECT_EQ(std::vector<int32_t>(p, p + 8),
            std::vector<int32_t>({518, 515, 519, 0, 518, 517, 519, 0}));
}

TEST(ClipTokenizer, SyntheticDecode) {
  ClipTokenizer tok(kSyntheticMerges);
  // '</w>' at a token's end -> ' '; bytes_to_unicode symbols back to bytes; SOT/EOT as text.
  EXPECT_EQ(tok.decode(tok.encode("Hello, CAT!")), "hello , cat ! ");
  EXPECT_EQ(tok.decode({518, 512, 71, 515, 519}), "<|startoftext|>hehhello <|endoftext|>");
  EXPECT_EQ(tok.decode(tok.encode("\xC3\xA9 a\tb")), "\xC3\xA9 a b ");
  EXPECT_EQ(tok.decode({106 + 0xC3 - 0xAE}), "\xC3");  // half a character: bytes as they are
  EXPECT_EQ(tok.decode({}), "");
  EXPECT_THROW(tok.decode({520}), Error);
  EXPECT_THROW(tok.decode({-1}), Error);
}

TEST(ClipTokenizer, InvalidUtf8Input) {
  ClipTokenizer tok(kSyntheticMerges);
  EXPECT_THROW(tok.encode("\xFF"), Error);
  EXPECT_THROW(tok.encode("a\xC3"), Error);             // truncated sequence
  EXPECT_THROW(tok.encode("\xC0\xAF"), Error);          // overlong
  EXPECT_THROW(tok.encode("\xED\xA0\x80"), Error);      // surrogate
  EXPECT_THROW(tok.encode("\xF4\x90\x80\x80"), Error);  // > U+10FFFF
}

TEST(ClipTokenizer, MalformedMergesText) {
  EXPECT_THROW(ClipTokenizer(""), Error);
  EXPECT_THROW(ClipTokenizer("h e\nl l\n"), Error);  // no header
  const std::string bad[] = {
      "#version: 0.2\nh e\n\nl l\n",  // empty line inside
      "#version: 0.2\nh e f\n",       // three parts
      "#version: 0.2\nhe\n",          // one part
      "#version: 0.2\n h\n",          // empty first part
      "#version: 0.2\nh e\r\n",       // CR is outside the byte alphabet
      "#version: 0.2\nh\te\n",
      "#version: 0.2\nh \xC3\n",  // invalid UTF-8
  };
  for (const std::string& text : bad) EXPECT_THROW(ClipTokenizer{text}, Error) << text;
  const std::string msg = error_message([] { ClipTokenizer("#version: 0.2\nh e\nfoo\n", "X"); });
  EXPECT_NE(msg.find("X line 3"), std::string::npos) << msg;
  // header only: byte vocabulary plus the special tokens
  ClipTokenizer empty("#version: 0.2\n");
  EXPECT_EQ(empty.vocab_size(), 514);
  EXPECT_EQ(empty.eot_id(), 513);
}

TEST(ClipTokenizer, MergesFileErrors) {
  std::string msg = error_message([] { ClipTokenizer::from_file("/nonexistent/bpe.txt.gz"); });
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
  EXPECT_THROW(ClipTokenizer::from_file(std::filesystem::temp_directory_path().string()), Error);

  // A valid gzip and a plain file of the synthetic merges read fine but have too few merges.
  const std::string gz = gzip_bytes(kSyntheticMerges);
  const std::string path = temp_path("merges.txt.gz");
  write_file(path, gz);
  msg = error_message([&] { ClipTokenizer::from_file(path); });
  EXPECT_NE(msg.find("has only 6 merges"), std::string::npos) << msg;
  write_file(path, kSyntheticMerges);
  msg = error_message([&] { ClipTokenizer::from_file(path); });
  EXPECT_NE(msg.find("has only 6 merges"), std::string::npos) << msg;

  // Truncated gzip.
  write_file(path, gz.substr(0, gz.size() / 2));
  msg = error_message([&] { ClipTokenizer::from_file(path); });
  EXPECT_NE(msg.find("corrupt or truncated"), std::string::npos) << msg;
  // Corrupt gzip: valid header, damaged deflate data and CRC.
  std::string corrupt = gz;
  for (size_t i = 10; i < corrupt.size(); ++i) corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5A);
  write_file(path, corrupt);
  msg = error_message([&] { ClipTokenizer::from_file(path); });
  EXPECT_NE(msg.find("corrupt or truncated"), std::string::npos) << msg;
  std::filesystem::remove(path);
}

TEST(ClipTokenizerGolden, TextCleaningMatchesPython) {
  const nlohmann::json fx = test::load_golden_json("tokenizer_text.json");
  if (fx.is_null()) GTEST_SKIP() << "tokenizer_text.json not found in TGPT_GOLDEN_DIR (run ctest)";
  EXPECT_EQ(fx["unicode_version"].get<std::string>(), clip_tokenizer_unicode_version());
  struct Step {
    const char* key;
    std::string (*fn)(std::string_view);
  };
  const Step steps[] = {{"unescape", html_unescape},
                        {"nfc", nfc_normalize},
                        {"lower", unicode_lower},
                        {"clean", clip_clean_text}};
  for (const Step& step : steps) {
    int mismatches = 0;
    const auto& cases = fx[step.key];
    ASSERT_GT(cases.size(), 1000u) << step.key;
    for (const auto& c : cases) {
      const std::string in = c[0].get<std::string>(), want = c[1].get<std::string>();
      const std::string got = step.fn(in);
      if (got != want && ++mismatches <= 5)
        ADD_FAILURE() << step.key << " of '" << in.substr(0, 60) << "': got '" << got.substr(0, 60)
                      << "', want '" << want.substr(0, 60) << "'";
    }
    EXPECT_EQ(mismatches, 0) << step.key << ": " << mismatches << " of " << cases.size();
  }
  int mismatches = 0;
  for (const auto& c : fx["pretokenize"]) {
    const std::vector<std::string> want = c[1].get<std::vector<std::string>>();
    if (clip_pretokenize(c[0].get<std::string>()) != want && ++mismatches <= 5)
      ADD_FAILURE() << "pretokenize of '" << c[0].get<std::string>().substr(0, 60) << "'";
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(ClipTokenizerGolden, TokenIdsMatchPython) {
  const nlohmann::json fx = test::load_golden_json("tokenizer.json");
  if (fx.is_null())
    GTEST_SKIP() << "tokenizer.json not in TGPT_GOLDEN_DIR: the merges file "
                    "../shared/clip/bpe_simple_vocab_16e6.txt.gz is absent (or ctest not run)";
  const ClipTokenizer tok = ClipTokenizer::from_file(fx["merges"].get<std::string>());
  EXPECT_EQ(tok.vocab_size(), 49408);
  EXPECT_EQ(fx["vocab_size"].get<int>(), 49408);
  EXPECT_EQ(tok.sot_id(), 49406);
  EXPECT_EQ(tok.eot_id(), 49407);
  EXPECT_EQ(tok.token(512), "in");
  EXPECT_EQ(tok.token(49405), "jekyll</w>");
  ASSERT_GE(fx["tokenize"].size(), 30u);
  int errors_expected = 0;
  for (const auto& c : fx["tokenize"]) {
    const std::string text = c["text"].get<std::string>();
    const bool truncate = c["truncate"].get<bool>();
    if (c["ids"].is_null()) {
      ++errors_expected;
      EXPECT_THROW(tok.tokenize({text}, 77, truncate), Error) << text;
      continue;
    }
    EXPECT_EQ(tok.tokenize({text}, 77, truncate), c["ids"].get<std::vector<int32_t>>()) << text;
  }
  EXPECT_GE(errors_expected, 2);
  ASSERT_GE(fx["encode"].size(), 100u);
  for (const auto& c : fx["encode"]) {
    const std::string text = c[0].get<std::string>();
    EXPECT_EQ(tok.encode(text), c[1].get<std::vector<int32_t>>()) << text;
  }
}

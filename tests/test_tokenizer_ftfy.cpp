/*
 * test_tokenizer_ftfy.cpp — the ftfy.fix_text step of CLIP's text cleaning (ftfy 6.3 defaults
 * without mojibake repair): behaviour that ftfy documents, checked by hand, and exact comparisons
 * against the real ftfy (tests/golden/gen_tokenizer.py: ftfy.fix_text and CLIP's whole cleaning on
 * hand-picked and ~600 random strings of ligatures, width forms, terminal escapes, control
 * characters, line breaks, entities, curly quotes and combining marks).
 */
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "models/tokenizer.h"
#include "tests/test_files.h"
#include "tests/test_util.h"

using namespace tgpt;

TEST(FtfyFixText, LigaturesWidthQuotes) {
  EXPECT_EQ(ftfy_fix_text("\xEF\xAC\x82u\xEF\xAC\x83"
                          "e\xEF\xAC\x86"),
            "fluffiest");                                 // ﬂuﬃeﬆ
  EXPECT_EQ(ftfy_fix_text("\xEF\xAC\x85"), "\xC5\xBFt");  // ﬅ -> ſt
  EXPECT_EQ(ftfy_fix_text("\xC5\x89"), "'n");             // ŉ -> U+02BC n -> ' n (uncurled)
  // ＬＯＵＤ　ＮＯＩＳＥＳ
  EXPECT_EQ(ftfy_fix_text("\xEF\xBC\xAC\xEF\xBC\xAF\xEF\xBC\xB5\xEF\xBC\xA4\xE3\x80\x80\xEF\xBC"
                          "\xAE\xEF\xBC\xAF\xEF\xBC\xA9\xEF\xBC\xB3\xEF\xBC\xA5\xEF\xBC\xB3"),
            "LOUD NOISES");
  // “here’s a test”
  EXPECT_EQ(ftfy_fix_text("\xE2\x80\x9Chere\xE2\x80\x99s a test\xE2\x80\x9D"), "\"here's a test\"");
  EXPECT_EQ(ftfy_fix_text("e\xCC\x81"), "\xC3\xA9");  // NFC
  // C1 controls read as Windows-1252 (0x93/0x94: curly quotes, then uncurled); 0x81 stays.
  EXPECT_EQ(ftfy_fix_text("\xC2\x93q\xC2\x94 \xC2\x80 \xC2\x81"), "\"q\" \xE2\x82\xAC \xC2\x81");
}

TEST(FtfyFixText, LineBreaksControlsEscapes) {
  EXPECT_EQ(ftfy_fix_text("a\r\nb\rc\xE2\x80\xA8"
                          "d\xE2\x80\xA9"
                          "e"),
            "a\nb\nc\nd\ne");
  // NUL, DEL, BOM, U+206A and U+FFFC go; tab, zero-width space and ZWJ stay.
  static const char kControls[] =
      "a\0b\x7F"
      "c\xEF\xBB\xBF"
      "d\xE2\x81\xAA"
      "e\xEF\xBF\xBC\t\xE2\x80\x8B\xE2\x80\x8D";
  EXPECT_EQ(ftfy_fix_text(std::string(kControls, sizeof(kControls) - 1)),
            "abcde\t\xE2\x80\x8B\xE2\x80\x8D");
  EXPECT_EQ(ftfy_fix_text("\x1B[36;44mI'm blue\x1B[0m"), "I'm blue");
  // Not complete escapes: only the ESC (a control character) goes.
  EXPECT_EQ(ftfy_fix_text("\x1B[12 x \x1B"), "[12 x ");
  // \d is any decimal digit: ESC [ U+0661 m is an escape.
  EXPECT_EQ(ftfy_fix_text("a\x1B[\xD9\xA1mb"), "ab");
}

TEST(FtfyFixText, HtmlEntities) {
  EXPECT_EQ(ftfy_fix_text("&ntilde; &Ntilde; &NTILDE; &nTILDE;"),
            "\xC3\xB1 \xC3\x91 \xC3\x91 &nTILDE;");
  EXPECT_EQ(ftfy_fix_text("P&EACUTE;REZ BUNDESSTRA&SZLIG;E"), "P\xC3\x89REZ BUNDESSTRASSE");
  EXPECT_EQ(ftfy_fix_text("this&not that &amp"), "this&not that &amp");  // needs ';'
  EXPECT_EQ(ftfy_fix_text("&amp;amp;amp;"), "&");                        // repeated until stable
  EXPECT_EQ(ftfy_fix_text("&#x41;&#65;&#65 &#1;|&#xD800;"), "AA&#65 |\xEF\xBF\xBD");
  // Fullwidth ＆amp； becomes &amp; in the first pass and & in the second.
  EXPECT_EQ(ftfy_fix_text("\xEF\xBC\x86"
                          "amp\xEF\xBC\x9B"),
            "&");
  // Not in a segment (line) with '<', nor in any segment after it.
  EXPECT_EQ(ftfy_fix_text("<b>&amp;</b>"), "<b>&amp;</b>");
  EXPECT_EQ(ftfy_fix_text("&amp;\n<b>&amp;</b>\n&amp;"), "&\n<b>&amp;</b>\n&amp;");
  // CLIP's two html.unescape passes follow: "&amp;amp;amp;" in HTML text ends as "&amp;".
  EXPECT_EQ(clip_clean_text("<b> &amp;amp;amp;"), "<b> &amp;");
  EXPECT_EQ(clip_clean_text("x &amp;amp;amp;"), "x &");
}

TEST(FtfyFixText, SegmentsOfAMillionCodePoints) {
  // Without a line break ftfy cuts the text every 1,000,000 code points: a CR LF across the cut
  // becomes two line breaks, and '<' after the cut leaves the first segment's entities decoded.
  const std::string run(999999, 'a');
  EXPECT_EQ(ftfy_fix_text(run + "\r\n"), run + "\n\n");
  EXPECT_EQ(ftfy_fix_text(run + "b\r\n"), run + "b\n");
  const std::string run5(999995, 'a');
  EXPECT_EQ(ftfy_fix_text("&amp;" + run5 + "<&amp;"), "&" + run5 + "<&amp;");
  const std::string run4(999994, 'a');  // '<' is the 1,000,000th code point
  EXPECT_EQ(ftfy_fix_text("&amp;" + run4 + "<&amp;"), "&amp;" + run4 + "<&amp;");
}

TEST(FtfyFixText, InvalidUtf8) {
  EXPECT_THROW(ftfy_fix_text("\xFF"), Error);
  EXPECT_THROW(ftfy_fix_text("a\xE2\x80"), Error);
}

TEST(ClipTokenizerGolden, FtfyMatchesRealFtfy) {
  const nlohmann::json fx = test::load_golden_json("tokenizer_text.json");
  if (fx.is_null()) GTEST_SKIP() << "tokenizer_text.json not found in TGPT_GOLDEN_DIR (run ctest)";
  EXPECT_EQ(fx["ftfy_version"].get<std::string>(), "6.3.1");
  const auto& cases = fx["ftfy"];
  ASSERT_GE(cases.size(), 600u);
  int fix_mismatches = 0, clean_mismatches = 0;
  for (const auto& c : cases) {
    const std::string in = c[0].get<std::string>();
    const std::string want_fixed = c[1].get<std::string>(), want_clean = c[2].get<std::string>();
    const std::string fixed = ftfy_fix_text(in), clean = clip_clean_text(in);
    if (fixed != want_fixed && ++fix_mismatches <= 5)
      ADD_FAILURE() << "ftfy_fix_text of " << nlohmann::json(in).dump() << ": got "
                    << nlohmann::json(fixed).dump() << ", ftfy gives "
                    << nlohmann::json(want_fixed).dump();
    if (clean != want_clean && ++clean_mismatches <= 5)
      ADD_FAILURE() << "clip_clean_text of " << nlohmann::json(in).dump() << ": got "
                    << nlohmann::json(clean).dump() << ", want "
                    << nlohmann::json(want_clean).dump();
  }
  EXPECT_EQ(fix_mismatches, 0) << "of " << cases.size();
  EXPECT_EQ(clean_mismatches, 0) << "of " << cases.size();
}

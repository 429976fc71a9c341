/*
 * tokenizer.h — CLIP's byte-level BPE tokenizer and clip.tokenize, bit-exact with openai/CLIP
 * (clip/simple_tokenizer.py, clip.tokenize) as specified in spec/clip.md §4.
 *
 * Pipeline of encode(text):
 *   clean:       ftfy.fix_text with ftfy 6.3's defaults except mojibake repair, i.e. per segment
 *                (text up to and including each '\n'), repeated until nothing changes: ftfy's own
 *                HTML unescape (only '&name;' / '&#...;' forms; off from the first segment that
 *                contains '<' on), C1 controls -> Windows-1252, Latin ligatures -> letters,
 *                full/half-width forms and U+3000 -> normal width, curly quotes -> straight,
 *                CR LF / CR / U+2028 / U+2029 / U+0085 -> LF, ANSI terminal escapes removed,
 *                invisible control characters removed, NFC. Then html.unescape twice (complete
 *                HTML5 entity table and numeric references, as Python's html.unescape), strip,
 *                White_Space runs -> ' ', strip, Python's str.lower() (full Unicode mapping incl.
 *                U+0130 and final sigma).
 *   pre-tokens:  the CLIP pattern <|startoftext|> | <|endoftext|> | 's|'t|'re|'ve|'m|'ll|'d |
 *                \p{L}+ | \p{N} | [^\s\p{L}\p{N}]+ under IGNORECASE, matched by hand over code
 *                points.
 *   BPE:         per pre-token over the bytes_to_unicode alphabet with '</w>' on the last symbol.
 * Unicode data is version 14.0 (Python 3.11's unicodedata), generated into tokenizer_tables.inc.
 * Not reproduced from ftfy: fix_encoding (mojibake repair: re-decoding text that looks like UTF-8
 * read as Latin-1/Windows-125x/MacRoman/cp437, with its helpers restore_byte_a0,
 * replace_lossy_sequences, decode_inconsistent_utf8). Text on which fix_encoding finds nothing to
 * repair (text that is not mojibake) gets the ids of clip.tokenize with ftfy 6.3.1 and Python 3.11;
 * Python versions with other Unicode data can differ on characters new in their version.
 */
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/tensor.h"

namespace tgpt {

class ClipTokenizer {
 public:
  static constexpr int kContextLength = 77;
  static constexpr int kNumMerges = 49152 - 256 - 2;  // merges used by CLIP: 48,894

  // From merges text: a header line containing "#version", then one "a b" merge per line. Uses at
  // most the first kNumMerges merges; fewer give a smaller vocabulary (the special tokens follow
  // the merges). `source` names the text in error messages.
  explicit ClipTokenizer(std::string_view merges_text, std::string_view source = "merges text");

  // From OpenAI's bpe_simple_vocab_16e6.txt.gz (gzip) or a Hugging Face merges.txt (plain text);
  // the file must hold at least kNumMerges merges.
  static ClipTokenizer from_file(const std::string& path);
  // A merges file (gzip or plain text) of any length, e.g. one learned by learn_bpe_merges
  // (models/bpe_learn.h): the vocabulary is 512 + merges + 2.
  static ClipTokenizer from_merges_file(const std::string& path);

  // BPE ids of `text` without start/end tokens.
  std::vector<int32_t> encode(std::string_view text) const;

  // clip.tokenize: per text [SOT] + ids + [EOT], zero padded. Returns [texts.size(),
  // context_length] row-major. A text longer than context_length throws unless truncate, which
  // keeps the first context_length ids and makes the last one EOT.
  std::vector<int32_t> tokenize(const std::vector<std::string>& texts,
                                int context_length = kContextLength, bool truncate = false) const;
  // Same, as an i32 CPU tensor [N, context_length].
  Tensor tokenize_tensor(const std::vector<std::string>& texts, int context_length = kContextLength,
                         bool truncate = false) const;

  int32_t sot_id() const { return sot_id_; }
  int32_t eot_id() const { return eot_id_; }
  int vocab_size() const { return static_cast<int>(vocab_.size()); }
  int num_merges() const { return static_cast<int>(ranks_.size()); }
  // Vocabulary entry of an id, in the bytes_to_unicode alphabet (UTF-8), e.g. "in", "cat</w>".
  const std::string& token(int32_t id) const;
  // Text of ids (simple_tokenizer's decode): each token's bytes, a '</w>' at a token's end becomes
  // ' ', SOT/EOT give their own text. decode(encode(t)) is t's pre-tokens, each followed by ' '
  // (SOT/EOT without). The bytes are returned as they are (ids that split a character give
  // invalid UTF-8).
  std::string decode(const std::vector<int32_t>& ids) const;

 private:
  void bpe(const std::string& pretoken, std::vector<int32_t>& out) const;

  std::vector<std::string> vocab_;                    // id -> token
  std::unordered_map<std::string, int32_t> encoder_;  // token -> id
  std::unordered_map<std::string, int32_t> ranks_;    // "first second" -> merge rank
  std::string byte_chars_[256];                       // byte -> UTF-8 of its unicode character
  int32_t sot_id_ = 0, eot_id_ = 0;
};

// bytes_to_unicode: the UTF-8 of the symbol of each byte (index = byte value), e.g. 'a' -> "a",
// ' ' -> "\u0120"; BPE works over these symbols.
const std::vector<std::string>& clip_byte_symbols();

// The cleaning steps of encode() (UTF-8 in and out), exposed for tests and tools.
std::string clip_clean_text(std::string_view text);
// ftfy.fix_text (ftfy 6.3 defaults) without mojibake repair: the first cleaning step.
std::string ftfy_fix_text(std::string_view text);
// Pre-tokens of cleaned text (UTF-8), as CLIP's regex findall returns them.
std::vector<std::string> clip_pretokenize(std::string_view cleaned_text);
// Python's html.unescape (HTML5 named and numeric character references).
std::string html_unescape(std::string_view text);
// Unicode NFC normalisation (Unicode 14.0).
std::string nfc_normalize(std::string_view text);
// Python's str.lower().
std::string unicode_lower(std::string_view text);
// Unicode version of the tables.
const char* clip_tokenizer_unicode_version();

}  // namespace tgpt

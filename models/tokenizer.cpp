/*
 * tokenizer.cpp — CLIP BPE tokenizer: merges loading, text cleaning (ftfy.fix_text without mojibake
 * repair, HTML unescape, white space, lowercase), pre-tokenisation and BPE. See tokenizer.h and
 * spec/clip.md §4.
 *
 * Text is handled as UTF-32 (std::u32string) between decoding and encoding UTF-8. The Unicode and
 * HTML tables (and ftfy's ligature, width and entity tables, derived from them) are generated from
 * Python's standard library by models/gen_tokenizer_tables.py.
 */
#include "models/tokenizer.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <filesystem>

#include "base/error.h"

namespace tgpt {

namespace {

struct CodePointRange {
  char32_t lo, hi;
};
struct CombiningClassRange {
  char32_t lo, hi;
  uint8_t ccc;
};
struct Decomposition {
  char32_t cp, first, second;  // second = 0 for a singleton
};
struct Composition {
  char32_t first, second, composite;
};
struct CaseMapping {
  char32_t cp, lower;
};
struct HtmlEntity {
  const char* name;
  const char* value;
};
struct Replacement {
  char32_t cp;
  char32_t out[3];  // replacement, padded with 0
};

#include "models/tokenizer_tables.inc"

template <size_t N>
bool in_ranges(const CodePointRange (&table)[N], char32_t c) {
  const CodePointRange* it = std::upper_bound(
      table, table + N, c, [](char32_t v, const CodePointRange& r) { return v < r.lo; });
  return it != table && c <= (it - 1)->hi;
}

// ---------------------------------------------------------------------------------------------
// UTF-8

std::u32string utf8_decode(std::string_view s, const char* what) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    int len = 0;
    char32_t c = 0, min = 0;
    if (b0 < 0x80) {
      len = 1, c = b0;
    } else if ((b0 & 0xE0) == 0xC0) {
      len = 2, c = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
      len = 3, c = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
      len = 4, c = b0 & 0x07, min = 0x10000;
    } else {
      TGPT_FAIL(what, " is not valid UTF-8 (byte 0x", std::hex, int(b0), std::dec, " at offset ", i,
                ")");
    }
    TGPT_CHECK(i + static_cast<size_t>(len) <= s.size(), what,
               " is not valid UTF-8 (truncated sequence at offset ", i, ")");
    for (int k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      TGPT_CHECK((b & 0xC0) == 0x80, what, " is not valid UTF-8 (bad continuation byte at offset ",
                 i + static_cast<size_t>(k), ")");
      c = (c << 6) | (b & 0x3F);
    }
    TGPT_CHECK(c >= min && c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF), what,
               " is not valid UTF-8 (overlong, surrogate or out-of-range code point at offset ", i,
               ")");
    out.push_back(c);
    i += static_cast<size_t>(len);
  }
  return out;
}

void utf8_append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string utf8_encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) utf8_append(out, c);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Character classes

// The `regex` module's \s: Unicode White_Space.
bool is_white_space(char32_t c) {
  return (c >= 0x9 && c <= 0xD) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Python's str.isspace(), used by str.strip(): White_Space plus U+001C..U+001F.
bool is_py_space(char32_t c) {
  return is_white_space(c) || (c >= 0x1C && c <= 0x1F);
}

bool is_letter(char32_t c) {
  return in_ranges(kLetterRanges, c);
}
bool is_number(char32_t c) {
  return in_ranges(kNumberRanges, c);
}
// The `re` module's \d on str: Unicode decimal digits (general category Nd).
bool is_decimal(char32_t c) {
  return c < 0x80 ? (c >= '0' && c <= '9') : in_ranges(kDecimalRanges, c);
}

// [^\s\p{L}\p{N}] under IGNORECASE: U+0345 case-folds to iota, a letter, so it is excluded too.
bool is_other(char32_t c) {
  return !(is_white_space(c) || is_letter(c) || is_number(c) || c == 0x345);
}

// ---------------------------------------------------------------------------------------------
// NFC

constexpr char32_t kHangulS = 0xAC00, kHangulL = 0x1100, kHangulV = 0x1161, kHangulT = 0x11A7;
constexpr char32_t kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
constexpr char32_t kHangulNCount = kHangulVCount * kHangulTCount;  // 588
constexpr char32_t kHangulSCount = kHangulLCount * kHangulNCount;  // 11172

int combining_class(char32_t c) {
  const CombiningClassRange* end = kCombiningClasses + std::size(kCombiningClasses);
  const CombiningClassRange* it = std::upper_bound(
      kCombiningClasses, end, c, [](char32_t v, const CombiningClassRange& r) { return v < r.lo; });
  if (it != kCombiningClasses && c <= (it - 1)->hi) return (it - 1)->ccc;
  return 0;
}

void decompose_append(std::u32string& out, char32_t c) {
  if (c >= kHangulS && c < kHangulS + kHangulSCount) {
    const char32_t s = c - kHangulS;
    out.push_back(kHangulL + s / kHangulNCount);
    out.push_back(kHangulV + (s % kHangulNCount) / kHangulTCount);
    if (s % kHangulTCount != 0) out.push_back(kHangulT + s % kHangulTCount);
    return;
  }
  const Decomposition* end = kDecompositions + std::size(kDecompositions);
  const Decomposition* it = std::lower_bound(
      kDecompositions, end, c, [](const Decomposition& d, char32_t v) { return d.cp < v; });
  if (it == end || it->cp != c) {
    out.push_back(c);
    return;
  }
  decompose_append(out, it->first);
  if (it->second) decompose_append(out, it->second);
}

bool compose_pair(char32_t a, char32_t b, char32_t* out) {
  if (a >= kHangulL && a < kHangulL + kHangulLCount && b >= kHangulV &&
      b < kHangulV + kHangulVCount) {
    *out = kHangulS + ((a - kHangulL) * kHangulVCount + (b - kHangulV)) * kHangulTCount;
    return true;
  }
  if (a >= kHangulS && a < kHangulS + kHangulSCount && (a - kHangulS) % kHangulTCount == 0 &&
      b > kHangulT && b < kHangulT + kHangulTCount) {
    *out = a + (b - kHangulT);
    return true;
  }
  const Composition* end = kCompositions + std::size(kCompositions);
  const Composition* it =
      std::lower_bound(kCompositions, end, std::pair<char32_t, char32_t>(a, b),
                       [](const Composition& c, const std::pair<char32_t, char32_t>& v) {
                         return c.first < v.first || (c.first == v.first && c.second < v.second);
                       });
  if (it == end || it->first != a || it->second != b) return false;
  *out = it->composite;
  return true;
}

std::u32string nfc(std::u32string_view s) {
  // 1. Full canonical decomposition.
  std::u32string d;
  d.reserve(s.size());
  for (char32_t c : s) decompose_append(d, c);
  // 2. Canonical ordering: stable sort of each run of non-starters by combining class.
  std::vector<int> ccc(d.size());
  for (size_t i = 0; i < d.size(); ++i) ccc[i] = combining_class(d[i]);
  for (size_t i = 1; i < d.size(); ++i) {
    if (ccc[i] == 0) continue;
    for (size_t j = i; j > 0 && ccc[j - 1] > ccc[j]; --j) {
      std::swap(d[j - 1], d[j]);
      std::swap(ccc[j - 1], ccc[j]);
    }
  }
  // 3. Canonical composition: a character composes with the last starter unless blocked (some
  // character between them has class 0 or a class >= its own).
  std::u32string out;
  out.reserve(d.size());
  ptrdiff_t starter = -1;
  int last_ccc = -1;  // class of the last character kept after the starter; -1: none
  for (size_t i = 0; i < d.size(); ++i) {
    const char32_t c = d[i];
    const int cc = ccc[i];
    if (starter >= 0) {
      const bool blocked = last_ccc != -1 && (last_ccc == 0 || last_ccc >= cc);
      char32_t composite;
      if (!blocked && compose_pair(out[static_cast<size_t>(starter)], c, &composite)) {
        out[static_cast<size_t>(starter)] = composite;
        continue;
      }
    }
    if (cc == 0) {
      starter = static_cast<ptrdiff_t>(out.size());
      last_ccc = -1;
    } else {
      last_ccc = cc;
    }
    out.push_back(c);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Python's html.unescape

// Windows-1252 meanings of the bytes 0x80..0x9F; the five bytes that Windows-1252 leaves
// undefined keep their Latin-1 (C1 control) meaning, as in html.unescape and ftfy's
// "sloppy-windows-1252".
constexpr std::array<char32_t, 32> kWindows1252C1 = {
    0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x8D,   0x017D, 0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};

char32_t html_invalid_charref(char32_t num, bool* found) {
  // _invalid_charrefs of Lib/html/__init__.py: Windows-1252 meanings of 0x80..0x9F, and 0, CR.
  *found = true;
  if (num == 0) return 0xFFFD;
  if (num == 0x0D) return 0x0D;
  if (num >= 0x80 && num <= 0x9F) return kWindows1252C1[num - 0x80];
  *found = false;
  return 0;
}

bool html_invalid_codepoint(char32_t n) {
  // _invalid_codepoints: 0x1-0x8, 0xB, 0xE-0x1F, 0x7F-0x9F, 0xFDD0-0xFDEF, xFFFE/xFFFF per plane.
  return (n >= 0x1 && n <= 0x8) || n == 0xB || (n >= 0xE && n <= 0x1F) ||
         (n >= 0x7F && n <= 0x9F) || (n >= 0xFDD0 && n <= 0xFDEF) || (n & 0xFFFE) == 0xFFFE;
}

template <size_t N>
const HtmlEntity* find_entity_in(const HtmlEntity (&table)[N], std::u32string_view name) {
  std::string key;
  for (char32_t c : name) {
    if (c >= 0x80) return nullptr;  // all entity names are ASCII
    key.push_back(static_cast<char>(c));
  }
  const HtmlEntity* end = table + N;
  const HtmlEntity* it = std::lower_bound(
      table, end, key, [](const HtmlEntity& e, const std::string& k) { return e.name < k; });
  if (it == end || it->name != key) return nullptr;
  return it;
}

const HtmlEntity* find_entity(std::u32string_view name) {
  return find_entity_in(kHtmlEntities, name);
}

bool is_ascii_digit(char32_t c) {
  return c >= '0' && c <= '9';
}
bool is_ascii_hex(char32_t c) {
  return is_ascii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
int hex_value(char32_t c) {
  if (is_ascii_digit(c)) return static_cast<int>(c - '0');
  if (c >= 'a' && c <= 'f') return static_cast<int>(c - 'a' + 10);
  return static_cast<int>(c - 'A' + 10);
}

// Python's regex  &(#[0-9]+;? | #[xX][0-9a-fA-F]+;? | [^\t\n\f <&#;]{1,32};?)  with
// _replace_charref applied to each match.
std::u32string html_unescape32(std::u32string_view s) {
  if (s.find(U'&') == std::u32string_view::npos) return std::u32string(s);
  std::u32string out;
  out.reserve(s.size());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (s[i] != U'&') {
      out.push_back(s[i++]);
      continue;
    }
    size_t j = i + 1;
    if (j < n && s[j] == U'#') {
      const bool hex = j + 1 < n && (s[j + 1] == U'x' || s[j + 1] == U'X');
      size_t k = hex ? j + 2 : j + 1;
      const size_t digits_begin = k;
      uint64_t num = 0;
      while (k < n && (hex ? is_ascii_hex(s[k]) : is_ascii_digit(s[k]))) {
        num = num * (hex ? 16 : 10) + static_cast<uint64_t>(hex_value(s[k]));
        if (num > 0x110000) num = 0x110000;  // saturate: every value above 0x10FFFF acts alike
        ++k;
      }
      if (k == digits_begin) {  // "&#" or "&#x" without digits: no match, '&' is literal
        out.push_back(s[i++]);
        continue;
      }
      if (k < n && s[k] == U';') ++k;
      const auto value = static_cast<char32_t>(num);
      bool found;
      const char32_t repl = html_invalid_charref(value, &found);
      if (found)
        out.push_back(repl);
      else if ((value >= 0xD800 && value <= 0xDFFF) || value > 0x10FFFF)
        out.push_back(0xFFFD);
      else if (!html_invalid_codepoint(value))
        out.push_back(value);
      i = k;
      continue;
    }
    size_t k = j;
    while (k < n && k - j < 32) {
      const char32_t c = s[k];
      if (c == U'\t' || c == U'\n' || c == U'\f' || c == U' ' || c == U'<' || c == U'&' ||
          c == U'#' || c == U';')
        break;
      ++k;
    }
    if (k == j) {
      out.push_back(s[i++]);
      continue;
    }
    if (k < n && s[k] == U';') ++k;
    const std::u32string_view name = s.substr(j, k - j);
    if (const HtmlEntity* e = find_entity(name)) {
      out += utf8_decode(e->value, "HTML entity table");
    } else {
      bool replaced = false;
      for (size_t x = name.size() - 1; x > 1; --x) {  // longest prefix that is an entity
        if (const HtmlEntity* p = find_entity(name.substr(0, x))) {
          out += utf8_decode(p->value, "HTML entity table");
          out += name.substr(x);
          replaced = true;
          break;
        }
      }
      if (!replaced) {
        out.push_back(U'&');
        out += name;
      }
    }
    i = k;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// ftfy.fix_text (ftfy 6.3 defaults) without its mojibake repair (fix_encoding)

bool is_ascii_alnum(char32_t c) {
  return is_ascii_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// ftfy's unescape_html: a match of  &#?[0-9A-Za-z]{1,24};  is replaced when it is an HTML5 name
// that ends in ';', or an upper-case spelling of an all-lower-case one (kUppercaseEntities), or a
// numeric reference that html.unescape decodes completely (its ';' consumed). Everything else,
// including names without ';', stays as written.
std::u32string ftfy_unescape_html(std::u32string_view s) {
  if (s.find(U'&') == std::u32string_view::npos) return std::u32string(s);
  std::u32string out;
  out.reserve(s.size());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (s[i] != U'&') {
      out.push_back(s[i++]);
      continue;
    }
    const bool numeric = i + 1 < n && s[i + 1] == U'#';
    const size_t body = i + 1 + (numeric ? 1 : 0);
    size_t k = body;
    while (k < n && k - body <= 24 && is_ascii_alnum(s[k])) ++k;
    const size_t len = k - body;
    if (len < 1 || len > 24 || k >= n || s[k] != U';') {  // no match at this '&'
      out.push_back(s[i++]);
      continue;
    }
    const std::u32string_view match = s.substr(i, k + 1 - i);  // "&...;"
    if (numeric) {
      const std::u32string value = html_unescape32(match);
      if (value.find(U';') == std::u32string::npos)
        out += value;
      else
        out += match;
    } else {
      const std::u32string_view name = s.substr(body, k + 1 - body);  // with ';'
      const HtmlEntity* e = find_entity(name);
      if (!e) e = find_entity_in(kUppercaseEntities, name);
      if (e)
        out += utf8_decode(e->value, "HTML entity table");
      else
        out += match;
    }
    i = k + 1;
  }
  return out;
}

// fix_c1_controls: U+0080..U+009F -> their Windows-1252 characters (five stay as they are).
void fix_c1_controls(std::u32string& s) {
  for (char32_t& c : s)
    if (c >= 0x80 && c <= 0x9F) c = kWindows1252C1[c - 0x80];
}

// Replaces every character listed in `table` by its replacement (str.translate).
template <size_t N>
std::u32string translate(std::u32string_view s, const Replacement (&table)[N]) {
  std::u32string out;
  out.reserve(s.size());
  for (char32_t c : s) {
    const Replacement* it = std::lower_bound(
        table, table + N, c, [](const Replacement& r, char32_t v) { return r.cp < v; });
    if (it == table + N || it->cp != c) {
      out.push_back(c);
      continue;
    }
    for (char32_t r : it->out)
      if (r) out.push_back(r);
  }
  return out;
}

// uncurl_quotes: U+02BC, U+2018..U+201B -> ', U+201C..U+201F -> ".
void uncurl_quotes(std::u32string& s) {
  for (char32_t& c : s) {
    if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B))
      c = U'\'';
    else if (c >= 0x201C && c <= 0x201F)
      c = U'"';
  }
}

// fix_line_breaks: CR LF, CR, U+2028, U+2029 and U+0085 -> LF.
std::u32string fix_line_breaks(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char32_t c = s[i];
    if (c == U'\r' && i + 1 < s.size() && s[i + 1] == U'\n') continue;  // the LF follows
    out.push_back(c == U'\r' || c == 0x2028 || c == 0x2029 || c == 0x85 ? U'\n' : c);
  }
  return out;
}

// remove_terminal_escapes: deletes each match of  ESC [ (\d|;)* [A-Za-z]  (\d: any Nd digit).
std::u32string remove_terminal_escapes(std::u32string_view s) {
  if (s.find(char32_t{0x1B}) == std::u32string_view::npos) return std::u32string(s);
  std::u32string out;
  out.reserve(s.size());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (s[i] == 0x1B && i + 1 < n && s[i + 1] == U'[') {
      size_t k = i + 2;
      while (k < n && (is_decimal(s[k]) || s[k] == U';')) ++k;
      if (k < n && ((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z'))) {
        i = k + 1;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  return out;
}

// remove_control_chars: deletes U+0000..U+0008, U+000B, U+000E..U+001F, U+007F,
// U+206A..U+206F (deprecated format controls), U+FEFF (BOM), U+FFF9..U+FFFC (interlinear
// annotation, object replacement). Tab, LF, FF, CR, C1 controls, joiners, bidi controls and tag
// characters stay.
bool is_removed_control(char32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
         (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

std::u32string remove_control_chars(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (char32_t c : s)
    if (!is_removed_control(c)) out.push_back(c);
  return out;
}

// ftfy's fix_and_explain for one segment: the fixers in ftfy's order, repeated until the text no
// longer changes. fix_encoding (mojibake repair) would run after unescape_html; it is not
// reproduced. fix_surrogates has nothing to do: decoded UTF-8 holds no surrogates and character
// references to surrogates decode to U+FFFD.
std::u32string ftfy_fix_segment(std::u32string s, bool unescape_html) {
  for (;;) {
    const std::u32string before = s;
    if (unescape_html) s = ftfy_unescape_html(s);
    fix_c1_controls(s);
    s = translate(s, kLatinLigatures);
    s = translate(s, kCharacterWidth);
    uncurl_quotes(s);
    s = fix_line_breaks(s);
    s = remove_terminal_escapes(s);
    s = remove_control_chars(s);
    s = nfc(s);
    if (s == before) return s;
  }
}

// ftfy.fix_text: fixes segments that end after each LF (or every 1,000,000 code points) one at a
// time. HTML is unescaped only until the first segment that contains '<', and in no later one.
std::u32string ftfy_fix_text32(std::u32string_view s) {
  constexpr size_t kMaxSegment = 1000000;  // ftfy's max_decode_length
  std::u32string out;
  out.reserve(s.size());
  bool unescape_html = true;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t lf = s.find(U'\n', pos);
    size_t end = lf == std::u32string_view::npos ? s.size() : lf + 1;
    end = std::min(end, pos + kMaxSegment);
    const std::u32string_view segment = s.substr(pos, end - pos);
    if (segment.find(U'<') != std::u32string_view::npos) unescape_html = false;
    out += ftfy_fix_segment(std::u32string(segment), unescape_html);
    pos = end;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// White space and lowercase

std::u32string py_strip(std::u32string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_py_space(s[b])) ++b;
  while (e > b && is_py_space(s[e - 1])) --e;
  return std::u32string(s.substr(b, e - b));
}

std::u32string collapse_white_space(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  bool in_space = false;
  for (char32_t c : s) {
    if (is_white_space(c)) {
      if (!in_space) out.push_back(U' ');
      in_space = true;
    } else {
      out.push_back(c);
      in_space = false;
    }
  }
  return out;
}

bool is_cased(char32_t c) {
  return in_ranges(kCasedRanges, c);
}
bool is_case_ignorable(char32_t c) {
  return in_ranges(kCaseIgnorableRanges, c);
}

// CPython's handle_capital_sigma: Σ is final (ς) when preceded by a cased character and not
// followed by one, skipping case-ignorable characters on both sides.
bool sigma_is_final(std::u32string_view s, size_t i) {
  size_t j = i;
  while (j > 0 && is_case_ignorable(s[j - 1])) --j;
  if (j == 0 || !is_cased(s[j - 1])) return false;
  size_t k = i + 1;
  while (k < s.size() && is_case_ignorable(s[k])) ++k;
  return k == s.size() || !is_cased(s[k]);
}

std::u32string lower32(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  const CaseMapping* end = kLowercase + std::size(kLowercase);
  for (size_t i = 0; i < s.size(); ++i) {
    const char32_t c = s[i];
    if (c < 0x80) {
      out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    } else if (c == 0x3A3) {
      out.push_back(sigma_is_final(s, i) ? 0x3C2 : 0x3C3);
    } else if (c == 0x130) {
      out.push_back(U'i');
      out.push_back(0x307);
    } else {
      const CaseMapping* it = std::lower_bound(
          kLowercase, end, c, [](const CaseMapping& m, char32_t v) { return m.cp < v; });
      out.push_back(it != end && it->cp == c ? it->lower : c);
    }
  }
  return out;
}

std::u32string clean32(std::string_view text) {
  std::u32string s = ftfy_fix_text32(utf8_decode(text, "tokenizer: input text"));
  s = py_strip(html_unescape32(html_unescape32(s)));
  s = py_strip(collapse_white_space(s));
  return lower32(s);
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenisation

// Length of `lit` (ASCII) if s[i..] starts with it under IGNORECASE ('ſ' matches 's'), else 0.
size_t match_literal(std::u32string_view s, size_t i, std::string_view lit) {
  if (i + lit.size() > s.size()) return 0;
  for (size_t k = 0; k < lit.size(); ++k) {
    const char32_t c = s[i + k];
    const auto p = static_cast<char32_t>(lit[k]);
    const char32_t upper = (p >= 'a' && p <= 'z') ? p - 32 : p;
    if (c == p || c == upper || (p == U's' && c == 0x17F)) continue;
    return 0;
  }
  return lit.size();
}

std::vector<std::u32string> pretokenize32(std::u32string_view s) {
  static constexpr std::string_view kLiterals[] = {
      "<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  std::vector<std::u32string> tokens;
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    size_t m = 0;
    for (std::string_view lit : kLiterals)
      if ((m = match_literal(s, i, lit)) != 0) break;
    if (m == 0) {
      if (is_letter(s[i])) {
        m = 1;
        while (i + m < n && is_letter(s[i + m])) ++m;
      } else if (is_number(s[i])) {
        m = 1;
      } else if (is_other(s[i])) {
        m = 1;
        while (i + m < n && is_other(s[i + m])) ++m;
      }
    }
    if (m == 0) {  // white space (or U+0345): no alternative matches at this position
      ++i;
      continue;
    }
    tokens.emplace_back(s.substr(i, m));
    i += m;
  }
  return tokens;
}

// ---------------------------------------------------------------------------------------------
// Merges

// bytes_to_unicode: byte -> code point, and the byte order of vocabulary ids 0..255.
void bytes_to_unicode(std::array<char32_t, 256>& table, std::array<int, 256>& order) {
  int n_order = 0, n_extra = 0;
  std::array<bool, 256> printable{};
  for (int b = 0; b < 256; ++b) {
    printable[b] = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    if (printable[b]) {
      table[b] = static_cast<char32_t>(b);
      order[n_order++] = b;
    }
  }
  for (int b = 0; b < 256; ++b) {
    if (!printable[b]) {
      table[b] = static_cast<char32_t>(256 + n_extra++);
      order[n_order++] = b;
    }
  }
}

bool is_byte_char(char32_t c) {
  return (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF) ||
         (c >= 0x100 && c < 0x100 + 68);
}

std::string read_merges_file(const std::string& path) {
  std::error_code ec;
  TGPT_CHECK(std::filesystem::exists(path, ec), "tokenizer: merges file '", path,
             "' does not exist");
  TGPT_CHECK(std::filesystem::is_regular_file(path, ec), "tokenizer: merges file '", path,
             "' is not a regular file");
  gzFile f = gzopen(path.c_str(), "rb");  // reads gzip and, transparently, plain text
  TGPT_CHECK(f != nullptr, "tokenizer: cannot open merges file '", path, "'");
  std::string data;
  char buf[1 << 16];
  int got;
  while ((got = gzread(f, buf, sizeof(buf))) > 0) data.append(buf, static_cast<size_t>(got));
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  const std::string message = msg ? msg : "";
  gzclose(f);
  TGPT_CHECK(got == 0 && err == Z_OK, "tokenizer: merges file '", path,
             "' is corrupt or truncated (zlib: ", message.empty() ? "read error" : message, ")");
  return data;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ClipTokenizer

ClipTokenizer::ClipTokenizer(std::string_view merges_text, std::string_view source) {
  const std::string src(source);
  std::array<char32_t, 256> table;
  std::array<int, 256> order;
  bytes_to_unicode(table, order);
  for (int b = 0; b < 256; ++b) utf8_append(byte_chars_[b], table[b]);

  // Lines: header, then merges. Trailing newlines at the end of the text are ignored.
  while (!merges_text.empty() && merges_text.back() == '\n') merges_text.remove_suffix(1);
  const size_t header_end = std::min(merges_text.find('\n'), merges_text.size());
  TGPT_CHECK(merges_text.substr(0, header_end).find("#version") != std::string_view::npos,
             "tokenizer: ", src,
             " does not start with a '#version' header line (not a BPE merges file)");
  std::vector<std::pair<std::string, std::string>> merges;
  size_t pos = header_end + 1;
  int line_no = 1;
  while (pos <= merges_text.size() && static_cast<int>(merges.size()) < kNumMerges) {
    size_t eol = merges_text.find('\n', pos);
    if (eol == std::string_view::npos) eol = merges_text.size();
    const std::string_view line = merges_text.substr(pos, eol - pos);
    ++line_no;
    const size_t sp = line.find(' ');
    TGPT_CHECK(sp != std::string_view::npos && sp > 0 && sp + 1 < line.size() &&
                   line.find(' ', sp + 1) == std::string_view::npos,
               "tokenizer: ", src, " line ", line_no, " is not a merge of the form 'a b': '",
               std::string(line.substr(0, 80)), "'");
    for (char32_t c : utf8_decode(line.substr(0, sp), "tokenizer: merges"))
      TGPT_CHECK(is_byte_char(c), "tokenizer: ", src, " line ", line_no,
                 " has a character outside the byte alphabet");
    for (char32_t c : utf8_decode(line.substr(sp + 1), "tokenizer: merges"))
      TGPT_CHECK(is_byte_char(c), "tokenizer: ", src, " line ", line_no,
                 " has a character outside the byte alphabet");
    merges.emplace_back(std::string(line.substr(0, sp)), std::string(line.substr(sp + 1)));
    pos = eol + 1;
  }

  // Vocabulary: bytes, bytes + "</w>", merges, SOT, EOT. Later duplicates win, as in Python's dict.
  for (int k = 0; k < 256; ++k) vocab_.push_back(byte_chars_[order[k]]);
  for (int k = 0; k < 256; ++k) vocab_.push_back(byte_chars_[order[k]] + "</w>");
  for (const auto& [a, b] : merges) vocab_.push_back(a + b);
  vocab_.push_back("<|startoftext|>");
  vocab_.push_back("<|endoftext|>");
  encoder_.reserve(vocab_.size());
  for (size_t id = 0; id < vocab_.size(); ++id) encoder_[vocab_[id]] = static_cast<int32_t>(id);
  ranks_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r)
    ranks_.emplace(merges[r].first + " " + merges[r].second, static_cast<int32_t>(r));
  sot_id_ = encoder_.at("<|startoftext|>");
  eot_id_ = encoder_.at("<|endoftext|>");
}

ClipTokenizer ClipTokenizer::from_file(const std::string& path) {
  ClipTokenizer tok(read_merges_file(path), "merges file '" + path + "'");
  TGPT_CHECK(tok.num_merges() == kNumMerges, "tokenizer: merges file '", path, "' has only ",
             tok.num_merges(), " merges; CLIP needs ", kNumMerges);
  return tok;
}

ClipTokenizer ClipTokenizer::from_merges_file(const std::string& path) {
  return ClipTokenizer(read_merges_file(path), "merges file '" + path + "'");
}

const std::string& ClipTokenizer::token(int32_t id) const {
  TGPT_CHECK(id >= 0 && id < vocab_size(), "tokenizer: token id ", id, " out of range [0, ",
             vocab_size(), ")");
  return vocab_[static_cast<size_t>(id)];
}

void ClipTokenizer::bpe(const std::string& pretoken, std::vector<int32_t>& out) const {
  if (pretoken == "<|startoftext|>" || pretoken == "<|endoftext|>") {
    out.push_back(encoder_.at(pretoken));
    return;
  }
  if (pretoken.empty()) return;
  std::vector<std::string> word;
  word.reserve(pretoken.size());
  for (char ch : pretoken) word.push_back(byte_chars_[static_cast<unsigned char>(ch)]);
  word.back() += "</w>";
  std::string key;
  while (word.size() > 1) {
    int32_t best = -1;
    size_t best_at = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      key.assign(word[i]).append(" ").append(word[i + 1]);
      const auto it = ranks_.find(key);
      if (it != ranks_.end() && (best < 0 || it->second < best)) best = it->second, best_at = i;
    }
    if (best < 0) break;
    const std::string first = word[best_at], second = word[best_at + 1];
    std::vector<std::string> merged;
    merged.reserve(word.size());
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(std::move(word[i]));
        i += 1;
      }
    }
    word = std::move(merged);
  }
  for (const std::string& sym : word) {
    const auto it = encoder_.find(sym);
    TGPT_CHECK(it != encoder_.end(), "tokenizer: BPE symbol missing from the vocabulary");
    out.push_back(it->second);
  }
}

std::string ClipTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::array<char32_t, 256> table;
  std::array<int, 256> order;
  bytes_to_unicode(table, order);
  std::unordered_map<char32_t, char> byte_of;
  for (int b = 0; b < 256; ++b) byte_of[table[b]] = static_cast<char>(b);
  constexpr std::string_view kEndOfWord = "</w>";
  std::string text;
  for (int32_t id : ids) {
    std::string_view tok = token(id);
    if (id == sot_id_ || id == eot_id_) {
      text += tok;
      continue;
    }
    const bool end_of_word = tok.ends_with(kEndOfWord);
    if (end_of_word) tok.remove_suffix(kEndOfWord.size());
    for (char32_t c : utf8_decode(tok, "tokenizer: vocabulary")) text += byte_of.at(c);
    if (end_of_word) text += ' ';
  }
  return text;
}

std::vector<int32_t> ClipTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  for (const std::u32string& tok : pretokenize32(clean32(text))) bpe(utf8_encode(tok), ids);
  return ids;
}

std::vector<int32_t> ClipTokenizer::tokenize(const std::vector<std::string>& texts,
                                             int context_length, bool truncate) const {
  TGPT_CHECK(context_length >= 1, "tokenize: context_length must be >= 1, got ", context_length);
  const auto ctx = static_cast<size_t>(context_length);
  std::vector<int32_t> result(texts.size() * ctx, 0);
  for (size_t t = 0; t < texts.size(); ++t) {
    std::vector<int32_t> ids{sot_id_};
    const std::vector<int32_t> body = encode(texts[t]);
    ids.insert(ids.end(), body.begin(), body.end());
    ids.push_back(eot_id_);
    if (ids.size() > ctx) {
      if (!truncate) {
        std::string shown = texts[t].substr(0, 100);
        while (!shown.empty() && shown.size() < texts[t].size() &&
               (static_cast<unsigned char>(texts[t][shown.size()]) & 0xC0) == 0x80)
          shown.pop_back();  // cut at a UTF-8 character boundary
        if (shown.size() < texts[t].size()) shown += "...";
        TGPT_FAIL("tokenize: input text \"", shown, "\" is too long for context length ",
                  context_length, " (", ids.size(),
                  " tokens with start and end); use truncate to cut it");
      }
      ids.resize(ctx);
      ids.back() = eot_id_;
    }
    std::copy(ids.begin(), ids.end(), result.begin() + static_cast<ptrdiff_t>(t * ctx));
  }
  return result;
}

Tensor ClipTokenizer::tokenize_tensor(const std::vector<std::string>& texts, int context_length,
                                      bool truncate) const {
  const std::vector<int32_t> ids = tokenize(texts, context_length, truncate);
  const Shape shape{static_cast<int64_t>(texts.size()), static_cast<int64_t>(context_length)};
  if (ids.empty()) return Tensor::zeros(shape, DType::i32);
  return Tensor::from_data<int32_t>(ids.data(), shape);
}

// ---------------------------------------------------------------------------------------------
// Free functions

const std::vector<std::string>& clip_byte_symbols() {
  static const std::vector<std::string> symbols = [] {
    std::array<char32_t, 256> table;
    std::array<int, 256> order;
    bytes_to_unicode(table, order);
    std::vector<std::string> out(256);
    for (int b = 0; b < 256; ++b) utf8_append(out[static_cast<size_t>(b)], table[b]);
    return out;
  }();
  return symbols;
}

std::string clip_clean_text(std::string_view text) {
  return utf8_encode(clean32(text));
}

std::vector<std::string> clip_pretokenize(std::string_view cleaned_text) {
  std::vector<std::string> out;
  for (const std::u32string& t : pretokenize32(utf8_decode(cleaned_text, "tokenizer: input text")))
    out.push_back(utf8_encode(t));
  return out;
}

std::string ftfy_fix_text(std::string_view text) {
  return utf8_encode(ftfy_fix_text32(utf8_decode(text, "ftfy_fix_text: input text")));
}

std::string html_unescape(std::string_view text) {
  return utf8_encode(html_unescape32(utf8_decode(text, "html_unescape: input text")));
}

std::string nfc_normalize(std::string_view text) {
  return utf8_encode(nfc(utf8_decode(text, "nfc_normalize: input text")));
}

std::string unicode_lower(std::string_view text) {
  return utf8_encode(lower32(utf8_decode(text, "unicode_lower: input text")));
}

const char* clip_tokenizer_unicode_version() {
  return kUnicodeVersion;
}

}  // namespace tgpt

/*
 * config.cpp — the TGP-T config tree (yacs semantics), Python literal parsing and printing,
 * YAML merging through yaml-cpp, overrides, dump and the per-dataset presets (config.h).
 */
#include "train/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <utility>

#include "base/error.h"

namespace tgpt {

// ---------------------------------------------------------------------------------------------
// ConfigValue

ConfigValue ConfigValue::boolean(bool v) {
  ConfigValue c;
  c.type = Type::boolean;
  c.b = v;
  return c;
}
ConfigValue ConfigValue::integer(int64_t v) {
  ConfigValue c;
  c.type = Type::integer;
  c.i = v;
  return c;
}
ConfigValue ConfigValue::floating(double v) {
  ConfigValue c;
  c.type = Type::floating;
  c.f = v;
  return c;
}
ConfigValue ConfigValue::string(std::string v) {
  ConfigValue c;
  c.type = Type::string;
  c.s = std::move(v);
  return c;
}
ConfigValue ConfigValue::list(std::vector<ConfigValue> v) {
  ConfigValue c;
  c.type = Type::list;
  c.items = std::move(v);
  return c;
}
ConfigValue ConfigValue::tuple(std::vector<ConfigValue> v) {
  ConfigValue c;
  c.type = Type::tuple;
  c.items = std::move(v);
  return c;
}

const char* ConfigValue::type_name() const {
  switch (type) {
    case Type::none: return "NoneType";
    case Type::boolean: return "bool";
    case Type::integer: return "int";
    case Type::floating: return "float";
    case Type::string: return "str";
    case Type::list: return "list";
    case Type::tuple: return "tuple";
  }
  return "?";
}

bool ConfigValue::operator==(const ConfigValue& o) const {
  if (type != o.type) return false;
  switch (type) {
    case Type::none: return true;
    case Type::boolean: return b == o.b;
    case Type::integer: return i == o.i;
    case Type::floating: return f == o.f;
    case Type::string: return s == o.s;
    case Type::list:
    case Type::tuple: return items == o.items;
  }
  return false;
}

namespace {

// Python's repr(float): the shortest digits that round-trip, fixed notation for decimal
// exponents in [-4, 16), else d.ddde±XX.
std::string python_float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string sci(buf, r.ptr);  // e.g. "-1.2345e-05"
  const size_t epos = sci.find('e');
  std::string mant = sci.substr(0, epos);
  const int exp = std::atoi(sci.c_str() + epos + 1);
  const bool neg = mant[0] == '-';
  if (neg) mant.erase(0, 1);
  std::string digits;
  for (char c : mant)
    if (c != '.') digits += c;
  std::string out;
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      const size_t int_digits = static_cast<size_t>(exp) + 1;
      if (digits.size() <= int_digits)
        out = digits + std::string(int_digits - digits.size(), '0') + ".0";
      else
        out = digits.substr(0, int_digits) + "." + digits.substr(int_digits);
    } else {
      out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += e;
  }
  return neg ? "-" + out : out;
}

// Python's repr(str): single quotes unless the text has ' and no ".
std::string python_str_repr(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char q = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == q || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char e[8];
      std::snprintf(e, sizeof e, "\\x%02x", c);
      out += e;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += q;
  return out;
}

}  // namespace

std::string ConfigValue::repr() const {
  switch (type) {
    case Type::none: return "None";
    case Type::boolean: return b ? "True" : "False";
    case Type::integer: return std::to_string(i);
    case Type::floating: return python_float_repr(f);
    case Type::string: return python_str_repr(s);
    case Type::list:
    case Type::tuple: {
      std::string out = type == Type::list ? "[" : "(";
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += ", ";
        out += items[k].repr();
      }
      if (type == Type::tuple && items.size() == 1) out += ",";
      out += type == Type::list ? "]" : ")";
      return out;
    }
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// Python literals

namespace {

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_ident_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Recursive-descent parser of the Python literal subset (config.h). Every parse_* returns
// nullopt on text that is not such a literal; values out of range throw.
class LiteralParser {
 public:
  explicit LiteralParser(const std::string& text) : t_(text) {}

  std::optional<ConfigValue> parse_all() {
    skip_ws();
    if (at_end()) return std::nullopt;
    std::optional<ConfigValue> v = parse_value(0);
    if (!v) return std::nullopt;
    skip_ws();
    if (!at_end() && peek() == ',') {  // a bare tuple: 1, 2
      std::vector<ConfigValue> items{*v};
      while (!at_end() && peek() == ',') {
        ++pos_;
        skip_ws();
        if (at_end()) break;
        std::optional<ConfigValue> next = parse_value(0);
        if (!next) return std::nullopt;
        items.push_back(std::move(*next));
        skip_ws();
      }
      v = ConfigValue::tuple(std::move(items));
    }
    skip_ws();
    if (!at_end()) return std::nullopt;
    // A number out of range is an error only in text that is a literal otherwise.
    TGPT_CHECK(range_error_.empty(), range_error_);
    return v;
  }

 private:
  static constexpr int kMaxDepth = 64;

  bool at_end() const { return pos_ >= t_.size(); }
  char peek(size_t ahead = 0) const { return pos_ + ahead < t_.size() ? t_[pos_ + ahead] : '\0'; }
  void skip_ws() {
    while (!at_end() &&
           (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r' || peek() == '\f'))
      ++pos_;
  }
  bool is_quote(char c) const { return c == '\'' || c == '"'; }
  bool at_string_start() const {
    if (is_quote(peek())) return true;
    const char c = peek();
    return (c == 'r' || c == 'R' || c == 'u' || c == 'U') && is_quote(peek(1));
  }

  std::optional<ConfigValue> parse_value(int depth) {
    if (depth > kMaxDepth) return std::nullopt;
    skip_ws();
    if (at_end()) return std::nullopt;
    const char c = peek();
    if (c == '(' || c == '[') return parse_sequence(depth);
    if (at_string_start()) return parse_strings();
    if (c == '-' || c == '+') {
      ++pos_;
      skip_ws();
      if (!(is_digit(peek()) || (peek() == '.' && is_digit(peek(1))))) return std::nullopt;
      std::optional<ConfigValue> v = parse_number(c == '-');
      return v;
    }
    if (is_digit(c) || (c == '.' && is_digit(peek(1)))) return parse_number(false);
    if (is_ident_char(c)) {
      const size_t start = pos_;
      while (!at_end() && is_ident_char(peek())) ++pos_;
      const std::string word = t_.substr(start, pos_ - start);
      if (word == "True") return ConfigValue::boolean(true);
      if (word == "False") return ConfigValue::boolean(false);
      if (word == "None") return ConfigValue{};
      return std::nullopt;
    }
    return std::nullopt;
  }

  std::optional<ConfigValue> parse_sequence(int depth) {
    const char open = peek();
    const char close = open == '(' ? ')' : ']';
    ++pos_;
    std::vector<ConfigValue> items;
    bool comma = false;
    skip_ws();
    if (peek() == close) {
      ++pos_;
      return open == '(' ? ConfigValue::tuple({}) : ConfigValue::list({});
    }
    for (;;) {
      std::optional<ConfigValue> v = parse_value(depth + 1);
      if (!v) return std::nullopt;
      items.push_back(std::move(*v));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        comma = true;
        skip_ws();
        if (peek() == close) {
          ++pos_;
          break;
        }
        continue;
      }
      if (peek() == close) {
        ++pos_;
        break;
      }
      return std::nullopt;
    }
    if (open == '(' && items.size() == 1 && !comma) return items[0];  // (x) is x
    return open == '(' ? ConfigValue::tuple(std::move(items)) : ConfigValue::list(std::move(items));
  }

  // One or more adjacent string literals, joined.
  std::optional<ConfigValue> parse_strings() {
    std::string out;
    do {
      if (!parse_string(out)) return std::nullopt;
      skip_ws();
    } while (!at_end() && at_string_start());
    return ConfigValue::string(std::move(out));
  }

  bool parse_string(std::string& out) {
    bool raw = false;
    if (!is_quote(peek())) {
      raw = peek() == 'r' || peek() == 'R';
      ++pos_;
    }
    const char q = peek();
    ++pos_;
    const bool triple = peek() == q && peek(1) == q;
    if (triple) pos_ += 2;
    for (;;) {
      if (at_end()) return false;  // unterminated
      const char c = t_[pos_++];
      if (c == q) {
        if (!triple) return true;
        if (peek() == q && peek(1) == q) {
          pos_ += 2;
          return true;
        }
        out += c;
        continue;
      }
      if (c == '\n' && !triple) return false;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (at_end()) return false;
      const char e = t_[pos_++];
      if (raw) {  // raw strings keep the backslash; \<quote> does not end them
        out += '\\';
        out += e;
        continue;
      }
      switch (e) {
        case '\n': break;  // line continuation
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x':
        case 'u':
        case 'U': {
          const int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          for (int k = 0; k < n; ++k) {
            const int h = at_end() ? -1 : hex_value(peek());
            if (h < 0) return false;
            cp = cp * 16 + static_cast<uint32_t>(h);
            ++pos_;
          }
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
          append_utf8(out, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {  // up to three octal digits
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && peek() >= '0' && peek() <= '7'; ++k, ++pos_)
              cp = cp * 8 + static_cast<uint32_t>(peek() - '0');
            append_utf8(out, cp);
          } else if (e == 'N') {
            return false;  // \N{name}: not supported
          } else {         // unknown escapes keep the backslash, as Python does
            out += '\\';
            out += e;
          }
      }
    }
  }

  // Digits accepted by `is_d`, with single '_' between digits; appended to `out` without '_'.
  // Returns false on a misplaced '_'.
  template <typename Pred>
  bool read_digits(std::string& out, Pred is_d) {
    bool prev_digit = false;
    while (!at_end()) {
      const char c = peek();
      if (is_d(c)) {
        out += c;
        prev_digit = true;
      } else if (c == '_') {
        if (!prev_digit || !is_d(peek(1))) return false;
        prev_digit = false;
      } else {
        break;
      }
      ++pos_;
    }
    return true;
  }

  std::optional<ConfigValue> parse_number(bool negative) {
    const size_t start = pos_;
    // 0x / 0o / 0b integers.
    if (peek() == '0' && (std::string("xXoObB").find(peek(1)) != std::string::npos) &&
        peek(1) != '\0') {
      const char k = static_cast<char>(peek(1) | 0x20);
      const int base = k == 'x' ? 16 : k == 'o' ? 8 : 2;
      pos_ += 2;
      if (peek() == '_') ++pos_;  // 0x_1f is valid
      std::string digits;
      auto in_base = [base](char c) {
        const int h = hex_value(c);
        return h >= 0 && h < base;
      };
      if (!read_digits(digits, in_base) || digits.empty()) return std::nullopt;
      if (!at_end() && is_ident_char(peek())) return std::nullopt;
      return make_int(digits, base, negative, start);
    }
    std::string int_part, frac_part, exp_part;
    if (!read_digits(int_part, is_digit)) return std::nullopt;
    bool is_float = false;
    if (peek() == '.') {
      ++pos_;
      is_float = true;
      if (!read_digits(frac_part, is_digit)) return std::nullopt;
      if (int_part.empty() && frac_part.empty()) return std::nullopt;
    }
    if (peek() == 'e' || peek() == 'E') {
      const size_t save = pos_;
      ++pos_;
      std::string sign;
      if (peek() == '+' || peek() == '-') sign = std::string(1, t_[pos_++]);
      std::string digits;
      if (!is_digit(peek()) || !read_digits(digits, is_digit)) {
        pos_ = save;
        return std::nullopt;  // "1e", "1e+"
      }
      exp_part = sign + digits;
      is_float = true;
    }
    if (!at_end() && is_ident_char(peek())) return std::nullopt;  // 16abc, 1j, 1_
    if (!is_float) {
      if (int_part.size() > 1 && int_part[0] == '0' &&
          int_part.find_first_not_of('0') != std::string::npos)
        return std::nullopt;  // 012 is a syntax error in Python 3
      return make_int(int_part, 10, negative, start);
    }
    std::string text = negative ? "-" : "";
    text += (int_part.empty() ? "0" : int_part) + "." + (frac_part.empty() ? "0" : frac_part);
    if (!exp_part.empty()) text += "e" + exp_part;
    const double v = std::strtod(text.c_str(), nullptr);  // "C" locale: tgpt never sets one
    if (!std::isfinite(v) && range_error_.empty())
      range_error_ = "the number " + t_.substr(start, pos_ - start) + " is not a finite float";
    return ConfigValue::floating(v);
  }

  ConfigValue make_int(const std::string& digits, int base, bool negative, size_t start) {
    // Magnitude in uint64, then the sign: -9223372036854775808 fits.
    uint64_t mag = 0;
    const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), mag, base);
    const uint64_t limit = negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
    if ((r.ec != std::errc() || mag > limit) && range_error_.empty())
      range_error_ = str_cat("the integer ", negative ? "-" : "", t_.substr(start, pos_ - start),
                             " does not fit in 64 bits");
    if (negative) return ConfigValue::integer(static_cast<int64_t>(0 - mag));
    return ConfigValue::integer(static_cast<int64_t>(mag));
  }

  const std::string& t_;
  size_t pos_ = 0;
  std::string range_error_;  // the first number out of range
};

}  // namespace

std::optional<ConfigValue> parse_python_literal(const std::string& text) {
  return LiteralParser(text).parse_all();
}

ConfigValue decode_config_value(const std::string& text) {
  std::optional<ConfigValue> v = parse_python_literal(text);
  return v ? *v : ConfigValue::string(text);
}

// ---------------------------------------------------------------------------------------------
// Checking and coercing merged values

namespace {

bool is_yaml_bool_word(const std::string& s, bool& value) {
  static const char* kTrue[] = {"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"};
  static const char* kFalse[] = {"no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"};
  for (const char* w : kTrue)
    if (s == w) return value = true, true;
  for (const char* w : kFalse)
    if (s == w) return value = false, true;
  return false;
}

bool is_yaml_null_word(const std::string& s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

// `where` prefixes every message: "file.yaml:12: " or "override OPTIM.LR 'x': ".
ConfigValue coerce_element(const ConfigValue& like, const ConfigValue& v, const std::string& where,
                           const std::string& key, size_t index) {
  if (v.type == like.type || (like.is_sequence() && v.is_sequence())) return v;
  if (like.type == ConfigValue::Type::floating && v.type == ConfigValue::Type::integer)
    return ConfigValue::floating(static_cast<double>(v.i));
  TGPT_FAIL(where, "type mismatch for element ", index, " of config key ", key, ": expected ",
            like.type_name(), " (as the default's elements), got ", v.type_name(), " ", v.repr());
}

ConfigValue coerce_value(const ConfigValue& original, const ConfigValue& v,
                         const std::string& where, const std::string& key) {
  using T = ConfigValue::Type;
  TGPT_CHECK(v.type != T::none, where, "config key ", key, " cannot be None/null: expected ",
             original.type_name(), " (default ", original.repr(), ")");
  if (original.is_sequence() && v.is_sequence()) {
    ConfigValue out = v;
    out.type = original.type;  // yacs casts list <-> tuple to the default's kind
    if (!original.items.empty())
      for (size_t k = 0; k < out.items.size(); ++k)
        out.items[k] = coerce_element(original.items[0], out.items[k], where, key, k);
    return out;
  }
  if (v.type == original.type) return v;
  if (original.type == T::floating && v.type == T::integer)
    return ConfigValue::floating(static_cast<double>(v.i));
  TGPT_FAIL(where, "type mismatch for config key ", key, ": expected ", original.type_name(),
            " (default ", original.repr(), "), got ", v.type_name(), " ", v.repr());
}

std::string last_segment(const std::string& key) {
  const size_t dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Config: keys and values

void Config::add_default(const std::string& key, ConfigValue value) {
  TGPT_CHECK(!index_.count(key) && !is_node(key), "config key ", key, " defined twice");
  for (size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', dot + 1)) {
    const std::string node = key.substr(0, dot);
    TGPT_CHECK(!index_.count(node), "config key ", node, " is both a value and a node");
    if (std::find(nodes_.begin(), nodes_.end(), node) == nodes_.end()) nodes_.push_back(node);
  }
  index_.emplace(key, keys_.size());
  keys_.push_back(key);
  values_.push_back(std::move(value));
}

bool Config::contains(const std::string& key) const {
  return index_.count(key) != 0;
}

bool Config::is_node(const std::string& key) const {
  return std::find(nodes_.begin(), nodes_.end(), key) != nodes_.end();
}

size_t Config::index_of(const std::string& key, const char* what) const {
  const auto it = index_.find(key);
  if (it != index_.end()) return it->second;
  TGPT_CHECK(!is_node(key), what, ": config key ", key, " is a group of keys, not a value");
  TGPT_FAIL(what, ": unknown config key ", key);
}

const ConfigValue& Config::get(const std::string& key) const {
  return values_[index_of(key, "Config::get")];
}

namespace {
[[noreturn]] void fail_type(const std::string& key, const ConfigValue& v, const char* wanted) {
  TGPT_FAIL("config key ", key, " is ", v.type_name(), " ", v.repr(), ", not ", wanted);
}
}  // namespace

bool Config::get_bool(const std::string& key) const {
  const ConfigValue& v = get(key);
  if (v.type != ConfigValue::Type::boolean) fail_type(key, v, "a bool");
  return v.b;
}
int64_t Config::get_int(const std::string& key) const {
  const ConfigValue& v = get(key);
  if (v.type != ConfigValue::Type::integer) fail_type(key, v, "an int");
  return v.i;
}
double Config::get_double(const std::string& key) const {
  const ConfigValue& v = get(key);
  if (v.type == ConfigValue::Type::integer) return static_cast<double>(v.i);
  if (v.type != ConfigValue::Type::floating) fail_type(key, v, "a number");
  return v.f;
}
const std::string& Config::get_string(const std::string& key) const {
  const ConfigValue& v = get(key);
  if (v.type != ConfigValue::Type::string) fail_type(key, v, "a str");
  return v.s;
}
std::vector<int64_t> Config::get_int_list(const std::string& key) const {
  const ConfigValue& v = get(key);
  if (!v.is_sequence()) fail_type(key, v, "a list or tuple of ints");
  std::vector<int64_t> out;
  for (const ConfigValue& x : v.items) {
    if (x.type != ConfigValue::Type::integer) fail_type(key, v, "a list or tuple of ints");
    out.push_back(x.i);
  }
  return out;
}
std::vector<double> Config::get_double_list(const std::string& key) const {
  const ConfigValue& v = get(key);
  if (!v.is_sequence()) fail_type(key, v, "a list or tuple of numbers");
  std::vector<double> out;
  for (const ConfigValue& x : v.items) {
    if (!x.is_number()) fail_type(key, v, "a list or tuple of numbers");
    out.push_back(x.type == ConfigValue::Type::integer ? static_cast<double>(x.i) : x.f);
  }
  return out;
}
std::vector<std::string> Config::get_string_list(const std::string& key) const {
  const ConfigValue& v = get(key);
  if (!v.is_sequence()) fail_type(key, v, "a list or tuple of strings");
  std::vector<std::string> out;
  for (const ConfigValue& x : v.items) {
    if (x.type != ConfigValue::Type::string) fail_type(key, v, "a list or tuple of strings");
    out.push_back(x.s);
  }
  return out;
}

bool Config::operator==(const Config& other) const {
  return keys_ == other.keys_ && values_ == other.values_;
}

void Config::set(const std::string& key, const ConfigValue& value, const std::string& source) {
  const size_t k = index_of(key, source.c_str());
  values_[k] = coerce_value(values_[k], value, source + ": ", key);
}

// ---------------------------------------------------------------------------------------------
// Merging

namespace {

std::string unknown_key_message(const Config& cfg, const std::string& key) {
  std::string msg = "unknown config key " + key + " (not a key of the TGP-T defaults)";
  const std::string last = last_segment(key);
  std::vector<std::string> near;
  for (const std::string& k : cfg.keys())
    if (last_segment(k) == last) near.push_back(k);
  if (!near.empty()) {
    msg += "; did you mean ";
    for (size_t i = 0; i < near.size(); ++i) msg += (i ? " or " : "") + near[i];
    msg += "?";
  }
  return msg;
}

std::string yaml_where(const std::string& source, const YAML::Node& node) {
  const YAML::Mark m = node.Mark();
  if (m.line < 0) return source + ": ";
  return source + ":" + std::to_string(m.line + 1) + ": ";
}

const char* yaml_kind(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Sequence: return "a sequence";
    case YAML::NodeType::Null: return "null (no value)";
    default: return "a value";
  }
}

// An element of a YAML sequence, as PyYAML hands it to yacs (config.h).
ConfigValue yaml_item_value(const YAML::Node& n, const std::string& where, const std::string& key,
                            int depth) {
  TGPT_CHECK(depth < 64, where, "config key ", key, ": sequences nested too deeply");
  if (n.IsSequence()) {
    std::vector<ConfigValue> items;
    for (const YAML::Node& x : n) items.push_back(yaml_item_value(x, where, key, depth + 1));
    return ConfigValue::list(std::move(items));
  }
  TGPT_CHECK(n.IsScalar(), where, "config key ", key, ": a sequence element is ", yaml_kind(n),
             "; elements must be numbers, booleans or strings");
  const std::string& text = n.Scalar();
  if (n.Tag() != "?") return ConfigValue::string(text);  // quoted or tagged: a string
  bool b = false;
  if (is_yaml_bool_word(text, b)) return ConfigValue::boolean(b);
  std::optional<ConfigValue> v = parse_python_literal(text);
  if (v && (v->is_number() || v->type == ConfigValue::Type::boolean)) return *v;
  return ConfigValue::string(text);
}

// The value of a leaf key in YAML: a scalar decoded as yacs does, or a sequence.
ConfigValue yaml_leaf_value(const YAML::Node& n, const std::string& where, const std::string& key) {
  if (n.IsSequence()) return yaml_item_value(n, where, key, 0);
  if (n.IsNull()) return ConfigValue{};
  const std::string& text = n.Scalar();
  if (n.Tag() == "tag:yaml.org,2002:str") return ConfigValue::string(text);
  bool b = false;
  if (n.Tag() == "?" && is_yaml_bool_word(text, b)) return ConfigValue::boolean(b);
  return decode_config_value(text);
}

}  // namespace

std::vector<std::string> Config::merge_yaml_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  TGPT_CHECK(f, "cannot read config file '", path, "'");
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  TGPT_CHECK(!f.bad(), "cannot read config file '", path, "'");
  return merge_yaml_string(text, path);
}

std::vector<std::string> Config::merge_yaml_string(const std::string& yaml,
                                                   const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    TGPT_FAIL(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": not valid YAML: ", e.msg);
  }
  std::vector<std::string> set_keys;
  if (!root.IsDefined() || root.IsNull()) return set_keys;  // an empty file changes nothing
  TGPT_CHECK(root.IsMap(), yaml_where(source, root),
             "a config file must be a mapping of keys, got ", yaml_kind(root));
  Config next = *this;  // merged into a copy: the tree is unchanged when a key fails
  // Depth-first over the mappings in file order, checking every key against the tree.
  auto merge_map = [&](auto&& self, const YAML::Node& map, const std::string& prefix) -> void {
    for (auto it = map.begin(); it != map.end(); ++it) {
      const YAML::Node k = it->first;  // copies: the iterator hands out a temporary pair
      const YAML::Node v = it->second;
      const std::string where = yaml_where(source, k);
      TGPT_CHECK(k.IsScalar(), where, "a config key must be a plain name, got ", yaml_kind(k));
      // yacs nests: OPTIM.LR is written OPTIM: {LR: ...} in YAML (dotted names are overrides).
      const std::string& name = k.Scalar();
      const size_t dot = name.find('.');
      TGPT_CHECK(dot == std::string::npos, where, "config key '", name,
                 "': write nested keys as nested mappings (", name.substr(0, dot), ": {",
                 name.substr(dot + 1), ": ...}), not dotted names");
      const std::string key = prefix.empty() ? k.Scalar() : prefix + "." + k.Scalar();
      if (next.is_node(key)) {
        TGPT_CHECK(v.IsMap(), where, "config key ", key,
                   " is a group of keys and takes a mapping, got ", yaml_kind(v));
        self(self, v, key);
        continue;
      }
      TGPT_CHECK(next.contains(key), where, unknown_key_message(next, key));
      TGPT_CHECK(!v.IsMap(), where, "config key ", key, " takes a value (default ",
                 next.get(key).repr(), "), got a mapping");
      const size_t idx = next.index_.at(key);
      next.values_[idx] =
          coerce_value(next.values_[idx], yaml_leaf_value(v, where, key), where, key);
      set_keys.push_back(key);
    }
  };
  try {
    merge_map(merge_map, root, "");
  } catch (const YAML::Exception& e) {  // yaml-cpp's node accessors throw their own type
    TGPT_FAIL(source, ":", e.mark.line + 1, ": cannot read the YAML: ", e.msg);
  }
  *this = std::move(next);
  return set_keys;
}

std::vector<std::string> Config::merge_overrides(const std::vector<std::string>& key_values) {
  TGPT_CHECK(key_values.size() % 2 == 0, "config overrides come in KEY VALUE pairs; got ",
             key_values.size(), " words (the last, '", key_values.back(), "', has no value)");
  Config next = *this;
  std::vector<std::string> set_keys;
  for (size_t k = 0; k < key_values.size(); k += 2) {
    const std::string& key = key_values[k];
    const std::string& text = key_values[k + 1];
    const std::string where = "override " + key + " '" + text + "': ";
    TGPT_CHECK(!next.is_node(key), where, "config key ", key,
               " is a group of keys; override one of its keys (", key, ".<KEY>)");
    TGPT_CHECK(next.contains(key), where, unknown_key_message(next, key));
    const size_t idx = next.index_.at(key);
    next.values_[idx] = coerce_value(next.values_[idx], decode_config_value(text), where, key);
    set_keys.push_back(key);
  }
  *this = std::move(next);
  return set_keys;
}

// ---------------------------------------------------------------------------------------------
// Printing

namespace {

// A string that YAML reads back, as a plain scalar through yacs's decoding, as itself.
bool plain_scalar_reads_back(const std::string& s) {
  if (s.empty() || s.front() == ' ' || s.back() == ' ' || s.back() == ':') return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  if (std::string("-?:,[]{}#&*!|>'\"%@`").find(s.front()) != std::string::npos) return false;
  if (s.find(": ") != std::string::npos || s.find(" #") != std::string::npos) return false;
  bool b = false;
  if (is_yaml_bool_word(s, b) || is_yaml_null_word(s)) return false;
  try {
    if (parse_python_literal(s)) return false;
  } catch (const Error&) {
    return false;
  }
  return true;
}

std::string yaml_double_quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string yaml_value(const ConfigValue& v) {
  using T = ConfigValue::Type;
  if (v.type == T::string) {
    if (plain_scalar_reads_back(v.s)) return v.s;
    if (v.s.empty()) return "''";
    return yaml_double_quoted(python_str_repr(v.s));
  }
  if (!v.is_sequence()) return v.repr();
  const std::string r = v.repr();
  bool plain = r.find(": ") == std::string::npos && r.find(" #") == std::string::npos;
  for (const ConfigValue& x : v.items) {
    if (x.is_sequence()) plain = plain && v.type == T::tuple;
    // In a YAML flow sequence PyYAML reads 1e-05 (no '.') as a string, so yacs would too.
    if (x.type == T::floating && v.type == T::list && x.repr().find('.') == std::string::npos)
      plain = false;
    if (x.type == T::string)
      for (unsigned char c : x.s)
        if (c == '\\' || c == '\'' || c == '"' || c < 0x20 || c == 0x7f) plain = false;
  }
  return plain ? r : yaml_double_quoted(r);
}

}  // namespace

std::string Config::dump(KeyOrder order) const {
  std::string out;
  auto emit = [&](auto&& self, const std::string& prefix, int indent) -> void {
    std::vector<std::string> children;
    for (const std::string& k : keys_) {
      if (!prefix.empty() && k.compare(0, prefix.size() + 1, prefix + ".") != 0) continue;
      const std::string rest = prefix.empty() ? k : k.substr(prefix.size() + 1);
      const std::string child = rest.substr(0, rest.find('.'));
      if (std::find(children.begin(), children.end(), child) == children.end())
        children.push_back(child);
    }
    if (order == KeyOrder::sorted) std::sort(children.begin(), children.end());
    for (const std::string& child : children) {
      const std::string key = prefix.empty() ? child : prefix + "." + child;
      out += std::string(static_cast<size_t>(indent), ' ') + child + ":";
      if (is_node(key)) {
        out += "\n";
        self(self, key, indent + 2);
      } else {
        out += " " + yaml_value(values_[index_.at(key)]) + "\n";
      }
    }
  };
  emit(emit, "", 0);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Defaults (DEFAULTS.md, in its order)

Config Config::defaults() {
  using V = ConfigValue;
  auto B = V::boolean;
  auto I = V::integer;
  auto F = V::floating;
  auto S = [](const char* s) { return V::string(s); };
  auto T = [](std::vector<V> v) { return V::tuple(std::move(v)); };
  auto L = [](std::vector<V> v) { return V::list(std::move(v)); };
  Config c;
  c.add_default("VERSION", I(1));
  c.add_default("OUTPUT_DIR", S("./output"));
  c.add_default("RESUME", S(""));
  c.add_default("SEED", I(1));
  c.add_default("USE_CUDA", B(true));
  c.add_default("VERBOSE", B(true));
  c.add_default("WANDB", B(false));
  c.add_default("INPUT.SIZE", T({I(224), I(224)}));
  c.add_default("INPUT.INTERPOLATION", S("bilinear"));
  c.add_default("INPUT.TRANSFORMS", T({}));
  c.add_default("INPUT.NO_TRANSFORM", B(false));
  c.add_default("INPUT.PIXEL_MEAN", L({F(0.485), F(0.456), F(0.406)}));
  c.add_default("INPUT.PIXEL_STD", L({F(0.229), F(0.224), F(0.225)}));
  c.add_default("INPUT.CROP_PADDING", I(4));
  c.add_default("INPUT.RRCROP_SCALE", T({F(0.08), F(1.0)}));
  c.add_default("INPUT.CUTOUT_N", I(1));
  c.add_default("INPUT.CUTOUT_LEN", I(16));
  c.add_default("INPUT.GN_MEAN", F(0.0));
  c.add_default("INPUT.GN_STD", F(0.15));
  c.add_default("INPUT.RANDAUGMENT_N", I(2));
  c.add_default("INPUT.RANDAUGMENT_M", I(10));
  c.add_default("INPUT.COLORJITTER_B", F(0.4));
  c.add_default("INPUT.COLORJITTER_C", F(0.4));
  c.add_default("INPUT.COLORJITTER_S", F(0.4));
  c.add_default("INPUT.COLORJITTER_H", F(0.1));
  c.add_default("INPUT.RGS_P", F(0.2));
  c.add_default("INPUT.GB_P", F(0.5));
  c.add_default("INPUT.GB_K", I(21));
  c.add_default("INPUT.IMG_VIEWS", I(1));
  c.add_default("INPUT.TEXT_AUG", S("hand_crafted"));
  c.add_default("DATASET.ROOT", S("/mnt/sdb/tanhao/recognition/"));
  c.add_default("DATASET.NAME", S(""));
  c.add_default("DATASET.SOURCE_DOMAINS", T({}));
  c.add_default("DATASET.TARGET_DOMAINS", T({}));
  c.add_default("DATASET.NUM_LABELED", I(-1));
  c.add_default("DATASET.NUM_SHOTS", I(-1));
  c.add_default("DATASET.VAL_PERCENT", F(0.1));
  c.add_default("DATASET.STL10_FOLD", I(-1));
  c.add_default("DATASET.CIFAR_C_TYPE", S(""));
  c.add_default("DATASET.CIFAR_C_LEVEL", I(1));
  c.add_default("DATASET.ALL_AS_UNLABELED", B(false));
  c.add_default("DATALOADER.NUM_WORKERS", I(4));
  c.add_default("DATALOADER.K_TRANSFORMS", I(1));
  c.add_default("DATALOADER.RETURN_IMG0", B(false));
  c.add_default("DATALOADER.TRAIN_X.SAMPLER", S("RandomSampler"));
  c.add_default("DATALOADER.TRAIN_X.BATCH_SIZE", I(32));
  c.add_default("DATALOADER.TRAIN_X.N_DOMAIN", I(0));
  c.add_default("DATALOADER.TRAIN_X.N_INS", I(16));
  c.add_default("DATALOADER.TRAIN_U.SAME_AS_X", B(true));
  c.add_default("DATALOADER.TRAIN_U.SAMPLER", S("RandomSampler"));
  c.add_default("DATALOADER.TRAIN_U.BATCH_SIZE", I(32));
  c.add_default("DATALOADER.TRAIN_U.N_DOMAIN", I(0));
  c.add_default("DATALOADER.TRAIN_U.N_INS", I(16));
  c.add_default("DATALOADER.TEST.SAMPLER", S("SequentialSampler"));
  c.add_default("DATALOADER.TEST.BATCH_SIZE", I(32));
  c.add_default("MODEL.INIT_WEIGHTS", S(""));
  c.add_default("MODEL.BACKBONE.NAME", S(""));
  c.add_default("MODEL.BACKBONE.PRETRAINED", B(true));
  c.add_default("MODEL.HEAD.NAME", S(""));
  c.add_default("MODEL.HEAD.HIDDEN_LAYERS", T({}));
  c.add_default("MODEL.HEAD.ACTIVATION", S("relu"));
  c.add_default("MODEL.HEAD.BN", B(true));
  c.add_default("MODEL.HEAD.DROPOUT", F(0.0));
  c.add_default("MODEL.LORA.RANK", I(1));
  c.add_default("MODEL.LORA.ALPHA", F(0.0));
  c.add_default("MODEL.LORA_V", B(true));
  c.add_default("MODEL.LORA_T", B(true));
  c.add_default("MODEL.LORA_ATTN", B(false));
  c.add_default("MODEL.BONDER.DEPTH", I(1));
  c.add_default("MODEL.BONDER.NUM_Q_CTG", I(32));
  c.add_default("MODEL.BONDER.NUM_Q_CON", I(64));
  c.add_default("OPTIM.NAME", S("adam"));
  c.add_default("OPTIM.LR", F(0.0003));
  c.add_default("OPTIM.WEIGHT_DECAY", F(1e-4));
  c.add_default("OPTIM.MOMENTUM", F(0.9));
  c.add_default("OPTIM.SGD_DAMPNING", I(0));
  c.add_default("OPTIM.SGD_NESTEROV", B(false));
  c.add_default("OPTIM.RMSPROP_ALPHA", F(0.99));
  c.add_default("OPTIM.ADAM_BETA1", F(0.9));
  c.add_default("OPTIM.ADAM_BETA2", F(0.999));
  c.add_default("OPTIM.STAGED_LR", B(false));
  c.add_default("OPTIM.NEW_LAYERS", T({}));
  c.add_default("OPTIM.BASE_LR_MULT", F(0.1));
  c.add_default("OPTIM.LR_SCHEDULER", S("single_step"));
  c.add_default("OPTIM.STEPSIZE", T({I(-1)}));
  c.add_default("OPTIM.GAMMA", F(0.1));
  c.add_default("OPTIM.MAX_EPOCH", I(10));
  c.add_default("OPTIM.WARMUP_EPOCH", I(-1));
  c.add_default("OPTIM.WARMUP_TYPE", S("linear"));
  c.add_default("OPTIM.WARMUP_CONS_LR", F(1e-5));
  c.add_default("OPTIM.WARMUP_MIN_LR", F(1e-5));
  c.add_default("OPTIM.WARMUP_RECOUNT", B(true));
  c.add_default("OPTIM.MAX_ITER", I(12800));
  c.add_default("OPTIM.WARMUP_ITER", I(50));
  c.add_default("OPTIM.WARMUP_LR", F(1e-5));
  c.add_default("TEST.EVALUATOR", S("Classification"));
  c.add_default("TEST.PER_CLASS_RESULT", B(false));
  c.add_default("TEST.COMPUTE_CMAT", B(false));
  c.add_default("TEST.NO_TEST", B(false));
  c.add_default("TEST.SPLIT", S("test"));
  c.add_default("TEST.FINAL_MODEL", S("last_step"));
  c.add_default("TRAIN.PRINT_FREQ", I(10));
  c.add_default("TRAIN.TEST_FREQ", I(5));
  c.add_default("TRAIN.SAVE_FREQ", I(20));
  c.add_default("TRAIN.DIST_TRAIN", B(false));
  c.add_default("TRAIN.SAVE_MODEL", B(true));
  c.add_default("TRAINER.NAME", S(""));
  c.add_default("TRAINER.PREC", S("fp32"));
  c.add_default("TRAINER.CTX_INIT", S(""));
  return c;
}

// ---------------------------------------------------------------------------------------------
// Presets (method.md §4.2 table; shared values §4.1-4.3)

namespace {

struct DatasetPreset {
  const char* name;  // DATASET.NAME
  const char* stem;  // official YAML file name without .yaml
  double lr;
  int64_t max_iter;
  int64_t save_freq;
};

constexpr DatasetPreset kPresets[] = {
    {"Caltech101", "caltech101", 2e-5, 38400, 12800},
    {"DescribableTextures", "dtd", 2e-5, 25600, 12800},
    {"EuroSAT", "eurosat", 5e-5, 51200, 12800},
    {"FGVCAircraft", "fgvc_aircraft", 2e-5, 25600, 25600},
    {"Food101", "food101", 2e-5, 38400, 12800},
    {"ImageNet", "imagenet", 5e-5, 12800, 12800},
    {"OxfordFlowers", "oxford_flowers", 5e-5, 12800, 12800},
    {"OxfordPets", "oxford_pets", 2e-5, 25600, 12800},
    {"StanfordCars", "stanford_cars", 5e-5, 19200, 12800},
    {"SUN397", "sun397", 5e-5, 12800, 12800},
    {"UCF101", "ucf101", 5e-5, 12800, 12800},
};

std::vector<std::pair<std::string, ConfigValue>> preset_values(const DatasetPreset& p) {
  using V = ConfigValue;
  auto S = [](const char* s) { return V::string(s); };
  auto F = V::floating;
  auto I = V::integer;
  return {
      {"DATASET.NAME", S(p.name)},
      {"DATALOADER.TRAIN_X.BATCH_SIZE", I(8)},
      {"DATALOADER.TEST.BATCH_SIZE", I(128)},
      {"DATALOADER.NUM_WORKERS", I(8)},
      {"INPUT.SIZE", V::tuple({I(224), I(224)})},
      {"INPUT.INTERPOLATION", S("bicubic")},
      // CLIP's normalisation (method.md §4.3)
      {"INPUT.PIXEL_MEAN", V::list({F(0.48145466), F(0.4578275), F(0.40821073)})},
      {"INPUT.PIXEL_STD", V::list({F(0.26862954), F(0.26130258), F(0.27577711)})},
      {"INPUT.TRANSFORMS", V::tuple({S("random_resized_crop"), S("random_flip"), S("normalize")})},
      {"INPUT.TEXT_AUG", S("template_mining")},
      {"OPTIM.NAME", S("adamw")},
      {"OPTIM.LR", F(p.lr)},
      {"OPTIM.LR_SCHEDULER", S("cosine")},
      {"OPTIM.WARMUP_TYPE", S("linear")},
      {"OPTIM.MAX_ITER", I(p.max_iter)},
      {"OPTIM.WARMUP_ITER", I(100)},
      {"OPTIM.WARMUP_LR", F(1e-5)},
      {"TRAIN.PRINT_FREQ", I(50)},
      {"TRAIN.TEST_FREQ", I(200)},
      {"TRAIN.SAVE_FREQ", I(p.save_freq)},
      {"TRAIN.DIST_TRAIN", V::boolean(false)},
      {"MODEL.BACKBONE.NAME", S("ViT-B/16")},
      {"MODEL.BONDER.DEPTH", I(1)},
      {"MODEL.BONDER.NUM_Q_CTG", I(32)},
      {"MODEL.BONDER.NUM_Q_CON", I(64)},
      {"TRAINER.NAME", S("TGPT")},
      {"TRAINER.PREC", S("fp32")},
      {"TRAINER.CTX_INIT", S("a photo of a")},
  };
}

}  // namespace

const std::vector<std::string>& preset_dataset_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const DatasetPreset& p : kPresets) v.push_back(p.name);
    return v;
  }();
  return names;
}

const std::vector<std::string>& preset_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> v;
    for (const auto& [k, value] : preset_values(kPresets[0])) v.push_back(k);
    return v;
  }();
  return keys;
}

Config preset_for_dataset(const std::string& name) {
  for (const DatasetPreset& p : kPresets) {
    if (name != p.name && name != p.stem) continue;
    Config c = Config::defaults();
    for (const auto& [k, v] : preset_values(p)) c.set(k, v, "preset " + std::string(p.name));
    return c;
  }
  std::string known;
  for (const DatasetPreset& p : kPresets) known += std::string(known.empty() ? "" : ", ") + p.name;
  TGPT_FAIL("no TGP-T preset for dataset '", name, "'; presets exist for ", known,
            " (or their config names, e.g. oxford_pets); ImageNetV2 and ImageNetSketch are "
            "evaluated with the ImageNet model");
}

Config resolve_config(const std::string& yaml_path, const std::string& dataset,
                      const std::vector<std::string>& overrides) {
  Config c;
  if (!yaml_path.empty()) {
    c = Config::defaults();
    c.merge_yaml_file(yaml_path);
    if (!dataset.empty()) {
      std::string name = dataset;  // a config stem (oxford_pets) names its DATASET.NAME
      for (const DatasetPreset& p : kPresets)
        if (dataset == p.stem) name = p.name;
      const std::string& in_yaml = c.get_string("DATASET.NAME");
      if (in_yaml.empty()) {
        c.set("DATASET.NAME", ConfigValue::string(name), "--dataset");
      } else {
        TGPT_CHECK(in_yaml == name, "--dataset ", dataset, " disagrees with DATASET.NAME ", in_yaml,
                   " of config file '", yaml_path, "'");
      }
    }
  } else if (!dataset.empty()) {
    bool official = false;
    for (const DatasetPreset& p : kPresets) official |= dataset == p.name || dataset == p.stem;
    if (official) {
      c = preset_for_dataset(dataset);
    } else {
      // Another dataset (custom, the synthetic world): TGP-T's shared settings with the LR and
      // MAX_ITER of its shortest official schedule (ImageNet, Flowers, SUN397, UCF101).
      c = Config::defaults();
      const DatasetPreset custom{"", "", 5e-5, 12800, 12800};
      for (const auto& [k, v] : preset_values(custom)) c.set(k, v, "TGP-T's shared settings");
      c.set("DATASET.NAME", ConfigValue::string(dataset), "--dataset");
    }
  } else {
    c = Config::defaults();
  }
  c.merge_overrides(overrides);
  return c;
}

}  // namespace tgpt

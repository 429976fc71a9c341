/*
 * error.h — tgpt's error type and check macros.
 *
 * Every failure that a user can cause (bad shapes, malformed files, wrong dtypes) throws
 * tgpt::Error with a message that names the problem; TGPT_CHECK adds file and line so that
 * internal invariant failures can be traced. Nothing in the engine calls abort() on bad input.
 */
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace tgpt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
inline void append_all(std::ostringstream&) {}
template <typename T, typename... Rest>
void append_all(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append_all(os, rest...);
}
}  // namespace detail

// Concatenates the arguments with operator<< into one string.
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  detail::append_all(os, args...);
  return os.str();
}

[[noreturn]] inline void throw_error(const char* file, int line, const std::string& msg) {
  throw Error(str_cat(msg, " [", file, ":", line, "]"));
}

}  // namespace tgpt

// TGPT_CHECK(cond, parts...): throws tgpt::Error("parts... [file:line]") when cond is false.
#define TGPT_CHECK(cond, ...)                                                   \
  do {                                                                          \
    if (!(cond)) ::tgpt::throw_error(__FILE__, __LINE__, ::tgpt::str_cat(__VA_ARGS__)); \
  } while (0)

// TGPT_FAIL(parts...): throws unconditionally.
#define TGPT_FAIL(...) ::tgpt::throw_error(__FILE__, __LINE__, ::tgpt::str_cat(__VA_ARGS__))

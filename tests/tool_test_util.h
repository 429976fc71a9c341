/*
 * tool_test_util.h — running the command-line tools from the tests: the path of a tool built
 * next to the test binary, shell quoting, and running a command with its output captured.
 */
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace tgpt::test {

// A tool binary in the test binary's folder (build/<name>).
inline std::filesystem::path tool_path(const char* name) {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path() / name;
}

// The path in single quotes for the shell (test paths hold no quote).
inline std::string shell_quote(const std::filesystem::path& p) {
  std::string s(1, '\'');  // appended piecewise: GCC 12's -Wrestrict misfires on "'" + str
  s += p.string();
  s += '\'';
  return s;
}

// Runs a command through the shell; returns its exit status (-1 when it did not exit normally)
// and its stdout and stderr together in *output (the log file lives in log_dir).
inline int run_command(const std::string& cmd, const std::filesystem::path& log_dir,
                       std::string* output) {
  const std::filesystem::path log = log_dir / "cmd.log";
  const int st = std::system((cmd + " > '" + log.string() + "' 2>&1").c_str());
  if (output) {
    std::ifstream f(log, std::ios::binary);
    *output = std::string(std::istreambuf_iterator<char>(f), {});
  }
  if (st == -1 || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

}  // namespace tgpt::test

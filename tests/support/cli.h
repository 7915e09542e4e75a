#pragma once
// Helpers for tests that drive the attnsim binary (ATTNSIM_BINARY) as a user would:
// every simulation then runs in a process of its own.
#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace attnsim::test {

struct CliResult {
  int code;         // exit code (-1 when killed by a signal)
  std::string out;  // stdout and stderr together
};

// Runs a shell command, capturing stdout and stderr.
inline CliResult shell(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// `attnsim ARGS`.
inline CliResult run_attnsim(const std::string& args) { return shell(std::string(ATTNSIM_BINARY) + " " + args); }

inline int count_lines(const std::string& s) {
  int lines = 0;
  for (char c : s) lines += c == '\n';
  return lines;
}

// A temporary directory of this test process, named after `tag`.
inline std::filesystem::path scratch_dir(const std::string& tag) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("attnsim_" + tag + "_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace attnsim::test

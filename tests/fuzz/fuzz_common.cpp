#include "tests/fuzz/fuzz_common.h"

#include "sim/cli/errors.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <typeinfo>
#include <unistd.h>

namespace attnsim::fuzz {

namespace fs = std::filesystem;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    std::string base = fs::temp_directory_path() / "attnsim_fuzz_XXXXXX";
    if (!mkdtemp(base.data())) {
      std::perror("attnsim fuzz: mkdtemp");
      std::abort();
    }
    path = base;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

}  // namespace

const std::string& temp_dir() {
  static const TempDir dir;
  return dir.path;
}

std::string write_temp(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = temp_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) contract_violation("harness", "cannot write " + path);
  return path;
}

std::string write_temp(const std::string& name, const std::string& text) {
  return write_temp(name, reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

void contract_violation(const char* target, const std::string& what) {
  std::fprintf(stderr, "attnsim fuzz %s: %s\n", target, what.c_str());
  std::fflush(stderr);
  std::abort();
}

void unexpected_exception(const char* target, const char* entry_point) {
  std::string what;
  try {
    throw;
  } catch (const nlohmann::json::exception& e) {
    what = std::string("nlohmann::json::exception: ") + e.what();
  } catch (const std::exception& e) {
    what = std::string(typeid(e).name()) + ": " + e.what();
  } catch (...) {
    what = "an exception not derived from std::exception";
  }
  contract_violation(target, std::string(entry_point) + " threw outside its contract: " + what);
}

// What the user sees is report_error's line (sim/cli/errors.h): the message with control
// characters and non-UTF-8 bytes escaped, so an input's newline cannot split it. The
// message must say something, and its printed form must be one line.
void check_one_line(const char* target, const char* entry_point, const std::string& message) {
  if (message.empty()) contract_violation(target, std::string(entry_point) + ": empty error message");
  if (one_line(message).find('\n') != std::string::npos)
    contract_violation(target, std::string(entry_point) + ": error message of more than one line: " + message);
}

}  // namespace attnsim::fuzz

// libsystemc.so's own main() refers to sc_main: the targets link the simulator's libraries
// and have a main() of their own (libFuzzer's, or replay_main.cpp's). Never called.
extern "C" int sc_main(int, char**) { return 1; }

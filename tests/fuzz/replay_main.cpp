// Replays inputs through a fuzz target's LLVMFuzzerTestOneInput without libFuzzer, so the
// corpus and every crasher found stay regression tests in any build (ctest fuzz_replay_*;
// docs/reliability.md#fuzzing).
//
//   fuzz_replay_TARGET [--expect-failure] PATH...
//
// Each PATH is an input file or a directory of them (its regular files, sorted by name).
// Every input runs in a child process of its own, with a time limit, so that a crash shows
// which input it was and does not hide the others. One line per input. Exit status: 1 when
// an input failed (a crash, a sanitizer report, a contract violation, a time-out), 0 when
// all passed. With --expect-failure the other way round: every input must still fail
// (tests/fuzz/known/: crashers whose fix is pending), and one that passes is reported so
// that it moves to tests/fuzz/regressions/. No input at all is an error (exit 2).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "core/sanitizer_options.h"
#include "tests/fuzz/fuzz_common.h"

#ifdef ATTNSIM_SANITIZER_OPTIONS_ASAN
#include <sanitizer/lsan_interface.h>
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));

namespace {

namespace fs = std::filesystem;

constexpr unsigned kSecondsPerInput = 60;

std::vector<std::string> inputs_of(const std::string& path) {
  std::vector<std::string> out;
  if (fs::is_directory(path)) {
    for (const auto& e : fs::directory_iterator(path))
      if (e.is_regular_file()) out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
  } else if (fs::is_regular_file(path)) {
    out.push_back(path);
  } else {
    std::fprintf(stderr, "fuzz replay: %s: no such file or directory\n", path.c_str());
    std::exit(2);
  }
  return out;
}

// "" when the input passed, else how it failed.
std::string replay(const std::string& path) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return "cannot fork";
  if (pid == 0) {
    alarm(kSecondsPerInput);
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) _exit(3);
    // A private copy, as libFuzzer passes it: an overrun past its end is caught by ASan.
    std::vector<uint8_t> data(bytes.begin(), bytes.end());
    LLVMFuzzerTestOneInput(data.data(), data.size());
    std::fflush(nullptr);
#ifdef ATTNSIM_SANITIZER_OPTIONS_ASAN
    // _exit skips LeakSanitizer's check at exit (and exit would remove the shared
    // temporary directory): check this input's leaks here, as libFuzzer does.
    if (__lsan_do_recoverable_leak_check() != 0) _exit(4);
#endif
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) {
    if (WEXITSTATUS(status) == 0) return "";
    if (WEXITSTATUS(status) == 3) return "cannot read the input";
    if (WEXITSTATUS(status) == 4) return "memory leaked (LeakSanitizer)";
    return "exit status " + std::to_string(WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return sig == SIGALRM ? "time-out (" + std::to_string(kSecondsPerInput) + " s)"
                          : "signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  return "unknown status";
}

}  // namespace

int main(int argc, char** argv) {
  bool expect_failure = false;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--expect-failure") == 0)
      expect_failure = true;
    else
      paths.push_back(argv[i]);
  }
  std::vector<std::string> files;
  for (const std::string& p : paths) {
    const std::vector<std::string> f = inputs_of(p);
    files.insert(files.end(), f.begin(), f.end());
  }
  if (files.empty()) {
    std::fprintf(stderr, "fuzz replay: no inputs (usage: %s [--expect-failure] PATH...)\n", argv[0]);
    return 2;
  }
  (void)attnsim::fuzz::temp_dir();  // made here, so that the children share it and it goes at exit
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  int bad = 0;
  for (const std::string& f : files) {
    const std::string failure = replay(f);
    if (expect_failure) {
      if (failure.empty()) {
        ++bad;
        std::printf("PASSES NOW  %s: fixed? move it to tests/fuzz/regressions/\n", f.c_str());
      } else {
        std::printf("still fails %s (%s)\n", f.c_str(), failure.c_str());
      }
    } else if (failure.empty()) {
      std::printf("ok          %s\n", f.c_str());
    } else {
      ++bad;
      std::printf("FAILED      %s (%s)\n", f.c_str(), failure.c_str());
    }
    std::fflush(stdout);
  }
  std::printf("%zu inputs, %d %s\n", files.size(), bad, expect_failure ? "pass now" : "failed");
  return bad == 0 ? 0 : 1;
}

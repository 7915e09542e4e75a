#pragma once
// Records the fsync and rename calls a test executable makes, to check that outputs are
// written durably (temp file fsynced, renamed into place, directory fsynced). Include it
// in exactly one source file of a test executable: it defines libc's fsync and rename,
// which take precedence over libc's for the whole executable and call libc's through
// dlsym(RTLD_NEXT).
#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <string>
#include <vector>

namespace attnsim::test {

// Calls made while a SyncLog is alive: "fsync PATH" and "rename FROM -> TO".
inline std::vector<std::string>* g_sync_calls = nullptr;

struct SyncLog {
  std::vector<std::string> calls;
  SyncLog() { g_sync_calls = &calls; }
  ~SyncLog() { g_sync_calls = nullptr; }
};

inline std::string fd_path(int fd) {
  char buf[PATH_MAX];
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = readlink(link.c_str(), buf, sizeof buf - 1);
  return n < 0 ? "?" : std::string(buf, static_cast<size_t>(n));
}

}  // namespace attnsim::test

extern "C" int fsync(int fd) {
  using Fn = int (*)(int);
  static const Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "fsync"));
  if (attnsim::test::g_sync_calls) attnsim::test::g_sync_calls->push_back("fsync " + attnsim::test::fd_path(fd));
  return real(fd);
}

extern "C" int rename(const char* from, const char* to) noexcept {
  using Fn = int (*)(const char*, const char*);
  static const Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "rename"));
  if (attnsim::test::g_sync_calls)
    attnsim::test::g_sync_calls->push_back(std::string("rename ") + from + " -> " + to);
  return real(from, to);
}

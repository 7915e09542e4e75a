// Claims on sweep points: exclusive creation, staleness, take-over and release.
#include "sim/sweep/claims.h"

#include "core/file_io.h"
#include "core/json_input.h"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace attnsim {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxClaimBytes = 65536;

// Field 22 of /proc/<pid>/stat: the process's start time in clock ticks since boot; 0
// when unknown. The command name (field 2) is in parentheses and may hold spaces.
uint64_t process_start(pid_t pid) {
  std::string stat;
  try {
    stat = read_input_file("/proc/" + std::to_string(pid) + "/stat", "process status", kMaxClaimBytes);
  } catch (const InputFileError&) {
    return 0;
  }
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  const char* p = stat.c_str() + paren + 1;
  for (int field = 3; field < 22 && *p; ++field) {  // skip fields 3..21
    while (*p == ' ') ++p;
    while (*p && *p != ' ') ++p;
  }
  return std::strtoull(p, nullptr, 10);
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<ClaimOwner> parse_claim(const std::string& text) {
  const json j = parse_json_or_discarded(text);
  if (!j.is_object() || !j.contains("host") || !j["host"].is_string() || !j.contains("pid") ||
      !j["pid"].is_number_integer())
    return std::nullopt;
  ClaimOwner o;
  o.host = j["host"].get<std::string>();
  o.pid = j["pid"].get<pid_t>();
  if (j.contains("pid_start") && j["pid_start"].is_number_unsigned()) o.pid_start = j["pid_start"].get<uint64_t>();
  if (j.contains("started") && j["started"].is_string()) o.started = j["started"].get<std::string>();
  return o;
}

// A claim file: whether it exists and, when it names one, its owner.
struct ClaimFile {
  bool exists = false;
  std::optional<ClaimOwner> owner;
};

ClaimFile read_claim(const std::string& path) {
  try {
    return {true, parse_claim(read_input_file(path, "claim", kMaxClaimBytes))};
  } catch (const InputFileError&) {
    std::error_code ec;
    return {fs::exists(fs::symlink_status(path, ec)), std::nullopt};
  }
}

bool is_stale(const ClaimOwner& o) { return o.host == this_host() && !local_process_alive(o.pid, o.pid_start); }

const ClaimOwner& me() {
  static const ClaimOwner self = [] {
    ClaimOwner o;
    o.host = this_host();
    o.pid = getpid();
    o.pid_start = process_start(o.pid);
    return o;
  }();
  return self;
}

bool is_mine(const ClaimOwner& o) { return o.host == me().host && o.pid == me().pid && o.pid_start == me().pid_start; }

std::string claim_text(const std::string& hash) {
  return json{{"schema", kSweepClaimSchema}, {"hash", hash},          {"host", me().host},
              {"pid", me().pid},            {"pid_start", me().pid_start}, {"started", now_utc()}}
             .dump() +
         "\n";
}

bool write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// create_exclusive on a file system without hard links: for a moment the claim is empty
// (others then see an owner it does not name, and leave the point alone).
bool create_without_link(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0 && errno == EEXIST) return false;
  if (fd < 0) throw SweepError(path + ": cannot create the claim: " + std::strerror(errno));
  const bool ok = write_all(fd, text);
  ::close(fd);
  if (!ok) throw SweepError(path + ": cannot write the claim");
  return true;
}

// Creates `path` holding `text` unless it exists. The text goes to a temp file that is then
// hard-linked to `path`: link() fails when the path exists, atomically, also over NFS, and
// nobody ever sees a claim without its owner. As open(2) advises for NFS, a link() whose
// reply was lost is recognized by the temp file's link count of 2. File systems without
// hard links get an O_CREAT|O_EXCL create instead.
bool create_exclusive(const std::string& path, const std::string& text) {
  const std::string tmp = temp_path_for(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw SweepError(path + ": cannot create the claim: " + std::strerror(errno));
  const bool written = write_all(fd, text);
  int linked = written ? ::link(tmp.c_str(), path.c_str()) : -1;
  const int err = errno;
  struct stat st {};
  if (written && linked != 0 && ::fstat(fd, &st) == 0 && st.st_nlink == 2) linked = 0;
  ::close(fd);
  ::unlink(tmp.c_str());
  if (!written) throw SweepError(path + ": cannot create the claim: " + std::strerror(err));
  if (linked == 0) return true;
  if (err == EEXIST) return false;
  if (err != EPERM && err != EOPNOTSUPP && err != EMLINK) throw SweepError(path + ": cannot create the claim: " + std::strerror(err));
  return create_without_link(path, text);
}

// Removes the stale claim at `path`, unless it changed since it was judged stale. Whoever
// removes a stale claim holds an exclusive flock on it and checks, under the lock, that the
// path still names the locked file and that its owner is still dead: two runners taking
// over the same claim cannot both remove it (the second would remove the first's new one).
void remove_stale(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  if (::flock(fd, LOCK_EX) == 0) {
    struct stat held {}, named {};
    if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &named) == 0 && held.st_dev == named.st_dev &&
        held.st_ino == named.st_ino) {
      const std::optional<ClaimOwner> owner = read_claim(path).owner;
      if (owner && is_stale(*owner)) ::unlink(path.c_str());
    }
  }
  ::close(fd);  // releases the lock
}

}  // namespace

std::string ClaimOwner::text() const {
  return "pid " + std::to_string(pid) + " on " + host + (started.empty() ? "" : " since " + started);
}

bool local_process_alive(pid_t pid, uint64_t start) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  return start == 0 || process_start(pid) == start;
}

ClaimResult claim_point(const SweepDir& dir, const std::string& hash) {
  const std::string path = dir.claim(hash);
  const std::string text = claim_text(hash);
  std::error_code ignored;
  fs::create_directories(fs::path(path).parent_path(), ignored);  // a DIR of an older attnsim has none
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (create_exclusive(path, text)) return {ClaimState::claimed, me()};
    const ClaimFile held = read_claim(path);
    if (!held.exists) continue;  // released meanwhile
    if (held.owner && is_mine(*held.owner)) return {ClaimState::claimed, me()};
    if (held.owner && is_stale(*held.owner)) {
      std::fprintf(stderr, "attnsim: %s: its owner, %s, is gone; taking the point over\n", path.c_str(),
                   held.owner->text().c_str());
      remove_stale(path);
      continue;
    }
    const bool local = held.owner && held.owner->host == this_host();
    return {local ? ClaimState::held_local : ClaimState::held_other, held.owner};
  }
  return {ClaimState::held_local, std::nullopt};  // contended throughout: try again later
}

std::optional<ClaimResult> claim_holder(const SweepDir& dir, const std::string& hash) {
  const ClaimFile held = read_claim(dir.claim(hash));
  if (!held.exists) return std::nullopt;
  if (!held.owner || held.owner->host != this_host()) return ClaimResult{ClaimState::held_other, held.owner};
  return ClaimResult{is_stale(*held.owner) ? ClaimState::stale : ClaimState::held_local, held.owner};
}

void release_point(const SweepDir& dir, const std::string& hash) {
  const std::string path = dir.claim(hash);
  const std::optional<ClaimOwner> owner = read_claim(path).owner;
  if (owner && is_mine(*owner)) ::unlink(path.c_str());
}

}  // namespace attnsim

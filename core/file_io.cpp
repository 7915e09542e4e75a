#include "core/file_io.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <filesystem>
#include <stdexcept>
#include <unistd.h>

namespace attnsim {

namespace {

[[noreturn]] void fail_write(const std::string& path, int err) {
  throw IoError(path + ": cannot write: " + std::strerror(err));
}

// fsync of a file or directory by path. A directory some file systems cannot fsync
// (EINVAL) is not an error: there is nothing more to make durable.
int sync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return errno;
  int err = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  if (directory && err == EINVAL) err = 0;
  return err;
}

std::string directory_of(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

}  // namespace

const std::string& this_host() {
  static const std::string host = [] {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return std::string("unknown-host");
    return std::string(buf);
  }();
  return host;
}

std::string temp_path_for(const std::string& path, pid_t pid) {
  return path + ".tmp." + this_host() + "." + std::to_string(pid);
}

std::string temp_path_for(const std::string& path) { return temp_path_for(path, getpid()); }

std::optional<TempOwner> temp_file_owner(const std::string& file_name) {
  const size_t last_dot = file_name.rfind('.');
  if (last_dot == std::string::npos || last_dot + 1 == file_name.size()) return std::nullopt;
  const std::string pid_text = file_name.substr(last_dot + 1);
  if (pid_text.find_first_not_of("0123456789") != std::string::npos || pid_text.size() > 9) return std::nullopt;
  const size_t tmp = file_name.rfind(".tmp.", last_dot);
  if (tmp == std::string::npos || tmp + 5 >= last_dot) return std::nullopt;
  return TempOwner{file_name.substr(tmp + 5, last_dot - tmp - 5), static_cast<pid_t>(std::stol(pid_text))};
}

// The data must be on disk before the rename makes it the output, and the rename itself
// (the directory entry) before we report success: otherwise a crash can leave an empty
// or truncated file under the final name.
void commit_file(const std::string& tmp, const std::string& path) {
  int err = sync_path(tmp, false);
  if (err == 0 && std::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    std::remove(tmp.c_str());
    fail_write(path, err);
  }
  if ((err = sync_path(directory_of(path), true)) != 0) fail_write(path, err);
}

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::filesystem::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path(), ec);
  if (ec) throw IoError(path + ": cannot create its directory: " + ec.message());
  const std::string tmp = temp_path_for(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail_write(path, errno);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      std::remove(tmp.c_str());
      fail_write(path, err);
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    fail_write(path, err);
  }
  commit_file(tmp, path);
}

namespace {

std::string size_text(uint64_t bytes) {
  if (bytes % (uint64_t{1} << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

// Closes the descriptor when the read is over, whichever way.
struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

}  // namespace

std::string read_input_file(const std::string& path, const std::string& what, uint64_t max_bytes) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw InputFileError(path + ": cannot open " + what);
  const FdCloser closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) throw InputFileError(path + ": not a regular file");
  const auto too_large = [&](uint64_t bytes) {
    return InputFileError(path + ": too large for a " + what + " (" + std::to_string(bytes) + " bytes, limit " +
                          size_text(max_bytes) + ")");
  };
  if (static_cast<uint64_t>(st.st_size) > max_bytes) throw too_large(static_cast<uint64_t>(st.st_size));
  // Read at most one byte past the cap: a file growing while read is refused too.
  std::string text;
  char buf[65536];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw InputFileError(path + ": cannot read " + what + ": " + std::strerror(errno));
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > max_bytes) throw too_large(text.size());
  }
  return text;
}

}  // namespace attnsim

#pragma once
// Output files are written whole or not at all, and durably: a temporary file beside the
// target, fsynced, renamed over the target, then the directory fsynced, so neither a
// failed run nor a machine crash leaves a partial file (after a crash the target is the
// old file or the whole new one).
#include "core/errors.h"

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <sys/types.h>

namespace attnsim {

// This machine's host name (gethostname), as written in temp-file names and claims.
const std::string& this_host();

// The temp file `pid` on this host writes `path` under: <path>.tmp.<host>.<pid>. The
// name says who wrote it, so a sweep runner can tell a dead local writer's leftover from a
// live writer's file, here or on another host sharing the directory.
std::string temp_path_for(const std::string& path, pid_t pid);
std::string temp_path_for(const std::string& path);  // this process

// Host and pid of a temp file name made by temp_path_for; nullopt for any other name
// (including the host-less <path>.tmp.<pid> of older versions).
struct TempOwner {
  std::string host;
  pid_t pid;
};
std::optional<TempOwner> temp_file_owner(const std::string& file_name);

// Makes the finished file `tmp` the output `path`: fsync, rename over `path`, fsync of
// the directory. On failure removes `tmp` and throws IoError (core/errors.h)
// "<path>: cannot write: <reason>".
void commit_file(const std::string& tmp, const std::string& path);

// Writes `text` to `path` atomically and durably, creating missing parent directories.
// Throws IoError naming the path.
void write_file_atomically(const std::string& path, const std::string& text);

// ---- reading input files --------------------------------------------------------------------

// Size caps of the files attnsim reads whole, far above any legitimate file (the largest
// preset config is 1.3 KiB, the stats of a 24-layer, 16-head trace 130 KiB) and far below
// what would exhaust memory: configs, sweep files and technology tables; and the files
// attnsim itself writes and reads back (stats, sweep manifests, failure records).
inline constexpr uint64_t kMaxConfigBytes = uint64_t{64} << 20;
inline constexpr uint64_t kMaxStatsBytes = uint64_t{256} << 20;

// An input file that cannot be read: one line naming the file (class io, core/errors.h).
class InputFileError : public IoError {
 public:
  using IoError::IoError;
};

// The whole content of the input file `path`, a `what` ("config file"). Refuses, without
// reading or waiting, anything but a regular file (/dev/zero, a FIFO, a directory) and a
// file over `max_bytes`, so that no input makes attnsim read without end. Throws
// InputFileError "<path>: cannot open <what>", "<path>: not a regular file" or
// "<path>: too large for a <what> (<n> bytes, limit <max>)".
std::string read_input_file(const std::string& path, const std::string& what, uint64_t max_bytes);

}  // namespace attnsim

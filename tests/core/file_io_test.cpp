// Atomic and durable output files (core/file_io.h): the temp file is fsynced, renamed
// into place and the directory fsynced, so a machine crash leaves the old file or the
// whole new one; the temp file's name says which host and process wrote it.
#include "core/file_io.h"
#include "workloads/safetensors.h"

#include "tests/support/sync_log.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace attnsim;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("attnsim_file_io_" + std::to_string(getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return fs::canonical(dir);
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string host() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

// fsync of the temp file, its rename over `target`, fsync of the target's directory.
std::vector<std::string> durable_sequence(const fs::path& target) {
  const std::string tmp = target.string() + ".tmp." + host() + "." + std::to_string(getpid());
  return {"fsync " + tmp, "rename " + tmp + " -> " + target.string(), "fsync " + target.parent_path().string()};
}

}  // namespace

TEST_CASE("temp files are named after the writing host and process") {
  CHECK(temp_path_for("/d/p.json") == "/d/p.json.tmp." + host() + "." + std::to_string(getpid()));
  CHECK(temp_path_for("p.json", 42) == "p.json.tmp." + host() + ".42");
  const auto owner = temp_file_owner("abc.json.tmp.node-7.cluster.org.1234");
  REQUIRE(owner);
  CHECK(owner->host == "node-7.cluster.org");
  CHECK(owner->pid == 1234);
  CHECK_FALSE(temp_file_owner("abc.json"));
  CHECK_FALSE(temp_file_owner("abc.json.tmp.1234"));  // no host: not ours to judge
  CHECK_FALSE(temp_file_owner("abc.json.tmp.host.12x"));
}

TEST_CASE("write_file_atomically fsyncs the temp file, renames it, then fsyncs the directory") {
  const fs::path dir = scratch("durable");
  const fs::path target = dir / "sub" / "out.json";
  test::SyncLog log;
  write_file_atomically(target.string(), "{\"a\": 1}\n");
  CHECK(log.calls == durable_sequence(target));
  CHECK(slurp(target) == "{\"a\": 1}\n");
  CHECK(std::distance(fs::directory_iterator(dir / "sub"), fs::directory_iterator()) == 1);  // no temp file left
}

TEST_CASE("a failed atomic write names the path and leaves neither temp file nor output") {
  const fs::path dir = scratch("failed");
  fs::create_directories(dir / "occupied");  // the rename onto a directory fails
  CHECK_THROWS_WITH(write_file_atomically((dir / "occupied").string(), "x"),
                    (dir / "occupied").string() + ": cannot write: Is a directory");
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
  CHECK(fs::is_empty(dir / "occupied"));
}

TEST_CASE("a written trace is durable too") {
  const fs::path dir = scratch("trace");
  const fs::path target = dir / "t.safetensors";
  SafetensorsWriter w;
  w.add_float("x", DType::F32, {1}, {1});
  test::SyncLog log;
  w.write(target.string());
  CHECK(log.calls == durable_sequence(target));
}

// ---- bounded reads of input files ---------------------------------------------------------

namespace {

std::string read_error(const std::string& path, uint64_t max_bytes = 1 << 20) {
  try {
    read_input_file(path, "config file", max_bytes);
  } catch (const InputFileError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("read_input_file reads a regular file whole") {
  const fs::path dir = scratch("read");
  std::ofstream(dir / "c.json") << "{\"schema\": 1}\n";
  CHECK(read_input_file((dir / "c.json").string(), "config file", 14) == "{\"schema\": 1}\n");  // exactly the cap
}

TEST_CASE("read_input_file refuses devices, FIFOs, directories and files over the cap") {
  const fs::path dir = scratch("refuse");
  CHECK(read_error("/dev/zero") == "/dev/zero: not a regular file");
  CHECK(read_error("/dev/null") == "/dev/null: not a regular file");
  const std::string fifo = (dir / "fifo").string();
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  CHECK(read_error(fifo) == fifo + ": not a regular file");  // and no wait for a writer
  CHECK(read_error(dir.string()) == dir.string() + ": not a regular file");
  std::ofstream(dir / "big.json") << "{\"schema\": 12}\n";  // 15 bytes
  CHECK(read_error((dir / "big.json").string(), 14) ==
        (dir / "big.json").string() + ": too large for a config file (15 bytes, limit 14 bytes)");
  CHECK(read_error((dir / "absent.json").string()) == (dir / "absent.json").string() + ": cannot open config file");
}

TEST_CASE("input size limits are written in MiB") {
  const fs::path dir = scratch("sparse");
  const std::string big = (dir / "big.json").string();
  std::ofstream(big).close();
  fs::resize_file(big, kMaxConfigBytes + 1);  // sparse: no disk space used
  CHECK(read_error(big, kMaxConfigBytes) == big + ": too large for a config file (67108865 bytes, limit 64 MiB)");
}

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

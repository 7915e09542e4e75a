// Every file attnsim reads is refused, with one line naming it, when it is not a regular
// file (/dev/zero, a FIFO, a directory) or larger than its size cap: no endless read, no
// wait for a FIFO writer, no output file. The commands run under a memory bound and
// `timeout`, so a regression fails the test instead of eating the machine's memory.
#include "tests/support/cli.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <sys/stat.h>

namespace fs = std::filesystem;
using attnsim::test::CliResult;

namespace {

fs::path scratch(const std::string& name) {
  const fs::path dir = attnsim::test::scratch_dir("limits") / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// `attnsim ARGS` with at most 4 GiB of memory and 20 s. Under AddressSanitizer (the
// asan preset: this test and ATTNSIM_BINARY are both sanitized) `ulimit -v` would stop
// ASan reserving its shadow memory, so the bound is ASan's own hard_rss_limit_mb, which
// kills the process with a report (and test_asan.sh fails on any report).
#if defined(__SANITIZE_ADDRESS__)
const char* const kMemoryBound = "ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}hard_rss_limit_mb=4096\" ";
#else
const char* const kMemoryBound = "ulimit -v 4194304; ";
#endif

CliResult bounded(const std::string& args) {
  return attnsim::test::shell(std::string(kMemoryBound) + "timeout 20 " + std::string(ATTNSIM_BINARY) + " " + args);
}

std::string tiny_trace(const fs::path& dir) {
  const std::string t = (dir / "t.safetensors").string();
  REQUIRE(attnsim::test::run_attnsim("trace synth --out " + t + " --layers 1 --heads 2 --tokens 32 --head-dim 16 --seed 5")
              .code == 0);
  return t;
}

std::string fifo(const fs::path& path) {
  REQUIRE(mkfifo(path.c_str(), 0600) == 0);
  return path.string();
}

// A sparse file of `bytes` bytes: as large as asked, no disk space used.
std::string sparse(const fs::path& path, uintmax_t bytes) {
  std::ofstream(path).close();
  fs::resize_file(path, bytes);
  return path.string();
}

}  // namespace

TEST_CASE("a sweep file that is a device or a FIFO is refused with one line") {
  const fs::path dir = scratch("sweep");
  CliResult r = bounded("sweep /dev/zero --dry-run");
  CHECK(r.code == 6);  // I/O (docs/reliability.md#exit-codes)
  CHECK(r.out == "attnsim: /dev/zero: not a regular file\n");
  const std::string f = fifo(dir / "sweep.json");
  r = bounded("sweep " + f + " --out " + (dir / "out").string());
  CHECK(r.code == 6);  // I/O (docs/reliability.md#exit-codes)
  CHECK(r.out == "attnsim: " + f + ": not a regular file\n");
  CHECK_FALSE(fs::exists(dir / "out"));
}

TEST_CASE("a sweep whose base or baseline is /dev/zero names the file and the key") {
  const fs::path dir = scratch("base");
  tiny_trace(dir);
  std::ofstream(dir / "s.json") << R"({"schema": "attnsim.sweep/1", "base": "/dev/zero", "traces": ["t.safetensors"]})";
  CliResult r = bounded("sweep " + (dir / "s.json").string() + " --dry-run");
  CHECK(r.code == 6);  // I/O (docs/reliability.md#exit-codes)
  CHECK(r.out == "attnsim: /dev/zero: not a regular file (" + (dir / "s.json").string() + ": base)\n");
  std::ofstream(dir / "s.json") << R"({"schema": "attnsim.sweep/1", "base": {"schema": "attnsim.config/1"},
    "baseline": "big.json", "traces": ["t.safetensors"]})";
  sparse(dir / "big.json", (64u << 20) + 1);
  r = bounded("sweep " + (dir / "s.json").string() + " --dry-run");
  CHECK(r.code == 6);  // I/O (docs/reliability.md#exit-codes)
  CHECK(r.out == "attnsim: " + (dir / "big.json").string() +
                     ": too large for a config file (67108865 bytes, limit 64 MiB) (" + (dir / "s.json").string() +
                     ": baseline)\n");
}

TEST_CASE("a config that is a FIFO, a directory or over 64 MiB is refused and nothing is written") {
  const fs::path dir = scratch("config");
  const std::string trace = tiny_trace(dir);
  const std::string out = (dir / "stats.json").string();
  const std::string f = fifo(dir / "c.json");
  CliResult r = bounded("run -q --config " + f + " --trace " + trace + " --out " + out);
  CHECK(r.code == 6);  // I/O (docs/reliability.md#exit-codes)
  CHECK(r.out == "attnsim: " + f + ": not a regular file\n");
  r = bounded("run -q --config " + dir.string() + " --trace " + trace + " --out " + out);
  CHECK(r.code == 6);  // I/O (docs/reliability.md#exit-codes)
  CHECK(r.out == "attnsim: " + dir.string() + ": not a regular file\n");
  const std::string big = sparse(dir / "big.json", (64u << 20) + 1);
  r = bounded("run -q --config " + big + " --trace " + trace + " --out " + out);
  CHECK(r.code == 6);  // I/O (docs/reliability.md#exit-codes)
  CHECK(r.out == "attnsim: " + big + ": too large for a config file (67108865 bytes, limit 64 MiB)\n");
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("a technology table that is /dev/zero is refused") {
  const fs::path dir = scratch("tech");
  const std::string trace = tiny_trace(dir);
  const CliResult r = bounded("run -q --trace " + trace + " --set energy.tech=/dev/zero --out " + (dir / "s.json").string());
  CHECK(r.code == 6);  // I/O (docs/reliability.md#exit-codes)
  CHECK(r.out == "attnsim: /dev/zero: not a regular file\n");
  CHECK_FALSE(fs::exists(dir / "s.json"));
}

TEST_CASE("compare refuses stats files that are devices, FIFOs or over 256 MiB") {
  const fs::path dir = scratch("compare");
  const std::string trace = tiny_trace(dir);
  const std::string stats = (dir / "s.json").string();
  REQUIRE(attnsim::test::run_attnsim("run -q --trace " + trace + " --out " + stats).code == 0);
  CliResult r = bounded("compare " + stats + " /dev/zero");
  CHECK(r.code == 6);  // I/O (docs/reliability.md#exit-codes)
  CHECK(r.out == "attnsim: compare: /dev/zero: not a regular file\n");
  const std::string f = fifo(dir / "fifo.json");
  r = bounded("compare " + f + " " + stats);
  CHECK(r.code == 6);  // I/O (docs/reliability.md#exit-codes)
  CHECK(r.out == "attnsim: compare: " + f + ": not a regular file\n");
  const std::string big = sparse(dir / "big.json", (256u << 20) + 1);
  r = bounded("compare " + stats + " " + big);
  CHECK(r.code == 6);  // I/O (docs/reliability.md#exit-codes)
  CHECK(r.out == "attnsim: compare: " + big + ": too large for a stats file (268435457 bytes, limit 256 MiB)\n");
}

TEST_CASE("merge and report refuse a manifest that is a FIFO") {
  const fs::path dir = scratch("manifest");
  const std::string f = fifo(dir / "sweep.json");
  CliResult r = bounded("merge " + dir.string());
  CHECK(r.code == 6);  // I/O (docs/reliability.md#exit-codes)
  CHECK(r.out == "attnsim: " + f + ": not a regular file\n");
  r = bounded("report " + dir.string());
  CHECK(r.code == 6);  // I/O (docs/reliability.md#exit-codes)
  CHECK(r.out == "attnsim: " + f + ": not a regular file\n");
  CHECK_FALSE(fs::exists(dir / "summary.csv"));
}

TEST_CASE("a trace that is a FIFO is refused without waiting for a writer") {
  const fs::path dir = scratch("trace");
  const std::string f = fifo(dir / "t.safetensors");
  const CliResult r = bounded("run -q --trace " + f + " --out " + (dir / "s.json").string());
  CHECK(r.code == 6);  // I/O (docs/reliability.md#exit-codes)
  CHECK(r.out == "attnsim: " + f + ": not a regular file\n");
  CHECK_FALSE(fs::exists(dir / "s.json"));
}

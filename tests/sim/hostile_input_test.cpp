// Hostile inputs found by the reliability review (issue 13) as a user meets them: each is
// refused with exactly one line naming the file and the JSON path or tensor, a non-zero
// exit and no output file - never a crash.
#include "sim/cli/errors.h"
#include "sim/config.h"
#include "tests/support/cli.h"
#include "tests/workloads/trace_test_files.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;

namespace {

using attnsim::test::CliResult;
using attnsim::test::run_attnsim;

fs::path scratch() { return attnsim::test::scratch_dir("hostile"); }

std::string write(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  return path.string();
}

// A JSON list nested `depth` levels deep around 1: [[[1]]] for 3.
std::string nested_list(int depth) { return std::string(depth, '[') + "1" + std::string(depth, ']'); }

const std::string kDemo = std::string(ATTNSIM_SOURCE_DIR) + "/workloads/demo.safetensors";

// The exit codes of the error classes (docs/reliability.md#exit-codes).
constexpr int kUsage = 2, kConfig = 3, kTrace = 4, kSimulation = 5, kIo = 6;

// A config file `name` holding `text`, run on the demo trace: exit 3 (config), exactly the
// one line "attnsim: FILE: `message`", and no stats file.
void check_config_refused(const std::string& name, const std::string& text, const std::string& message) {
  const fs::path dir = scratch();
  const std::string cfg = write(dir / name, text);
  const fs::path out = dir / "stats.json";
  const CliResult r = run_attnsim("run --config " + cfg + " --trace " + kDemo + " --out " + out.string());
  CHECK(r.code == kConfig);
  CHECK(r.out == "attnsim: " + cfg + ": " + message + "\n");
  CHECK_FALSE(fs::exists(out));
}

}  // namespace

TEST_CASE("a trace header whose shape is nested 100000 deep is one line, no crash") {
  const std::string t = (scratch() / "deep.safetensors").string();
  attnsim_test::write_raw_safetensors(
      t, R"({"layers.0.q": {"dtype": "F32", "shape": )" + nested_list(100000) + R"(, "data_offsets": [0, 0]}})", {});
  const CliResult r = run_attnsim("trace info " + t);
  CHECK(r.code == kTrace);
  CHECK(r.out == "attnsim: " + t + ": layers.0.q.shape: nested deeper than 64 levels\n");
}

TEST_CASE("a config value nested 100000 deep is one line naming the key, no output") {
  check_config_refused("deep.json",
                       R"({"schema": "attnsim.config/1", "comparator": {"gamma": )" + nested_list(100000) + "}}",
                       "comparator.gamma: nested deeper than 64 levels");
}

TEST_CASE("a --set value nested 50000 deep is one line naming the key") {
  // 100 KB: under the kernel's 128 KiB limit for one argument.
  const CliResult r = run_attnsim("run --trace " + kDemo + " --set 'comparator.gamma=" + nested_list(50000) + "'");
  CHECK(r.code == kConfig);
  CHECK(r.out == "attnsim: --set comparator.gamma: nested deeper than 64 levels\n");
}

TEST_CASE("a sweep grid value nested 100000 deep is one line naming the key (dry run)") {
  const std::string sweep = write(scratch() / "deep-sweep.json",
                                  R"({"schema": "attnsim.sweep/1", "base": {"schema": "attnsim.config/1"},
                                      "traces": [")" + kDemo + R"("], "grid": {"qk_unit.lanes": [)" +
                                      nested_list(100000) + "]}}");
  const CliResult r = run_attnsim("sweep " + sweep + " --dry-run");
  CHECK(r.code == kConfig);
  CHECK(r.out == "attnsim: " + sweep + ": grid.qk_unit.lanes: nested deeper than 64 levels\n");
}

TEST_CASE("a stats file nested 100000 deep is one line naming the file (compare)") {
  const fs::path dir = scratch();
  const std::string deep = write(dir / "deep-stats.json", R"({"schema": "attnsim.stats/1", "cycles": )" + nested_list(100000) + "}");
  const CliResult r = run_attnsim("compare " + deep + " " + deep);
  CHECK(r.code == kTrace);
  CHECK(r.out == "attnsim: compare: " + deep + ": cycles: nested deeper than 64 levels\n");
}

// ---- messages that name the file and the key (issue 13, item 5) -------------------------

TEST_CASE("a --set value that is not UTF-8 is one line naming the key") {
  const CliResult r = run_attnsim("run --trace " + kDemo + " --set 'qk_unit.lanes=\x95'");
  CHECK(r.code == kConfig);
  CHECK(r.out == "attnsim: --set qk_unit.lanes: value is not valid UTF-8 (byte 0x95 at offset 0)\n");
  // resolve_config keeps its contract: ConfigError, never nlohmann's type_error.316.
  CHECK_THROWS_AS(attnsim::resolve_config(attnsim::json{{"schema", attnsim::kConfigSchema}}, "<defaults>",
                                          {"description=caf\xe9"}),
                  attnsim::ConfigError);
}

TEST_CASE("a trace path that is not UTF-8 is refused before the run (the stats hold it as JSON)") {
  const fs::path dir = scratch();
  const fs::path trace = dir / "t\x95.safetensors";
  fs::copy_file(kDemo, trace);
  const fs::path out = dir / "stats.json";
  const CliResult r = run_attnsim("run --trace '" + trace.string() + "' --out " + out.string());
  CHECK(r.code == kUsage);
  CHECK(r.out == "attnsim: run: --trace: the path is not valid UTF-8 (byte 0x95 at offset " + std::to_string(dir.string().size() + 2) +
                     "), which the stats JSON cannot hold\n");
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("a number beyond a double is one line naming the key, in a file or a --set") {
  check_config_refused("huge.json", R"({"schema": "attnsim.config/1", "comparator": {"gamma": 1e309}})",
                       "comparator.gamma: number out of range (not a finite double): 1e309");
  const CliResult r = run_attnsim("run --trace " + kDemo + " --set comparator.gamma=-1e400");
  CHECK(r.code == kConfig);
  CHECK(r.out == "attnsim: --set comparator.gamma: number out of range (not a finite double): -1e400\n");
}

// ---- accepted when it should not be (issue 13, item 6) ----------------------------------

TEST_CASE("a key given twice in a config is one line naming it") {
  check_config_refused("twice.json", R"({"schema": "attnsim.config/1",
      "qk_unit": {"lanes": 8, "lanes": 16}})", "qk_unit.lanes: duplicate key");
}

TEST_CASE("a key given twice in a sweep file is one line naming it") {
  const std::string sweep = write(scratch() / "twice-sweep.json",
                                  R"({"schema": "attnsim.sweep/1", "base": {"schema": "attnsim.config/1"},
                                      "traces": [")" + kDemo + R"("],
                                      "grid": {"qk_unit.lanes": [8], "qk_unit.lanes": [16]}})");
  const CliResult r = run_attnsim("sweep " + sweep + " --dry-run");
  CHECK(r.code == kConfig);
  CHECK(r.out == "attnsim: " + sweep + ": grid.qk_unit.lanes: duplicate key\n");
}

TEST_CASE("a tensor given twice in a trace header is one line naming it") {
  const std::string t = (scratch() / "twice.safetensors").string();
  const std::string entry = R"({"dtype": "F32", "shape": [1, 1, 1], "data_offsets": [0, 4]})";
  attnsim_test::write_raw_safetensors(t, R"({"layers.0.q": )" + entry + R"(, "layers.0.q": )" + entry + "}",
                                      std::vector<uint8_t>(4, 0));
  const CliResult r = run_attnsim("trace info " + t);
  CHECK(r.code == kTrace);
  CHECK(r.out == "attnsim: " + t + ": layers.0.q: duplicate key\n");
}

namespace {

// A trace header of q, k, v [1, 1, 1] F32 with the given data offsets, and `data` bytes.
std::string qkv_trace(const std::string& name, const std::string& q, const std::string& k, const std::string& v,
                      size_t data) {
  const std::string t = (scratch() / name).string();
  const auto entry = [](const std::string& offsets) {
    return R"({"dtype": "F32", "shape": [1, 1, 1], "data_offsets": )" + offsets + "}";
  };
  attnsim_test::write_raw_safetensors(
      t, R"({"layers.0.q": )" + entry(q) + R"(, "layers.0.k": )" + entry(k) + R"(, "layers.0.v": )" + entry(v) + "}",
      std::vector<uint8_t>(data, 0));
  return t;
}

}  // namespace

TEST_CASE("tensors whose data ranges overlap or leave holes are refused, naming the tensor") {
  std::string t = qkv_trace("contiguous.safetensors", "[0, 4]", "[4, 8]", "[8, 12]", 12);
  CHECK(run_attnsim("trace info " + t).code == 0);
  t = qkv_trace("overlap.safetensors", "[0, 4]", "[0, 4]", "[8, 12]", 12);
  CliResult r = run_attnsim("trace info " + t);
  CHECK(r.code == kTrace);
  CHECK(r.out == "attnsim: " + t + ": layers.0.q: data_offsets [0,4] overlap those of layers.0.k ([0,4])\n");
  t = qkv_trace("hole.safetensors", "[0, 4]", "[8, 12]", "[12, 16]", 16);
  r = run_attnsim("trace info " + t);
  CHECK(r.code == kTrace);
  CHECK(r.out == "attnsim: " + t + ": layers.0.k: data_offsets [8,12] leave bytes 4..8 of the data section to no tensor\n");
  t = qkv_trace("hole-first.safetensors", "[4, 8]", "[8, 12]", "[12, 16]", 16);
  r = run_attnsim("trace info " + t);
  CHECK(r.out == "attnsim: " + t + ": layers.0.q: data_offsets [4,8] leave bytes 0..4 of the data section to no tensor\n");
  t = qkv_trace("tail.safetensors", "[0, 4]", "[4, 8]", "[8, 12]", 20);
  r = run_attnsim("trace info " + t);
  CHECK(r.code == kTrace);
  CHECK(r.out == "attnsim: " + t + ": data section: bytes 12..20 belong to no tensor (the last, layers.0.v, ends at 12)\n");
}

TEST_CASE("threads and jobs (-j) outside their range are a usage error") {
  const fs::path out = scratch() / "j.json";
  for (const char* j : {"-1", "100000"}) {
    CliResult r = run_attnsim("run --trace " + kDemo + " --out " + out.string() + " -j " + j);
    CHECK(r.code == kUsage);
    CHECK(r.out == std::string("attnsim: run: --threads: must be in 0..1024 (0: one per core), got ") + j + "\n");
    r = run_attnsim("sweep x.json --dry-run -j " + std::string(j));
    CHECK(r.code == kUsage);
    CHECK(r.out == std::string("attnsim: sweep: --jobs: must be in 1..1024, got ") + j + "\n");
    r = run_attnsim("calibrate --trace " + kDemo + " --target filtered_ratio=0.5 --out " + out.string() + " -j " + j);
    CHECK(r.code == kUsage);
    CHECK(r.out == std::string("attnsim: calibrate: --threads: must be in 0..1024 (0: one per core), got ") + j + "\n");
  }
  const CliResult r = run_attnsim("sweep x.json --dry-run --threads-per-point 5000");
  CHECK(r.code == kUsage);
  CHECK(r.out == "attnsim: sweep: --threads-per-point: must be in 0..1024 (0: one per core), got 5000\n");
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("a physically meaningless clock is refused naming the key") {
  const CliResult r = run_attnsim("run --trace " + kDemo + " --set clock_ghz=1e-300");
  CHECK(r.code == kConfig);
  CHECK(r.out == "attnsim: --set clock_ghz: must be >= 0.001, got 1e-300\n");
}

// ---- exit codes per class (docs/reliability.md#exit-codes) ------------------------------

TEST_CASE("each class of error has its exit code, and the message is one line") {
  const fs::path dir = scratch();
  const fs::path out = dir / "codes.json";
  const std::string run = "run --out " + out.string() + " ";
  CHECK(run_attnsim(run + "--trace " + kDemo + " --bogus").code == kUsage);
  CHECK(run_attnsim("frobnicate").code == kUsage);
  CHECK(run_attnsim(run + "--trace " + kDemo + " --set qk_unit.lanes=0").code == kConfig);
  CHECK(run_attnsim(run + "--trace " + kDemo + " --config " + (dir / "absent.json").string()).code == kIo);
  CHECK(run_attnsim(run + "--trace " + write(dir / "junk.safetensors", "junk")).code == kTrace);
  CHECK(run_attnsim(run + "--trace " + (dir / "absent.safetensors").string()).code == kIo);
  CHECK(run_attnsim(run + "--trace " + dir.string()).code == kIo);  // not a regular file
  CHECK(run_attnsim(run + "--trace " + kDemo + " --set energy.tech=" + (dir / "absent.json").string()).code == kIo);
  CHECK_FALSE(fs::exists(out));
  // Output that cannot be written (its parent is a file) is I/O, after the run.
  const CliResult r = run_attnsim("run -q --trace " + kDemo + " --out " + kDemo + "/stats.json");
  CHECK(r.code == kIo);
  CHECK(r.out == "attnsim: " + kDemo + "/stats.json: cannot create its directory: Not a directory\n");
  (void)kSimulation;  // tests/sim/memory_cap_test.cpp
}

TEST_CASE("a message is printed as one line: control characters and bytes that are not UTF-8 escaped") {
  CHECK(attnsim::one_line("a\nb\tc\x95" "d \xc3\xa9") == "a\\x0ab\\x09c\\x95" "d \xc3\xa9");
  const CliResult r = run_attnsim("run --trace " + kDemo + " --set 'qk_unit.la\nnes=3'");
  CHECK(r.code == kConfig);
  CHECK(r.out == "attnsim: --set qk_unit.la\\x0anes: unknown key (did you mean 'lanes'?)\n");
}

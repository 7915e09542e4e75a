// Sweeps: grid/zip expansion, skip_if, point hashes, and the runner as a user drives it
// (every simulation runs in an `attnsim run` child process): results equal `attnsim run`,
// failures and timeouts are recorded without stopping the sweep, a killed sweep resumes
// without losing or repeating work, Ctrl-C leaves only complete results, emitted job
// lines and the Slurm script run the same points, the summary and the report.
#include "sim/config.h"
#include "sim/sweep/conditions.h"
#include "sim/sweep/points.h"
#include "sim/sweep/report.h"
#include "sim/sweep/spec.h"
#include "sim/sweep/sweep_dir.h"
#include "workloads/safetensors.h"

#include "tests/support/cli.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace fs = std::filesystem;
using attnsim::json;

namespace {

using Result = attnsim::test::CliResult;
using attnsim::test::shell;


Result attnsim_cli(const std::string& args) { return attnsim::test::run_attnsim(args); }

fs::path scratch_root() { return fs::temp_directory_path() / ("attnsim_sweep_" + std::to_string(getpid())); }

// Removes this test process's scratch directory when the process ends.
struct ScratchCleanup {
  ~ScratchCleanup() {
    std::error_code ignored;
    fs::remove_all(scratch_root(), ignored);
  }
} scratch_cleanup;

fs::path scratch(const std::string& name) {
  const fs::path dir = scratch_root() / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string write(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
  return path.string();
}

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

json read_json(const fs::path& path) { return json::parse(read(path)); }

// 1 layer x 2 heads, N = 32, d = 16: a whole run takes milliseconds.
std::string tiny_trace(const fs::path& dir) {
  const std::string t = (dir / "tiny.safetensors").string();
  const Result r = attnsim_cli("trace synth --out " + t + " --layers 1 --heads 2 --tokens 32 --head-dim 16 --seed 5");
  REQUIRE(r.code == 0);
  return t;
}

std::set<std::string> json_files(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

std::vector<std::vector<std::string>> csv_rows(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::string cell;
    bool quoted = false;
    for (char c : line) {
      if (c == '"') quoted = !quoted;
      else if (c == ',' && !quoted) {
        cells.push_back(cell);
        cell.clear();
      } else cell += c;
    }
    cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
}

size_t column(const std::vector<std::string>& header, const std::string& name) {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return i;
  FAIL("no column " << name);
  return 0;
}

// A sweep file over the tiny trace: a dense baseline plus the given grid (JSON text).
std::string sweep_file(const fs::path& dir, const std::string& trace, const std::string& grid,
                       const std::string& extra = "") {
  return write(dir / "sweep.json", R"({
    "schema": "attnsim.sweep/1",
    "base": {"schema": "attnsim.config/1", "qk_unit": {"mode": "latte", "lanes": 16}},
    "baseline": {"schema": "attnsim.config/1", "qk_unit": {"type": "bit_parallel", "mode": "dense", "lanes": 4}},
    "traces": [")" + fs::relative(trace, dir).string() + R"("],
    "grid": )" + grid + extra + "}");
}

// A stand-in attnsim for the children: logs its arguments, waits, then runs the real one.
std::string slow_binary(const fs::path& dir, const std::string& delay) {
  const std::string path = (dir / "slow_attnsim.sh").string();
  write(path, "#!/bin/sh\necho \"$*\" >> " + (dir / "calls.log").string() + "\nsleep " + delay + "\nexec " +
                  ATTNSIM_BINARY + " \"$@\"\n");
  fs::permissions(path, fs::perms::owner_all);
  return path;
}

// The hashes of the points the stand-in binary was asked to run (`run ...`; job lines also
// call it for `point ...`), one per call.
std::vector<std::string> called_hashes(const fs::path& dir) {
  std::vector<std::string> hashes;
  std::istringstream in(read(dir / "calls.log"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("run ", 0) != 0) continue;
    const size_t at = line.find("/configs/");
    REQUIRE(at != std::string::npos);
    hashes.push_back(line.substr(at + 9, 16));
  }
  return hashes;
}

// Starts `attnsim sweep ...` in the background, output to `log`.
pid_t start_sweep(const std::vector<std::string>& args, const fs::path& log) {
  std::vector<std::string> argv = {ATTNSIM_BINARY, "sweep"};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> a;
    for (std::string& s : argv) a.push_back(s.data());
    a.push_back(nullptr);
    execv(a[0], a.data());
    _exit(127);
  }
  return pid;
}

size_t count_stats(const fs::path& points) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(points))
    if (e.path().extension() == ".json") ++n;
  return n;
}

void wait_for_stats(const fs::path& points, size_t at_least) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!(fs::exists(points) && count_stats(points) >= at_least)) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

int wait_exit(pid_t pid) {
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Every file in points/ is a complete stats document whose config and trace hash to its name.
void check_points_complete(const fs::path& points) {
  for (const auto& e : fs::directory_iterator(points)) {
    INFO(e.path());
    REQUIRE(e.path().extension() == ".json");
    const json s = read_json(e.path());
    CHECK(s["schema"] == "attnsim.stats/1");
    CHECK(attnsim::point_hash(s["config"], s["trace"]["sha256"]) == e.path().stem().string());
  }
}

const char* kInlineSweep = R"({
  "schema": "attnsim.sweep/1",
  "base": {"schema": "attnsim.config/1"},
  "traces": ["t.safetensors"],
  "grid": {"qk_unit.lanes": [8, 16, 32], "comparator.gamma": [0.01, 0.1]},
  "zip": {"qk_unit.bits": [8, 6], "qk_unit.estimate_bits": [4, 3]}
})";

}  // namespace

// ---- expansion, conditions, hashes (no simulation) ------------------------------------------

TEST_CASE("grid expands as a Cartesian product with the last key fastest") {
  const auto spec = attnsim::parse_sweep(R"({"schema": "attnsim.sweep/1", "base": {"schema": "attnsim.config/1"},
    "traces": ["t.safetensors"], "grid": {"qk_unit.lanes": [8, 16, 32], "comparator.gamma": [0.01, 0.1]}})",
                                         "/d/s.json");
  const auto a = attnsim::expand_assignments(spec);
  REQUIRE(a.size() == 6);
  const std::vector<std::pair<int, double>> expected = {{8, 0.01}, {8, 0.1}, {16, 0.01}, {16, 0.1}, {32, 0.01}, {32, 0.1}};
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a[i].size() == 2);
    CHECK(a[i][0].first == "qk_unit.lanes");
    CHECK(a[i][0].second.get<int>() == expected[i].first);
    CHECK(a[i][1].first == "comparator.gamma");
    CHECK(a[i][1].second.get<double>() == expected[i].second);
  }
  CHECK(spec.trace_paths.at(0) == "/d/t.safetensors");  // relative to the sweep file
}

TEST_CASE("zip combines element-wise and is crossed with the grid") {
  const auto spec = attnsim::parse_sweep(kInlineSweep, "s.json");
  const auto a = attnsim::expand_assignments(spec);
  REQUIRE(a.size() == 12);  // 3 x 2 grid points x 2 zip entries
  // Point 0: lanes 8, gamma 0.01, zip entry 0; point 1: the same grid point, zip entry 1.
  CHECK(a[0] == attnsim::KeyValues{{"qk_unit.lanes", 8}, {"comparator.gamma", 0.01}, {"qk_unit.bits", 8}, {"qk_unit.estimate_bits", 4}});
  CHECK(a[1] == attnsim::KeyValues{{"qk_unit.lanes", 8}, {"comparator.gamma", 0.01}, {"qk_unit.bits", 6}, {"qk_unit.estimate_bits", 3}});
  CHECK(a[11] == attnsim::KeyValues{{"qk_unit.lanes", 32}, {"comparator.gamma", 0.1}, {"qk_unit.bits", 6}, {"qk_unit.estimate_bits", 3}});
  CHECK(attnsim::swept_keys(spec) == std::vector<std::string>{"qk_unit.lanes", "comparator.gamma", "qk_unit.bits", "qk_unit.estimate_bits"});
}

TEST_CASE("an empty grid gives one point per trace") {
  const auto spec = attnsim::parse_sweep(
      R"({"schema": "attnsim.sweep/1", "base": {"schema": "attnsim.config/1"}, "traces": ["a", "b"]})", "s.json");
  const auto a = attnsim::expand_assignments(spec);
  REQUIRE(a.size() == 1);
  CHECK(a[0].empty());
}

TEST_CASE("sweep file errors name the file and the JSON path") {
  const auto error_of = [](const std::string& text) {
    try {
      attnsim::parse_sweep(text, "s.json");
    } catch (const attnsim::SweepError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string head = R"({"schema": "attnsim.sweep/1", "base": {"schema": "attnsim.config/1"}, "traces": ["t"], )";
  CHECK(error_of(head + R"("zip": {"qk_unit.bits": [8, 6], "qk_unit.estimate_bits": [4]}})") ==
        "s.json: zip.qk_unit.estimate_bits: has 1 values, zip.qk_unit.bits has 2 (zip lists must have equal lengths)");
  CHECK(error_of(head + R"("grid": {"qk_unit.lane": [8]}})") ==
        "s.json: grid.qk_unit.lane: not a config key (section.key or a top-level key; see docs/config.md)");
  CHECK(error_of(head + R"("grid": {"qk_unit.lanes": []}})") == "s.json: grid.qk_unit.lanes: must be a non-empty list of values");
  CHECK(error_of(head + R"("grid": {"qk_unit.lanes": [8]}, "zip": {"qk_unit.lanes": [16]}})") ==
        "s.json: zip.qk_unit.lanes: also given in grid");
  CHECK(error_of(head + R"("gird": {}})") ==
        "s.json: gird: unknown key (schema, description, base, set, baseline, traces, grid, zip, skip_if)");
  CHECK(error_of(R"({"schema": "attnsim.sweep/2"})") == "s.json: schema: must be \"attnsim.sweep/1\"");
  CHECK(error_of(head + R"("skip_if": [{"qk_unit.bitz": {">": 1}}]})") == "s.json: skip_if[0].qk_unit.bitz: not a config key");
}

TEST_CASE("skip_if compares a key with another key or with literals") {
  const json tree = {{"qk_unit", {{"bits", 6}, {"estimate_bits", 8}, {"mode", "latte"}}}, {"clock_ghz", 1.0}};
  const json key_vs_key = json::parse(R"([{"qk_unit.estimate_bits": {">": "qk_unit.bits"}}])");
  CHECK(attnsim::skip_reason(key_vs_key, tree) == "skip_if[0]: qk_unit.estimate_bits (8) > qk_unit.bits (6)");
  json other = tree;
  other["qk_unit"]["estimate_bits"] = 6;
  CHECK(attnsim::skip_reason(key_vs_key, other).empty());  // 6 > 6 does not hold

  // All entries of one condition must hold; any condition skips.
  const json both = json::parse(R"([{"qk_unit.mode": {"==": "latte"}, "clock_ghz": {">=": 2}},
                                   {"qk_unit.bits": {"in": [4, 6]}}])");
  CHECK(attnsim::skip_reason(both, tree) == "skip_if[1]: qk_unit.bits (6) in [4,6]");
  other["qk_unit"]["bits"] = 8;
  CHECK(attnsim::skip_reason(both, other).empty());
  other["clock_ghz"] = 2;
  CHECK(attnsim::skip_reason(both, other) ==
        "skip_if[0]: clock_ghz (2) >= 2 and qk_unit.mode (\"latte\") == \"latte\"");  // keys in sorted order

  CHECK_THROWS_WITH(attnsim::skip_reason(json::parse(R"([{"qk_unit.bits": {"~": 1}}])"), tree),
                    "skip_if[0].qk_unit.bits: unknown operator '~' (==, !=, <, <=, >, >=, in)");
  CHECK_THROWS_WITH(attnsim::skip_reason(json::parse(R"([{"qk_unit.mode": {"<": 3}}])"), tree),
                    "skip_if[0].qk_unit.mode.<: cannot compare \"latte\" < 3");
}

TEST_CASE("point hash is sha256 over a canonical text and ignores description and key order") {
  const json config = json::parse(R"({"b": 1.0, "description": "anything", "a": {"y": 2, "x": "s"}})");
  CHECK(attnsim::canonical_point_text(config, "abc") == R"({"config":{"a":{"x":"s","y":2},"b":1},"trace_sha256":"abc"})");
  // printf '%s' '{"config":{"a":{"x":"s","y":2},"b":1},"trace_sha256":"abc"}' | sha256sum
  CHECK(attnsim::point_hash(config, "abc") == "a32d6977ddc3a36d");
  CHECK(attnsim::point_hash(json::parse(R"({"a": {"x": "s", "y": 2.0}, "b": 1})"), "abc") == "a32d6977ddc3a36d");
  CHECK(attnsim::point_hash(config, "abd") == "b4deb226320f9ab0");  // the trace's content counts
  json other = config;
  other["a"]["y"] = 2.5;
  CHECK(attnsim::point_hash(other, "abc") != "a32d6977ddc3a36d");
}

TEST_CASE("expansion resolves configs and skips invalid points with the reason") {
  const fs::path dir = scratch("expand");
  const std::string trace = tiny_trace(dir);
  const std::string file = sweep_file(dir, trace, R"({"qk_unit.bits": [4, 8], "qk_unit.estimate_bits": [2, 6]})",
                                      R"(, "skip_if": [{"qk_unit.bits": {"==": 4}, "qk_unit.estimate_bits": {"==": 2}}])");
  const auto spec = attnsim::load_sweep(file);
  const auto points = attnsim::expand_sweep(spec);
  REQUIRE(points.size() == 5);  // baseline + 2 x 2
  CHECK(points[0].role == "baseline");
  CHECK(points[0].values == attnsim::KeyValues{{"qk_unit.bits", 8}, {"qk_unit.estimate_bits", 4}});
  CHECK(points[1].skipped == "skip_if[0]: qk_unit.bits (4) == 4 and qk_unit.estimate_bits (2) == 2");
  CHECK(points[2].skipped == "invalid config: qk_unit.estimate_bits: must be <= qk_unit.bits (4), got 6");
  CHECK(points[3].skipped.empty());
  CHECK(points[3].config["qk_unit"]["estimate_bits"] == 2);
  CHECK(points[3].config["qk_unit"]["lanes"] == 16);  // from the inline base
  CHECK(points[3].trace_sha256 == attnsim::SafetensorsFile(trace).sha256());
  CHECK(points[3].hash == attnsim::point_hash(points[3].config, points[3].trace_sha256));
  // Stable: the same sweep expands to the same hashes.
  const auto again = attnsim::expand_sweep(attnsim::load_sweep(file));
  for (size_t i = 0; i < points.size(); ++i) CHECK(again[i].hash == points[i].hash);
  CHECK(attnsim::unique_runnable(points).size() == 3);
}

// ---- running (children) ----------------------------------------------------------------------

TEST_CASE("sweep runs every point and each stats file equals attnsim run") {
  const fs::path dir = scratch("run");
  const std::string trace = tiny_trace(dir);
  const std::string file = sweep_file(dir, trace, R"({"comparator.gamma": [0.01, 0.2], "qk_unit.lanes": [8, 32]})");
  const Result r = attnsim_cli("sweep " + file + " --out " + (dir / "out").string() + " -j 2");
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("sweep: 5 runs: 5 done (5 now, 0 before), 0 failed, 0 remaining; 0 points skipped;") != std::string::npos);
  const fs::path points = dir / "out" / "points";
  REQUIRE(count_stats(points) == 5);
  check_points_complete(points);

  // The point (gamma 0.2, lanes 8) against `attnsim run` with the same settings.
  const auto spec = attnsim::load_sweep(file);
  const auto expanded = attnsim::expand_sweep(spec);
  const attnsim::SweepPoint& p = expanded[3];
  REQUIRE(p.values == attnsim::KeyValues{{"comparator.gamma", 0.2}, {"qk_unit.lanes", 8}});
  write(dir / "base.json", R"({"schema": "attnsim.config/1", "qk_unit": {"mode": "latte", "lanes": 16}})");
  REQUIRE(attnsim_cli("run --config " + (dir / "base.json").string() + " --trace " + p.trace_path + " --out " +
                      (dir / "direct.json").string() + " -q --set comparator.gamma=0.2 --set qk_unit.lanes=8")
              .code == 0);
  json direct = read_json(dir / "direct.json"), swept = read_json(points / (p.hash + ".json"));
  direct.erase("sim");
  swept.erase("sim");
  CHECK(direct == swept);

  // summary.csv: one row per point, the swept keys, the metrics read from the stats.
  const auto rows = csv_rows(read(dir / "out" / "summary.csv"));
  REQUIRE(rows.size() == 6);
  const auto& h = rows[0];
  CHECK(h == std::vector<std::string>{"hash", "role", "status", "trace", "comparator.gamma", "qk_unit.lanes", "cycles",
                                      "energy_pj", "filtered_ratio", "exact_ratio", "rel_error", "mass_recall",
                                      "wall_seconds", "speedup", "energy_reduction", "error"});
  const json base = read_json(points / (rows[1][0] + ".json"));
  CHECK(rows[1][column(h, "role")] == "baseline");
  CHECK(rows[1][column(h, "speedup")] == "1");
  for (size_t i = 1; i < rows.size(); ++i) {
    const auto& row = rows[i];
    INFO(row[0]);
    CHECK(row[column(h, "status")] == "ok");
    CHECK(row[column(h, "trace")] == "tiny.safetensors");
    const json s = read_json(points / (row[0] + ".json"));
    CHECK(std::stoll(row[column(h, "cycles")]) == s["cycles"]["total"].get<long long>());
    CHECK(std::stod(row[column(h, "filtered_ratio")]) == s["filter"]["filtered_ratio"].get<double>());
    CHECK(std::stod(row[column(h, "rel_error")]) == s["quality"]["rel_error"].get<double>());
    CHECK(std::stod(row[column(h, "mass_recall")]) == s["quality"]["mass_recall"].get<double>());
    CHECK(std::stod(row[column(h, "energy_pj")]) == s["energy_pj"]["total"].get<double>());
    CHECK(std::stod(row[column(h, "speedup")]) ==
          base["cycles"]["total"].get<double>() / s["cycles"]["total"].get<double>());
    if (i >= 2) {
      CHECK(row[column(h, "role")] == "point");
      CHECK(s["config"]["comparator"]["gamma"].dump() == row[column(h, "comparator.gamma")]);
      CHECK(s["config"]["qk_unit"]["lanes"].dump() == row[column(h, "qk_unit.lanes")]);
    }
  }

  // A rerun finds everything done and runs nothing.
  const Result again = attnsim_cli("sweep " + file + " --out " + (dir / "out").string() + " -j 2");
  CHECK(again.code == 0);
  CHECK(again.out.find("5 done (0 now, 5 before)") != std::string::npos);
}

TEST_CASE("report prints the sorted table and the Pareto front") {
  const fs::path dir = scratch("report");
  const std::string trace = tiny_trace(dir);
  const std::string file = sweep_file(dir, trace, R"({"comparator.gamma": [0.001, 0.05, 0.5]})");
  REQUIRE(attnsim_cli("sweep " + file + " --out " + (dir / "out").string() + " -j 2").code == 0);
  const attnsim::SweepResults results = attnsim::collect_results(attnsim::sweep_dir((dir / "out").string()));
  REQUIRE(results.rows.size() == 4);

  // The front by hand: a row is on it when no other row is at most as slow and at most
  // as wrong, and strictly better in one.
  std::set<std::string> expected;
  for (const auto& a : results.rows) {
    bool dominated = false;
    for (const auto& b : results.rows)
      if (b.metric("cycles") <= a.metric("cycles") && b.metric("rel_error") <= a.metric("rel_error") &&
          (b.metric("cycles") < a.metric("cycles") || b.metric("rel_error") < a.metric("rel_error")))
        dominated = true;
    if (!dominated) expected.insert(a.hash);
  }
  std::set<std::string> front;
  for (size_t i : attnsim::pareto_front(results, "cycles", "rel_error")) front.insert(results.rows[i].hash);
  CHECK(front == expected);
  CHECK(front.count(results.rows[0].hash) == 1);  // the dense baseline: rel_error 0

  const Result r = attnsim_cli("report " + (dir / "out").string() + " --sort rel_error --pareto cycles,rel_error");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const size_t table = r.out.find("points sorted by rel_error (smallest first");
  const size_t pareto = r.out.find("Pareto front of cycles (min) and rel_error (min), per trace: " +
                                   std::to_string(expected.size()) + " points");
  REQUIRE(table != std::string::npos);
  REQUIRE(pareto != std::string::npos);
  // The table lists the points by rel_error: gamma 0.001 before 0.05 before 0.5.
  const size_t g1 = r.out.find(results.rows[1].hash), g2 = r.out.find(results.rows[2].hash),
               g3 = r.out.find(results.rows[3].hash);
  CHECK(g1 < g2);
  CHECK(g2 < g3);
  CHECK(g3 < pareto);
  CHECK(r.out.find("4 points: 4 ok") != std::string::npos);
  CHECK(attnsim_cli("report " + (dir / "out").string() + " --sort speed").out ==
        "attnsim: unknown metric 'speed' (one of cycles, energy_pj, filtered_ratio, exact_ratio, rel_error, "
        "mass_recall, wall_seconds, speedup, energy_reduction)\n");
}

TEST_CASE("a failing point is recorded and does not stop the others") {
  const fs::path dir = scratch("fail");
  const std::string trace = tiny_trace(dir);
  // Three gammas for a 2-head trace: the config is valid JSON but fails against the trace.
  const std::string file = sweep_file(dir, trace, R"({"comparator.gamma": [0.01, [0.01, 0.02, 0.03], 0.1]})");
  const std::string out = (dir / "out").string();
  const Result r = attnsim_cli("sweep " + file + " --out " + out + " -j 2");
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find("4 runs: 3 done (3 now, 0 before), 1 failed, 0 remaining") != std::string::npos);
  const auto points = attnsim::expand_sweep(attnsim::load_sweep(file));
  const std::string bad = points[2].hash;
  CHECK(count_stats(dir / "out" / "points") == 3);
  CHECK_FALSE(fs::exists(dir / "out" / "points" / (bad + ".json")));
  const json f = read_json(dir / "out" / "failed" / (bad + ".json"));
  CHECK(f["schema"] == "attnsim.sweep-failure/1");
  CHECK(f["exit_code"] == 3);  // the point's run failed with a config error
  CHECK(f["timed_out"] == false);
  CHECK(f["error"].get<std::string>().find("comparator.gamma: has 3 values, the trace has 2 heads") != std::string::npos);
  const auto rows = csv_rows(read(dir / "out" / "summary.csv"));
  REQUIRE(rows.size() == 5);
  CHECK(rows[3][0] == bad);
  CHECK(rows[3][column(rows[0], "status")] == "failed");
  CHECK(rows[3][column(rows[0], "cycles")].empty());
  CHECK(rows[3][column(rows[0], "error")] == f["error"].get<std::string>());
}

TEST_CASE("a point over the time limit is killed and recorded as timed out") {
  const fs::path dir = scratch("timeout");
  const std::string trace = tiny_trace(dir);
  const std::string file = sweep_file(dir, trace, R"({"comparator.gamma": [0.01]})");
  const std::string slow = slow_binary(dir, "30");
  const auto start = std::chrono::steady_clock::now();
  const Result r = attnsim_cli("sweep " + file + " --out " + (dir / "out").string() + " -j 2 --timeout 0.5 --binary " + slow);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(wall < 10);
  const auto points = attnsim::expand_sweep(attnsim::load_sweep(file));
  const json f = read_json(dir / "out" / "failed" / (points[1].hash + ".json"));
  CHECK(f["timed_out"] == true);
  CHECK(f["signal"] == SIGKILL);
  CHECK(f["error"] == "timed out after 0.5 s (--timeout)");
  const auto rows = csv_rows(read(dir / "out" / "summary.csv"));
  CHECK(rows[2][column(rows[0], "status")] == "timeout");
}

TEST_CASE("resume after killing a sweep half way loses no point and runs none twice") {
  const fs::path dir = scratch("resume");
  const std::string trace = tiny_trace(dir);
  const std::string file = sweep_file(dir, trace, R"({"comparator.gamma": [0.001, 0.01, 0.1], "qk_unit.lanes": [8, 32]})");
  const std::string slow = slow_binary(dir, "0.3");
  const fs::path out = dir / "out";
  const std::vector<std::string> args = {file, "--out", out.string(), "-j", "2", "--binary", slow};

  // A crash: SIGKILL to the sweep once some points are done. Its children die with it.
  const pid_t pid = start_sweep(args, dir / "first.log");
  wait_for_stats(out / "points", 3);
  kill(pid, SIGKILL);
  wait_exit(pid);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::set<std::string> done_first;
  for (const auto& e : fs::directory_iterator(out / "points"))
    if (e.path().extension() == ".json") done_first.insert(e.path().stem().string());
  REQUIRE(done_first.size() >= 3);
  REQUIRE(done_first.size() < 7);
  const size_t calls_first = called_hashes(dir).size();

  const pid_t again = start_sweep(args, dir / "second.log");
  CHECK(wait_exit(again) == 0);
  check_points_complete(out / "points");
  CHECK(count_stats(out / "points") == 7);  // baseline + 3 x 2

  // The rerun ran exactly the points that had no stats, each once.
  const auto calls = called_hashes(dir);
  std::multiset<std::string> rerun(calls.begin() + calls_first, calls.end());
  std::multiset<std::string> missing;
  const auto points = attnsim::expand_sweep(attnsim::load_sweep(file));
  for (const attnsim::SweepPoint* p : attnsim::unique_runnable(points))
    if (!done_first.count(p->hash)) missing.insert(p->hash);
  CHECK(rerun == missing);
  CHECK(read(dir / "second.log").find("7 done (" + std::to_string(missing.size()) + " now, " +
                                      std::to_string(done_first.size()) + " before)") != std::string::npos);
}

TEST_CASE("Ctrl-C stops the children and leaves only complete results") {
  const fs::path dir = scratch("interrupt");
  const std::string trace = tiny_trace(dir);
  const std::string file = sweep_file(dir, trace, R"({"comparator.gamma": [0.001, 0.01, 0.1, 0.3]})");
  const fs::path out = dir / "out";
  const pid_t pid = start_sweep({file, "--out", out.string(), "-j", "2", "--binary", slow_binary(dir, "0.4")},
                                dir / "sweep.log");
  wait_for_stats(out / "points", 1);
  kill(pid, SIGINT);
  CHECK(wait_exit(pid) == 130);
  const std::string log = read(dir / "sweep.log");
  INFO(log);
  CHECK(log.find("attnsim: sweep: interrupted;") != std::string::npos);
  CHECK(count_stats(out / "points") < 5);
  check_points_complete(out / "points");  // no temp file, no partial stats
  CHECK(json_files(out / "failed").empty());  // stopped points are pending, not failed
  CHECK(fs::is_empty(out / "claims"));        // and free for the next runner
  const auto rows = csv_rows(read(out / "summary.csv"));
  CHECK(rows.size() == 6);
}

TEST_CASE("emitted job lines and the Slurm script run the same points") {
  const fs::path dir = scratch("emit");
  const std::string trace = tiny_trace(dir);
  const std::string file = sweep_file(dir, trace, R"({"comparator.gamma": [0.01, 0.1], "qk_unit.lanes": [8, 32]})");
  const fs::path out = dir / "out";
  const Result r = attnsim_cli("sweep " + file + " --out " + out.string() + " --emit-jobs " + (out / "jobs.txt").string() +
                               " --emit-slurm " + (out / "sweep.sbatch").string() + " --chunk 2 --timeout 60");
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(count_stats(out / "points") == 0);  // nothing ran

  const auto points = attnsim::expand_sweep(attnsim::load_sweep(file));
  std::istringstream jobs(read(out / "jobs.txt"));
  std::vector<std::string> lines;
  for (std::string l; std::getline(jobs, l);) lines.push_back(l);
  REQUIRE(lines.size() == 5);
  const attnsim::SweepDir sd = attnsim::sweep_dir(out.string());
  const std::string bin = ATTNSIM_BINARY;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string stats = sd.stats(points[i].hash);
    CHECK(lines[i] == bin + " point " + sd.root + " " + points[i].hash + " --timeout 60 -- " + bin + " run --config " +
                          sd.config(points[i].hash) + " --trace " + points[i].trace_path + " --out " + stats +
                          " --quiet --threads 1");
  }

  const std::string sbatch = read(out / "sweep.sbatch");
  CHECK(sbatch.rfind("#!/bin/bash\n", 0) == 0);
  CHECK(sbatch.find("#SBATCH --array=0-2\n") != std::string::npos);  // 5 points, 2 per task
  CHECK(sbatch.find("#SBATCH --time=2\n") != std::string::npos);     // 2 x 60 s
  CHECK(sbatch.find("jobs_file=" + (out / "jobs.txt").string() + "\n") != std::string::npos);
  // Array task 1 runs lines 3 and 4.
  REQUIRE(shell("SLURM_ARRAY_TASK_ID=1 bash " + (out / "sweep.sbatch").string()).code == 0);
  CHECK(json_files(out / "points") == std::set<std::string>{points[2].hash + ".json", points[3].hash + ".json"});

  // The job lines themselves, one by one; a finished point's line does nothing.
  for (const std::string& line : lines) REQUIRE(shell(line).code == 0);
  check_points_complete(out / "points");
  CHECK(count_stats(out / "points") == 5);
  const Result m = attnsim_cli("merge " + out.string());
  CHECK(m.code == 0);
  CHECK(m.out == "merge: 5 points: 5 ok; " + sd.summary() + "\n");

  // A truncated point is not done: `attnsim point` says so, and its job line runs it again.
  const std::string stats = sd.stats(points[4].hash), text = read(stats);
  write(stats, text.substr(0, text.size() / 2));
  CHECK(attnsim_cli("point " + out.string() + " " + points[4].hash).out ==
        "attnsim: " + stats + ": incomplete stats file: not valid JSON\n");
  CHECK(attnsim_cli("point " + out.string() + " " + points[4].hash).code == 1);
  REQUIRE(shell(lines[4]).code == 0);
  json again = read_json(stats), before = json::parse(text);
  again.erase("sim");
  before.erase("sim");
  CHECK(again == before);
  const Result done = attnsim_cli("point " + out.string() + " " + points[4].hash);
  CHECK(done.code == 0);
  CHECK(done.out.empty());
  check_points_complete(out / "points");
}

namespace {

// A sweep of gamma over two values (three points with the base config) run to the end in
// the scratch directory `name`.
struct FinishedSweep {
  std::string file;
  fs::path out;
  std::vector<attnsim::SweepPoint> points;
  attnsim::SweepDir sd;
};

FinishedSweep finished_gamma_sweep(const std::string& name) {
  const fs::path dir = scratch(name);
  const std::string trace = tiny_trace(dir);
  FinishedSweep s;
  s.file = sweep_file(dir, trace, R"({"comparator.gamma": [0.01, 0.1]})");
  s.out = dir / "out";
  REQUIRE(attnsim_cli("sweep " + s.file + " --out " + s.out.string() + " -j 2").code == 0);
  s.points = attnsim::expand_sweep(attnsim::load_sweep(s.file));
  s.sd = attnsim::sweep_dir(s.out.string());
  return s;
}

}  // namespace

TEST_CASE("an empty or truncated point file is run again and reported") {
  const auto& [file, out, points, sd] = finished_gamma_sweep("incomplete");
  const std::string truncated = sd.stats(points[1].hash), empty = sd.stats(points[2].hash);
  const std::string text = read(truncated);
  write(truncated, text.substr(0, text.size() - 10));
  write(empty, "");

  const Result r = attnsim_cli("sweep " + file + " --out " + out.string() + " -j 2");
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(r.out.find("attnsim: sweep: " + truncated + ": incomplete stats file: not valid JSON; running the point again\n") !=
        std::string::npos);
  CHECK(r.out.find("attnsim: sweep: " + empty + ": incomplete stats file: empty; running the point again\n") !=
        std::string::npos);
  CHECK(r.out.find("sweep: 3 runs: 3 done (2 now, 1 before), 0 failed, 0 remaining;") != std::string::npos);
  check_points_complete(out / "points");
}

TEST_CASE("a point file without every key of a stats file is no result for merge, point and sweep") {
  const auto& [file, out, points, sd] = finished_gamma_sweep("keys");
  const std::string stats = sd.stats(points[1].hash);
  json s = read_json(stats);
  s.erase("quality");
  write(stats, s.dump(2));

  const Result m = attnsim_cli("merge " + out.string());
  CHECK(m.out == "merge: 3 points: 1 missing, 2 ok; " + sd.summary() + "\n");
  const auto rows = csv_rows(read(sd.summary()));
  REQUIRE(rows.size() == 4);
  CHECK(rows[2][column(rows[0], "status")] == "missing");
  CHECK(read(sd.summary()).find(",\"" + stats + ": incomplete stats file: no \"\"quality\"\"\"\n") != std::string::npos);
  const Result p = attnsim_cli("point " + out.string() + " " + points[1].hash);
  CHECK(p.code == 1);
  CHECK(p.out == "attnsim: " + stats + ": incomplete stats file: no \"quality\"\n");
  const Result missing = attnsim_cli("point " + out.string() + " 0123456789abcdef");
  CHECK(missing.code == 1);
  CHECK(missing.out == "attnsim: " + sd.stats("0123456789abcdef") + ": no stats yet\n");

  write(stats, R"({"schema": "attnsim.stats/2"})");
  CHECK(attnsim_cli("point " + out.string() + " " + points[1].hash).out ==
        "attnsim: " + stats + ": incomplete stats file: schema is not \"attnsim.stats/1\"\n");
  const Result r = attnsim_cli("sweep " + file + " --out " + out.string());
  CHECK(r.code == 0);
  CHECK(r.out.find("sweep: 3 runs: 3 done (1 now, 2 before)") != std::string::npos);
  check_points_complete(out / "points");
}

TEST_CASE("a point that exits 0 without complete stats failed and the sweep exits 1") {
  const fs::path dir = scratch("empty_ok");
  const std::string trace = tiny_trace(dir);
  const std::string file = sweep_file(dir, trace, R"({"comparator.gamma": [0.01]})");
  // A stand-in binary that leaves an empty file at --out and exits 0.
  const std::string bin = write(dir / "empty.sh", "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --out ] && : > \"$2\"; shift; done\nexit 0\n");
  fs::permissions(bin, fs::perms::owner_all);
  const fs::path out = dir / "out";
  const Result r = attnsim_cli("sweep " + file + " --out " + out.string() + " --binary " + bin);
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find("sweep: 2 runs: 0 done (0 now, 0 before), 2 failed, 0 remaining;") != std::string::npos);
  CHECK(r.out.find("attnsim: sweep: 2 points failed (see " + out.string() + "/failed/)\n") != std::string::npos);
  const auto points = attnsim::expand_sweep(attnsim::load_sweep(file));
  const attnsim::SweepDir sd = attnsim::sweep_dir(out.string());
  CHECK(read_json(sd.failure(points[1].hash))["error"] == sd.stats(points[1].hash) + ": incomplete stats file: empty");
}

TEST_CASE("merge counts missing and skipped points") {
  const fs::path dir = scratch("merge");
  const std::string trace = tiny_trace(dir);
  const std::string file = sweep_file(dir, trace, R"({"qk_unit.estimate_bits": [2, 9]})");
  const fs::path out = dir / "out";
  REQUIRE(attnsim_cli("sweep " + file + " --out " + out.string() + " --emit-jobs " + (out / "jobs.txt").string()).code == 0);
  const Result m = attnsim_cli("merge " + out.string());
  CHECK(m.out == "merge: 3 points: 2 missing, 1 skipped; " + (out / "summary.csv").string() + "\n");
  const auto rows = csv_rows(read(out / "summary.csv"));
  REQUIRE(rows.size() == 4);
  CHECK(rows[3][column(rows[0], "status")] == "skipped");
  CHECK(rows[3][column(rows[0], "error")].find("invalid config:") == 0);
  CHECK(attnsim_cli("merge " + (dir / "nowhere").string()).code == 6);  // no manifest to read: I/O
}

// ---- several runners on one directory: claims ------------------------------------------------

namespace {

std::string this_host() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

// A pid that no process has: a child that has exited and been reaped.
pid_t dead_pid() {
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  int status = 0;
  waitpid(pid, &status, 0);
  return pid;
}

std::string claim_json(const std::string& host, pid_t pid) {
  return json{{"schema", "attnsim.sweep-claim/1"}, {"host", host}, {"pid", pid}, {"started", "2024-01-02T03:04:05Z"}}
      .dump();
}

std::multiset<std::string> expected_once(const std::vector<attnsim::SweepPoint>& points) {
  std::multiset<std::string> once;
  for (const attnsim::SweepPoint* p : attnsim::unique_runnable(points)) once.insert(p->hash);
  return once;
}

}  // namespace

TEST_CASE("two runners on one sweep directory run every point exactly once") {
  const fs::path dir = scratch("two_runners");
  const std::string trace = tiny_trace(dir);
  const std::string file = sweep_file(dir, trace, R"({"comparator.gamma": [0.001, 0.01, 0.1], "qk_unit.lanes": [8, 32]})");
  const std::string slow = slow_binary(dir, "0.3");
  const fs::path out = dir / "out";
  const std::vector<std::string> args = {file, "--out", out.string(), "-j", "2", "--binary", slow};
  const pid_t a = start_sweep(args, dir / "a.log");
  const pid_t b = start_sweep(args, dir / "b.log");
  CHECK(wait_exit(a) == 0);
  CHECK(wait_exit(b) == 0);
  INFO(read(dir / "a.log") + read(dir / "b.log"));
  const auto points = attnsim::expand_sweep(attnsim::load_sweep(file));
  const auto calls = called_hashes(dir);
  CHECK(std::multiset<std::string>(calls.begin(), calls.end()) == expected_once(points));
  CHECK(count_stats(out / "points") == 7);
  check_points_complete(out / "points");
  CHECK(fs::is_empty(out / "claims"));  // every claim released
  // Each runner ends with every point done, by itself or by the other one.
  for (const char* log : {"a.log", "b.log"}) CHECK(read(dir / log).find("sweep: 7 runs: 7 done (") != std::string::npos);
}

TEST_CASE("a starting runner removes only the temp files of dead writers on this host") {
  const fs::path dir = scratch("temps");
  const std::string trace = tiny_trace(dir);
  const std::string file = sweep_file(dir, trace, R"({"comparator.gamma": [0.01]})");
  const fs::path points = dir / "out" / "points";
  fs::create_directories(points);
  const std::string host = this_host();
  const std::string live = "a.json.tmp." + host + "." + std::to_string(getpid());  // this test: alive
  const std::string dead = "b.json.tmp." + host + "." + std::to_string(dead_pid());
  const std::string foreign = "c.json.tmp.elsewhere.example.1";  // another host: not ours to judge
  const std::string old = "d.json.tmp.1";                         // no host in the name
  for (const std::string& name : {live, dead, foreign, old}) write(points / name, "{");
  REQUIRE(attnsim_cli("sweep " + file + " --out " + (dir / "out").string() + " --emit-jobs " +
                      (dir / "out" / "jobs.txt").string()).code == 0);
  CHECK(json_files(points) == std::set<std::string>{live, foreign, old});
}

TEST_CASE("claims: a live one is waited for, a dead local one taken over, a foreign one respected") {
  const fs::path dir = scratch("claims");
  const std::string trace = tiny_trace(dir);
  const std::string file = sweep_file(dir, trace, R"({"comparator.gamma": [0.01, 0.1]})");
  const fs::path out = dir / "out";
  const std::string slow = slow_binary(dir, "0.2");
  REQUIRE(attnsim_cli("sweep " + file + " --out " + out.string() + " --emit-jobs " + (out / "jobs.txt").string() +
                      " --binary " + slow).code == 0);
  const auto points = attnsim::expand_sweep(attnsim::load_sweep(file));
  const attnsim::SweepDir sd = attnsim::sweep_dir(out.string());
  const std::string live = points[0].hash, dead = points[1].hash, foreign = points[2].hash;
  const fs::path claims = out / "claims";
  write(claims / (live + ".json"), claim_json(this_host(), getpid()));
  write(claims / (dead + ".json"), claim_json(this_host(), dead_pid()));
  write(claims / (foreign + ".json"), claim_json("elsewhere.example", 1));

  // A job line leaves a point claimed by a live process or another host alone.
  std::istringstream jobs(read(out / "jobs.txt"));
  std::vector<std::string> lines;
  for (std::string l; std::getline(jobs, l);) lines.push_back(l);
  REQUIRE(lines.size() == 3);
  Result r = shell(lines[0]);
  CHECK(r.code == 0);
  CHECK(r.out == "attnsim: point " + live + ": claimed by pid " + std::to_string(getpid()) + " on " + this_host() +
                     " since 2024-01-02T03:04:05Z; not run\n");
  r = shell(lines[2]);
  CHECK(r.code == 0);
  CHECK(r.out == "attnsim: point " + foreign + ": claimed by pid 1 on elsewhere.example since 2024-01-02T03:04:05Z; not run\n");
  CHECK(called_hashes(dir).empty());

  // The runner takes over the dead claim, waits for the live one and leaves the foreign one.
  const pid_t pid = start_sweep({file, "--out", out.string(), "-j", "2", "--binary", slow}, dir / "sweep.log");
  wait_for_stats(out / "points", 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(json_files(out / "points") == std::set<std::string>{dead + ".json"});
  CHECK(waitpid(pid, nullptr, WNOHANG) == 0);  // still waiting for the live claim
  fs::remove(claims / (live + ".json"));       // its owner gave up without a result
  CHECK(wait_exit(pid) == 1);
  const std::string log = read(dir / "sweep.log");
  INFO(log);
  CHECK(json_files(out / "points") == std::set<std::string>{dead + ".json", live + ".json"});
  const auto calls = called_hashes(dir);
  CHECK(std::multiset<std::string>(calls.begin(), calls.end()) == std::multiset<std::string>{live, dead});
  CHECK(log.find("sweep: 3 runs: 2 done (2 now, 0 before), 0 failed, 1 remaining;") != std::string::npos);
  CHECK(log.find("attnsim: sweep: 1 points not done: claimed on other hosts (pid 1 on elsewhere.example since "
                 "2024-01-02T03:04:05Z); rerun when they finish, or remove " +
                 (claims / (foreign + ".json")).string() + " if that runner is gone\n") != std::string::npos);
  CHECK(json_files(claims) == std::set<std::string>{foreign + ".json"});
}

TEST_CASE("the same job line started twice at once runs its point once") {
  const fs::path dir = scratch("job_twice");
  const std::string trace = tiny_trace(dir);
  const std::string file = sweep_file(dir, trace, R"({"comparator.gamma": [0.01]})");
  const fs::path out = dir / "out";
  REQUIRE(attnsim_cli("sweep " + file + " --out " + out.string() + " --emit-jobs " + (out / "jobs.txt").string() +
                      " --binary " + slow_binary(dir, "0.3")).code == 0);
  write(dir / "line.sh", read(out / "jobs.txt").substr(0, read(out / "jobs.txt").find('\n')) + "\n");
  const Result r = shell("bash " + (dir / "line.sh").string() + " & bash " + (dir / "line.sh").string() + " & wait");
  CHECK(r.code == 0);
  const auto points = attnsim::expand_sweep(attnsim::load_sweep(file));
  CHECK(called_hashes(dir) == std::vector<std::string>{points[0].hash});
  CHECK(json_files(out / "points") == std::set<std::string>{points[0].hash + ".json"});
  CHECK(fs::is_empty(out / "claims"));
}

TEST_CASE("a job line stopped by SIGTERM kills its command and releases the claim") {
  const fs::path dir = scratch("job_term");
  const std::string trace = tiny_trace(dir);
  const std::string file = sweep_file(dir, trace, R"({"comparator.gamma": [0.01]})");
  const fs::path out = dir / "out";
  REQUIRE(attnsim_cli("sweep " + file + " --out " + out.string() + " --emit-jobs " + (out / "jobs.txt").string() +
                      " --binary " + slow_binary(dir, "5")).code == 0);
  const auto points = attnsim::expand_sweep(attnsim::load_sweep(file));
  const attnsim::SweepDir sd = attnsim::sweep_dir(out.string());
  // `attnsim point` itself (not the stand-in), running the stand-in's 5 s command.
  const std::string line = read(out / "jobs.txt").substr(0, read(out / "jobs.txt").find('\n'));
  const std::string args = line.substr(line.find(" point ") + 7);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + std::string(ATTNSIM_BINARY) + " point " + args + " 2>/dev/null").c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!fs::exists(sd.claim(points[0].hash))) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const auto start = std::chrono::steady_clock::now();
  kill(pid, SIGTERM);
  CHECK(wait_exit(pid) == 128 + SIGTERM);
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 2);
  CHECK(fs::is_empty(out / "claims"));
  CHECK(fs::is_empty(out / "points"));
}

TEST_CASE("a job line runs in a sweep directory that has no claims directory") {
  const fs::path dir = scratch("no_claims_dir");
  const std::string trace = tiny_trace(dir);
  const std::string file = sweep_file(dir, trace, R"({"comparator.gamma": [0.01]})");
  const fs::path out = dir / "out";
  REQUIRE(attnsim_cli("sweep " + file + " --out " + out.string() + " --emit-jobs " + (out / "jobs.txt").string()).code == 0);
  fs::remove_all(out / "claims");  // as an older attnsim prepared it
  const std::string line = read(out / "jobs.txt").substr(0, read(out / "jobs.txt").find('\n'));
  const Result r = shell(line);
  INFO(r.out);
  CHECK(r.code == 0);
  check_points_complete(out / "points");
  CHECK(count_stats(out / "points") == 1);
  CHECK(fs::is_empty(out / "claims"));
}

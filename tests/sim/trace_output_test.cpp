// `attnsim run --timeline / --vcd` on a tiny synthetic trace, driven through the command
// line as a user does (every run is its own process, so one TEST_CASE may run several).
// Over the whole run the recorded spans must add up to the stats' busy and stall cycles
// exactly, lie inside [0, cycles.total], and tracing must not change the stats.
#include "tests/support/cli.h"
#include "tests/support/vcd.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using Result = attnsim::test::CliResult;


fs::path scratch() { return attnsim::test::scratch_dir("traceout"); }

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// 2 layers x 2 heads, 8 tokens, d = 4: every run takes milliseconds.
std::string tiny_trace() {
  const fs::path t = scratch() / "tiny.safetensors";
  const Result r = attnsim::test::run_attnsim("trace synth --out " + t.string() + " --layers 2 --heads 2 --tokens 8 --head-dim 4 --seed 5");
  REQUIRE(r.code == 0);
  return t.string();
}

// A slow DRAM channel makes the output FIFO fill and the units stall, so that stall
// spans and FIFO levels are exercised, not only busy ones.
const std::string kSlowDram = " --set dram.bytes_per_cycle=1 --set pipeline.fifo_depth=2";

json run_stats(const std::string& trace, const std::string& extra, const std::string& name) {
  const fs::path out = scratch() / (name + ".stats.json");
  const Result r = attnsim::test::run_attnsim("run -q -j 1 --trace " + trace + " --out " + out.string() + extra);
  INFO(r.out);
  REQUIRE(r.code == 0);
  return json::parse(slurp(out));
}

struct Timeline {
  std::map<int, std::string> threads;  // tid -> unit
  std::vector<json> slices;            // "X" events
  std::vector<json> counters;          // "C" events
  // unit -> cat ("busy" / "stall") -> cycles
  std::map<std::string, std::map<std::string, uint64_t>> cycles;
  uint64_t of(const std::string& unit, const std::string& cat) const {
    const auto u = cycles.find(unit);
    if (u == cycles.end()) return 0;
    const auto c = u->second.find(cat);
    return c == u->second.end() ? 0 : c->second;
  }
};

Timeline read_timeline(const fs::path& path) {
  const json t = json::parse(slurp(path));
  REQUIRE(t["displayTimeUnit"] == "ns");
  Timeline out;
  for (const json& e : t["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "thread_name") out.threads[e["tid"].get<int>()] = e["args"]["name"];
    if (e["ph"] == "X") out.slices.push_back(e);
    if (e["ph"] == "C") out.counters.push_back(e);
  }
  for (const json& e : out.slices)
    out.cycles[out.threads.at(e["tid"].get<int>())][e["cat"].get<std::string>()] += e["args"]["cycles"].get<uint64_t>();
  return out;
}

// ts and dur are microseconds in the format; attnsim writes cycles / 1000.
uint64_t cycles_of(const json& micros) { return static_cast<uint64_t>(std::llround(micros.get<double>() * 1000)); }

// Cycles each VCD variable spends at each value, from time 0 to the last timestamp.
struct Waveform {
  std::map<std::string, std::map<uint64_t, uint64_t>> time_at;  // "unit.qk_unit" -> value -> cycles
  uint64_t end = 0;
  std::set<std::string> vars;
};

Waveform read_vcd(const std::string& text) {
  const attnsim::test::Vcd vcd = attnsim::test::parse_vcd(text);
  Waveform w;
  w.vars = vcd.vars;
  w.end = vcd.end;
  for (const std::string& name : vcd.vars) w.time_at[name] = attnsim::test::time_at_values(vcd, name);
  return w;
}

}  // namespace

TEST_CASE("a whole-run timeline adds up to the stats of every unit") {
  const std::string trace = tiny_trace();
  const fs::path timeline = scratch() / "whole.json";
  const json s = run_stats(trace, kSlowDram + " --trace-layers all --timeline " + timeline.string(), "whole");
  const Timeline t = read_timeline(timeline);
  const json& m = s["cycles"]["by_module"];
  const uint64_t total = s["cycles"]["total"];

  CHECK(t.threads == std::map<int, std::string>{{1, "dma"}, {2, "dram"}, {3, "qk_unit"}, {4, "softmax"},
                                                {5, "av_unit"}, {6, "writeback"}});
  for (const char* unit : {"qk_unit", "softmax", "av_unit"}) {
    INFO(unit);
    CHECK(t.of(unit, "busy") == m[unit]["busy"].get<uint64_t>());
    CHECK(t.of(unit, "stall") == m[unit]["stall"].get<uint64_t>());
  }
  CHECK(m["qk_unit"]["stall"].get<uint64_t>() > 0);  // the comparator waits (latte)
  CHECK(m["av_unit"]["stall"].get<uint64_t>() > 0);  // behind the slow write-back
  // The dram module: the channel's transfers are its busy cycles; its stall is the DMA's
  // waits plus the write-back's waits behind other transfers.
  CHECK(t.of("dram", "busy") == m["dram"]["busy"].get<uint64_t>());
  CHECK(t.of("dma", "stall") + t.of("writeback", "stall") == m["dram"]["stall"].get<uint64_t>());
  CHECK(m["dram"]["stall"].get<uint64_t>() > 0);

  std::set<int> layers;
  for (const json& e : t.slices) {
    const uint64_t begin = cycles_of(e["ts"]), dur = cycles_of(e["dur"]);
    CHECK(dur == e["args"]["cycles"].get<uint64_t>());
    CHECK(dur > 0);
    CHECK(begin + dur <= total);
    layers.insert(e["args"]["layer"].get<int>());
  }
  CHECK(layers == std::set<int>{0, 1});

  // FIFO levels: the output FIFO fills to its depth behind the slow write-back.
  int outputs_max = 0;
  for (const json& c : t.counters) {
    CHECK(cycles_of(c["ts"]) <= total);
    if (c["name"] == "fifo outputs") outputs_max = std::max(outputs_max, c["args"]["rows"].get<int>());
  }
  CHECK(outputs_max == 2);
}

TEST_CASE("the default window is layer 0 and a window leaves out other layers and heads") {
  const std::string trace = tiny_trace();
  const fs::path first = scratch() / "default.json", one = scratch() / "one.json";
  run_stats(trace, " --timeline " + first.string(), "default");
  const Timeline d = read_timeline(first);
  REQUIRE_FALSE(d.slices.empty());
  std::set<int> heads;
  for (const json& e : d.slices) {
    CHECK(e["args"]["layer"] == 0);
    heads.insert(e["args"]["head"].get<int>());
  }
  CHECK(heads == std::set<int>{0, 1});

  run_stats(trace, " --timeline " + one.string() + " --trace-layers 1:1 --trace-heads 1", "one");
  const Timeline o = read_timeline(one);
  std::set<std::string> units;
  for (const json& e : o.slices) {
    CHECK(e["args"]["layer"] == 1);
    CHECK(e["args"]["head"] == 1);
    units.insert(o.threads.at(e["tid"].get<int>()));
  }
  CHECK(units == std::set<std::string>{"dma", "dram", "qk_unit", "softmax", "av_unit", "writeback"});
  // One head of 8 rows: each of the 8 rows passes the QK unit, softmax and AV unit once.
  std::map<std::string, std::set<int>> rows;
  for (const json& e : o.slices)
    if (e["name"] == "row") rows[o.threads.at(e["tid"].get<int>())].insert(e["args"]["row"].get<int>());
  for (const char* unit : {"qk_unit", "softmax", "av_unit"}) CHECK(rows[unit].size() == 8);
}

TEST_CASE("the VCD has a header and a signal per unit and FIFO whose time in each state is the stats") {
  const std::string trace = tiny_trace();
  const fs::path vcd_path = scratch() / "wave" / "run.vcd";
  const json s = run_stats(trace, kSlowDram + " --trace-layers all --vcd " + vcd_path.string(), "vcd");
  const std::string vcd = slurp(vcd_path);
  CHECK(vcd.rfind("$date", 0) == 0);
  CHECK(vcd.find("$timescale\n     1 ns\n$end") != std::string::npos);
  for (const auto& e : fs::directory_iterator(vcd_path.parent_path()))
    CHECK(e.path().filename() == "run.vcd");  // no temporary file left

  const Waveform w = read_vcd(vcd);
  CHECK(w.vars == std::set<std::string>{"unit.dma", "unit.dram", "unit.qk_unit", "unit.softmax", "unit.av_unit",
                                        "unit.writeback", "fifo.heads", "fifo.scored", "fifo.normalized",
                                        "fifo.outputs"});
  CHECK(w.end == s["cycles"]["total"].get<uint64_t>());
  const json& m = s["cycles"]["by_module"];
  for (const char* unit : {"qk_unit", "softmax", "av_unit"}) {
    INFO(unit);
    const auto& at = w.time_at.at(std::string("unit.") + unit);
    CHECK((at.count(1) ? at.at(1) : 0) == m[unit]["busy"].get<uint64_t>());
    CHECK((at.count(2) ? at.at(2) : 0) == m[unit]["stall"].get<uint64_t>());
  }
  CHECK(w.time_at.at("unit.dram").at(1) == m["dram"]["busy"].get<uint64_t>());
  CHECK(w.time_at.at("fifo.outputs").count(2) == 1);  // the output FIFO is full for a while
}

TEST_CASE("tracing does not change the stats") {
  const std::string trace = tiny_trace();
  for (const std::string& machine : {kSlowDram, std::string(" --set model.scope=\"encoder\"")}) {
    INFO(machine);
    json plain = run_stats(trace, machine, "plain");
    json traced = run_stats(trace,
                            machine + " --trace-layers all --vcd " + (scratch() / "t.vcd").string() +
                                " --timeline " + (scratch() / "t.json").string(),
                            "traced");
    plain.erase("sim");
    traced.erase("sim");
    CHECK(plain.dump() == traced.dump());
  }
  // In encoder scope the GEMM engine has a track, and its spans add up too.
  const json s = run_stats(trace, " --set model.scope=\"encoder\"", "encoder");
  const Timeline t = read_timeline(scratch() / "t.json");
  CHECK(t.of("gemm_engine", "busy") == s["cycles"]["by_module"]["gemm_engine"]["busy"].get<uint64_t>());
  CHECK(t.of("gemm_engine", "busy") > 0);
  CHECK(t.of("gemm_engine", "stall") == s["cycles"]["by_module"]["gemm_engine"]["stall"].get<uint64_t>());
  // The engine's bursts on the shared DRAM channel are on the dram track with the rest.
  CHECK(t.of("dram", "busy") == s["cycles"]["by_module"]["dram"]["busy"].get<uint64_t>());
  CHECK(t.of("dma", "stall") + t.of("writeback", "stall") == s["cycles"]["by_module"]["dram"]["stall"].get<uint64_t>());
}

TEST_CASE("with overlap_gemm on the shared channel the timeline adds up and tracing changes nothing") {
  // The engine's bursts, the head loads and the write-backs contend on a slow channel.
  const std::string trace = tiny_trace();
  const std::string machine = kSlowDram + " --set model.scope=\"encoder\" --set pipeline.overlap_gemm=true";
  json plain = run_stats(trace, machine, "overlap_plain");
  const fs::path timeline = scratch() / "overlap.json";
  json traced = run_stats(trace, machine + " --trace-layers all --timeline " + timeline.string(), "overlap_traced");
  plain.erase("sim");
  traced.erase("sim");
  CHECK(plain.dump() == traced.dump());
  const Timeline t = read_timeline(timeline);
  const json& m = traced["cycles"]["by_module"];
  for (const char* unit : {"gemm_engine", "qk_unit", "softmax", "av_unit"}) {
    INFO(unit);
    CHECK(t.of(unit, "busy") == m[unit]["busy"].get<uint64_t>());
    CHECK(t.of(unit, "stall") == m[unit]["stall"].get<uint64_t>());
  }
  CHECK(t.of("dram", "busy") == m["dram"]["busy"].get<uint64_t>());
  CHECK(t.of("dma", "stall") + t.of("writeback", "stall") == m["dram"]["stall"].get<uint64_t>());
  CHECK(m["dram"]["stall"].get<uint64_t>() > 0);
  std::set<std::string> jobs;
  for (const json& e : t.slices)
    if (t.threads.at(e["tid"].get<int>()) == "gemm_engine" && e["cat"] == "busy") jobs.insert(e["name"].get<std::string>());
  CHECK(jobs == std::set<std::string>{"L0.qkv.h0", "L0.qkv.h1", "L0.out_proj", "L0.ffn1", "L0.ffn2",
                                      "L1.qkv.h0", "L1.qkv.h1", "L1.out_proj", "L1.ffn1", "L1.ffn2"});
}

TEST_CASE("bad windows are one-line usage errors and leave no file") {
  const std::string trace = tiny_trace();
  const fs::path dir = scratch() / "bad";
  fs::create_directories(dir);
  const std::string files = " --timeline " + (dir / "t.json").string() + " --vcd " + (dir / "t.vcd").string();
  const auto one_line = [](const Result& r) { return std::count(r.out.begin(), r.out.end(), '\n') == 1; };

  Result r = attnsim::test::run_attnsim("run -q --trace " + trace + files + " --trace-layers 0-1");
  CHECK(r.code == 2);
  CHECK(one_line(r));
  CHECK_THAT(r.out, Catch::StartsWith("attnsim: run: --trace-layers: expected A:B (inclusive)"));

  r = attnsim::test::run_attnsim("run -q --trace " + trace + files + " --trace-heads 3:1");
  CHECK(r.code == 2);
  CHECK(one_line(r));
  CHECK_THAT(r.out, Catch::Contains("--trace-heads: '3:1' is empty"));

  r = attnsim::test::run_attnsim("run -q --trace " + trace + " --trace-layers 1");
  CHECK(r.code == 2);
  CHECK(one_line(r));
  CHECK_THAT(r.out, Catch::Contains("give one of them"));

  r = attnsim::test::run_attnsim("run -q --trace " + trace + files + " --trace-layers 2:3");
  CHECK(r.code == 2);
  CHECK(one_line(r));
  CHECK_THAT(r.out, Catch::Contains("--trace-layers '2:3': " + trace + " has 2 layers (0 to 1)"));

  r = attnsim::test::run_attnsim("run -q --trace " + trace + files + " --trace-heads 2:");
  CHECK(r.code == 2);
  CHECK(one_line(r));
  CHECK_THAT(r.out, Catch::Contains("--trace-heads '2:': " + trace + " has 2 heads (0 to 1)"));
  CHECK(fs::is_empty(dir));
}

TEST_CASE("with forced K/V tiling the timeline adds up and tracing changes nothing") {
  // 8 tokens in key tiles of 4 (segments of 2) and query blocks of 3 rows: 3 blocks x 2
  // tiles, two tile buffers; the slow channel makes the DMA wait for them and the write-back
  // stall.
  const std::string trace = tiny_trace();
  const std::string machine = kSlowDram + " --set reuse_buffer.entries=2 --set kv_tiling.mode=always"
                                          " --set kv_tiling.key_tile=4 --set kv_tiling.query_tile=3";
  json plain = run_stats(trace, machine, "tiled_plain");
  const fs::path timeline = scratch() / "tiled.json";
  json traced = run_stats(trace, machine + " --trace-layers all --timeline " + timeline.string(), "tiled_traced");
  plain.erase("sim");
  traced.erase("sim");
  CHECK(plain.dump() == traced.dump());
  const Timeline t = read_timeline(timeline);
  const json& m = traced["cycles"]["by_module"];
  for (const char* unit : {"qk_unit", "softmax", "av_unit"}) {
    INFO(unit);
    CHECK(t.of(unit, "busy") == m[unit]["busy"].get<uint64_t>());
    CHECK(t.of(unit, "stall") == m[unit]["stall"].get<uint64_t>());
  }
  CHECK(t.of("dram", "busy") == m["dram"]["busy"].get<uint64_t>());
  CHECK(t.of("dma", "stall") + t.of("writeback", "stall") == m["dram"]["stall"].get<uint64_t>());
  CHECK(m["dram"]["stall"].get<uint64_t>() > 0);
}

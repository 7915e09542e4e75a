// The activity recorder on its own: window syntax, and a hand-driven design whose spans,
// FIFO levels, VCD value changes and timeline events are known cycle by cycle. Each
// TEST_CASE elaborates at most one design: ctest runs each in its own process.
#include "arch/activity_trace.h"
#include "arch/kernel_time.h"
#include "arch/sc_threads.h"

#include "tests/support/sync_log.h"
#include "tests/support/vcd.h"

#include "core/file_io.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <systemc>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <unistd.h>
#include <vector>

using namespace attnsim;
namespace fs = std::filesystem;

namespace {

fs::path scratch() {
  const fs::path dir = fs::temp_directory_path() / ("attnsim_activity_" + std::to_string(getpid()));
  fs::create_directories(dir);
  return dir;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}


// The identifier of the VCD variable called `name`.
std::string vcd_id(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string var, kind, width, id, n;
    if (words >> var >> kind >> width >> id >> n && var == "$var" && n == name) return id;
  }
  return "?";
}

// Drives a recorder as the units do, at hand-picked cycles:
//  qk_unit: busy [0, 5) known in advance, then blocked on its output [5, 8);
//  dram: two back-to-back transfers [10, 14) and [14, 20) reserved at cycle 0, and a
//    zero-length one that must vanish;
//  FIFO "scored" (depth 4): written at 2 and 3, read at 6; the window opens at 0 (a head
//    enters) and closes at 9 (it leaves).
struct Driver : sc_core::sc_module {
  sc_core::sc_fifo<int> fifo;
  ActivityRecorder recorder;

  Driver(sc_core::sc_module_name name, const TraceOptions& options)
      : sc_module(name), fifo("scored", 4), recorder("recorder", options, {TraceUnit::dram, TraceUnit::qk_unit}) {
    recorder.watch_fifo(TraceFifo::scored, fifo);
    SC_HAS_PROCESS(Driver);
    SC_THREAD(unit);
    SC_THREAD(producer);
    SC_THREAD(consumer);
  }
  void unit() {
    const TraceTag row{0, 1, 2};
    recorder.head_enters();
    recorder.interval(TraceUnit::qk_unit, kBusy, Cycles(0), Cycles(5), "row", row);
    recorder.interval(TraceUnit::dram, kBusy, Cycles(10), Cycles(14), "read Q K V", {0, 1, -1});
    recorder.interval(TraceUnit::dram, kBusy, Cycles(14), Cycles(20), "write row", row);
    recorder.interval(TraceUnit::dram, kBusy, Cycles(20), Cycles(20), "nothing", row);
    wait_cycles(Cycles(5));
    recorder.open(TraceUnit::qk_unit, kStall, "stall: output FIFO full", row);
    wait_cycles(Cycles(3));
    recorder.close(TraceUnit::qk_unit);
    wait_cycles(Cycles(1));
    recorder.head_leaves();
  }
  void producer() {
    wait_until(Cycles(2));
    fifo.write(1);
    wait_cycles(Cycles(1));
    fifo.write(2);
  }
  void consumer() {
    wait_until(Cycles(6));
    fifo.read();
  }
};

}  // namespace

TEST_CASE("trace windows parse as inclusive ranges") {
  const auto check = [](const std::string& text, int first, int last) {
    const TraceRange r = parse_trace_range(text, "--trace-layers");
    CHECK(r.first == first);
    CHECK(r.last == last);
  };
  check("0:3", 0, 3);
  check("2", 2, 2);
  check("4:", 4, INT_MAX);
  check(":1", 0, 1);
  check("all", 0, INT_MAX);
  CHECK(parse_trace_range("1:2", "x").contains(2));
  CHECK_FALSE(parse_trace_range("1:2", "x").contains(3));
  CHECK_FALSE(parse_trace_range("1:2", "x").contains(0));
  CHECK(parse_trace_range("1:2", "x").text() == "1:2");
  CHECK(parse_trace_range("4:", "x").text() == "4:");
  CHECK(parse_trace_range("3", "x").text() == "3");
  CHECK(TraceRange{}.text() == "all");
}

TEST_CASE("bad trace windows are one-line errors naming the flag") {
  for (const char* bad : {"", ":", "a", "1-2", "-1", "1:x", "1:2:3", " 1", "1:0", "99999999999"}) {
    INFO("window '" << bad << "'");
    try {
      parse_trace_range(bad, "--trace-heads");
      FAIL("accepted");
    } catch (const std::invalid_argument& e) {
      const std::string msg = e.what();
      CHECK(msg.rfind("--trace-heads: ", 0) == 0);
      CHECK(msg.find('\n') == std::string::npos);
    }
  }
}

TEST_CASE("GEMM job names give their layer") {
  CHECK(gemm_job_layer("L0.qkv") == 0);
  CHECK(gemm_job_layer("L11.ffn2") == 11);
  CHECK(gemm_job_layer("qkv") == -1);
  CHECK(gemm_job_layer("Lx.qkv") == -1);
  CHECK(gemm_job_layer("L3") == -1);
}

TEST_CASE("spans FIFO levels VCD and timeline land on the cycles the units report") {
  init_kernel_time();
  const fs::path dir = scratch();
  TraceOptions options;
  options.vcd_path = (dir / "driver.vcd").string();
  options.timeline_path = (dir / "sub" / "driver.json").string();
  Driver d("driver", options);
  d.recorder.start();
  run_kernel();
  CHECK(now_cycles().count() == 20);  // the last scheduled change, the transfer ending at 20
  d.recorder.finish();

  // Spans as reported; the zero-length transfer is dropped.
  const auto& spans = d.recorder.spans();
  REQUIRE(spans.size() == 4);
  std::vector<std::tuple<TraceUnit, UnitState, uint64_t, uint64_t, std::string>> got;
  for (const auto& s : spans) got.emplace_back(s.unit, s.state, s.begin, s.end, s.what);
  CHECK(got[0] == std::make_tuple(TraceUnit::qk_unit, kBusy, uint64_t{0}, uint64_t{5}, std::string("row")));
  CHECK(got[1] == std::make_tuple(TraceUnit::dram, kBusy, uint64_t{10}, uint64_t{14}, std::string("read Q K V")));
  CHECK(got[2] == std::make_tuple(TraceUnit::dram, kBusy, uint64_t{14}, uint64_t{20}, std::string("write row")));
  CHECK(got[3] == std::make_tuple(TraceUnit::qk_unit, kStall, uint64_t{5}, uint64_t{8},
                                  std::string("stall: output FIFO full")));
  CHECK(spans[3].tag.layer == 0);
  CHECK(spans[3].tag.head == 1);
  CHECK(spans[3].tag.row == 2);

  // FIFO level at the end of each cycle it changed: 0 when the window opens, 1 at 2,
  // 2 at 3, 1 at 6, and 0 again when the window closes at 9.
  std::vector<std::pair<uint64_t, int>> levels;
  for (const auto& l : d.recorder.levels(TraceFifo::scored)) levels.emplace_back(l.at, l.value);
  CHECK(levels == std::vector<std::pair<uint64_t, int>>{{0, 0}, {2, 1}, {3, 2}, {6, 1}, {9, 0}});
  CHECK(d.recorder.levels(TraceFifo::heads).empty());  // not watched

  // The VCD: header, one variable per traced unit and watched FIFO, and the same changes;
  // the back-to-back transfers stay 1 through cycle 14.
  REQUIRE(fs::exists(options.vcd_path));
  for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().string().find(".tmp.") == std::string::npos);
  const std::string vcd = slurp(options.vcd_path);
  CHECK(vcd.rfind("$date", 0) == 0);
  CHECK(vcd.find("$timescale\n     1 ns\n$end") != std::string::npos);
  CHECK(vcd.find("$enddefinitions") != std::string::npos);
  const auto changes = attnsim::test::parse_vcd(vcd).changes;
  using Changes = std::vector<std::pair<uint64_t, uint64_t>>;
  CHECK(changes.at("unit.qk_unit") == Changes{{0, 1}, {5, 2}, {8, 0}});
  CHECK(changes.at("unit.dram") == Changes{{0, 0}, {10, 1}, {20, 0}});
  CHECK(changes.at("fifo.scored") == Changes{{0, 0}, {2, 1}, {3, 2}, {6, 1}, {9, 0}});
  // It ends at the last cycle, 20, with that cycle's changes, and no time appears twice.
  CHECK(vcd.substr(vcd.rfind("\n#") + 1) == "#20\nb0 " + vcd_id(vcd, "dram") + "\n\n");
  CHECK(changes.count("unit.softmax") == 0);
  CHECK(changes.count("fifo.heads") == 0);

  // The timeline: 1 ns on the viewer = 1 cycle (ts in us = cycles / 1000).
  const nlohmann::json t = nlohmann::json::parse(slurp(options.timeline_path));
  CHECK(t["displayTimeUnit"] == "ns");
  std::map<int, std::string> threads;
  std::vector<nlohmann::json> slices, counters;
  for (const auto& e : t["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "thread_name") threads[e["tid"].get<int>()] = e["args"]["name"];
    if (e["ph"] == "X") slices.push_back(e);
    if (e["ph"] == "C") counters.push_back(e);
  }
  CHECK(threads == std::map<int, std::string>{{2, "dram"}, {3, "qk_unit"}});
  REQUIRE(slices.size() == 4);
  CHECK(slices[3]["name"] == "stall: output FIFO full");
  CHECK(slices[3]["cat"] == "stall");
  CHECK(slices[3]["tid"] == 3);
  CHECK(std::llround(slices[3]["ts"].get<double>() * 1000) == 5);
  CHECK(std::llround(slices[3]["dur"].get<double>() * 1000) == 3);
  CHECK(slices[3]["args"] == nlohmann::json{{"cycles", 3}, {"layer", 0}, {"head", 1}, {"row", 2}});
  CHECK(slices[1]["args"] == nlohmann::json{{"cycles", 4}, {"layer", 0}, {"head", 1}});
  REQUIRE(counters.size() == 5);
  CHECK(counters[2]["name"] == "fifo scored");
  CHECK(std::llround(counters[2]["ts"].get<double>() * 1000) == 3);
  CHECK(counters[2]["args"]["rows"] == 2);
}

TEST_CASE("a run that fails before finish leaves no VCD behind") {
  init_kernel_time();
  const fs::path dir = scratch() / "failed";
  fs::create_directories(dir);
  TraceOptions options;
  options.vcd_path = (dir / "never.vcd").string();
  {
    Driver d("driver", options);
    d.recorder.start();
    run_kernel(Cycles(4));
  }  // destroyed without finish(): as when the simulation throws
  CHECK(fs::is_empty(dir));
}

TEST_CASE("the VCD and the timeline are fsynced, renamed into place, and their directory fsynced") {
  init_kernel_time();
  const fs::path dir = fs::canonical(scratch()) / "durable";
  fs::create_directories(dir);
  TraceOptions options;
  options.vcd_path = (dir / "d.vcd").string();
  options.timeline_path = (dir / "d.json").string();
  Driver d("driver", options);
  d.recorder.start();
  sc_core::sc_start();
  test::SyncLog log;
  d.recorder.finish();
  const std::string vcd_tmp = options.vcd_path + ".tmp." + this_host() + "." + std::to_string(getpid()) + ".vcd";
  const std::string json_tmp = temp_path_for(options.timeline_path);
  CHECK(log.calls == std::vector<std::string>{"fsync " + vcd_tmp, "rename " + vcd_tmp + " -> " + options.vcd_path,
                                              "fsync " + dir.string(), "fsync " + json_tmp,
                                              "rename " + json_tmp + " -> " + options.timeline_path,
                                              "fsync " + dir.string()});
}

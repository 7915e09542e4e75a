// The attnsim command line as a user drives it: exit codes, one-line errors naming the
// file and the JSON path or tensor, no partial output file, byte-identical stats.
#include "arch/qk_math.h"
#include "tests/support/cli.h"
#include "workloads/safetensors.h"
#include "workloads/trace.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

using Result = attnsim::test::CliResult;
using attnsim::test::count_lines;


fs::path scratch() { return attnsim::test::scratch_dir("cli"); }

std::string write(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
  return path.string();
}

const std::string kDemo = std::string(ATTNSIM_SOURCE_DIR) + "/workloads/demo.safetensors";

// A small trace so that whole runs take milliseconds.
std::string small_trace() {
  const fs::path t = scratch() / "small.safetensors";
  const Result r = attnsim::test::run_attnsim("trace synth --out " + t.string() + " --layers 2 --heads 2 --tokens 48 --head-dim 16 --seed 3");
  REQUIRE(r.code == 0);
  return t.string();
}


}  // namespace

TEST_CASE("a bad config value fails with one line naming the file and the path, and no output") {
  const fs::path dir = scratch();
  const std::string cfg = write(dir / "bad.json", R"({"schema": "attnsim.config/1", "qk_unit": {"lanes": 0}})");
  const fs::path out = dir / "stats.json";
  const Result r = attnsim::test::run_attnsim("run --config " + cfg + " --trace " + small_trace() + " --out " + out.string());
  CHECK(r.code != 0);
  CHECK(r.out == "attnsim: " + cfg + ": qk_unit.lanes: must be >= 1, got 0\n");
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("an unknown key gets a did-you-mean") {
  const fs::path dir = scratch();
  const std::string cfg = write(dir / "typo.json", R"({"schema": "attnsim.config/1", "qk_unit": {"lanse": 8}})");
  const Result r = attnsim::test::run_attnsim("run --config " + cfg + " --trace " + small_trace());
  CHECK(r.code != 0);
  CHECK(r.out.find("qk_unit.lanse: unknown key (did you mean 'lanes'?)") != std::string::npos);
  CHECK(count_lines(r.out) == 1);
}

TEST_CASE("a bad trace fails with one line naming the file, and no output") {
  const fs::path dir = scratch();
  const std::string bad = write(dir / "junk.safetensors", "not a safetensors file at all");
  const fs::path out = dir / "stats.json";
  const Result r = attnsim::test::run_attnsim("run --trace " + bad + " --out " + out.string());
  CHECK(r.code != 0);
  CHECK(r.out.find(bad) != std::string::npos);
  CHECK(count_lines(r.out) == 1);
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("a per-head list that does not fit the trace names the config path") {
  const fs::path dir = scratch();
  const std::string cfg =
      write(dir / "heads.json", R"({"schema": "attnsim.config/1", "comparator": {"gamma": [0.1, 0.2, 0.3]}})");
  const Result r = attnsim::test::run_attnsim("run --config " + cfg + " --trace " + small_trace());
  CHECK(r.code != 0);
  CHECK(r.out == "attnsim: " + cfg + ": comparator.gamma: has 3 values, the trace has 2 heads\n");
}

TEST_CASE("an SRAM too small for one K/V tile and one query row is a config error") {
  // A head that does not fit is K/V-tiled (arch/kv_tiling.h); one tile of the 48 keys
  // (K and V at d = 16, B = 8: 1.5 KiB) and a row do not fit in 1 KiB.
  const fs::path out = scratch() / "small-sram.json";
  const Result r = attnsim::test::run_attnsim("run --trace " + small_trace() + " --out " + out.string() +
                                              " --set sram.capacity_kib=1");
  CHECK(r.code != 0);
  CHECK(r.out == "attnsim: --set sram.capacity_kib: too small for one K/V tile of 48 keys and one query row (need 2 KiB, have 1)\n");
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("K/V tiling: bad keys are one line naming the key, no output") {
  const fs::path out = scratch() / "tiling.json";
  const std::string base = "run --trace " + small_trace() + " --out " + out.string() + " --set kv_tiling.mode=always --set ";
  Result r = attnsim::test::run_attnsim(base + "kv_tiling.key_tile=100");
  CHECK(r.code != 0);
  CHECK(r.out == "attnsim: --set kv_tiling.key_tile: must be a multiple of reuse_buffer.entries (4096) in latte mode, so that no segment straddles two tiles, got 100\n");
  r = attnsim::test::run_attnsim(base + "candidates.source=tree");
  CHECK(r.code != 0);
  CHECK(r.out.find("candidates.source: must be \"all\" when heads are K/V-tiled (kv_tiling.mode is \"always\")") != std::string::npos);
  r = attnsim::test::run_attnsim(base + "kv_tiling.query_tile=100000");
  CHECK(r.code != 0);
  CHECK(r.out.find("kv_tiling.query_tile: too large") != std::string::npos);
  r = attnsim::test::run_attnsim(base + "kv_tiling.mode=sometimes");
  CHECK(r.code != 0);
  CHECK(r.out.find("kv_tiling.mode") != std::string::npos);
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("memory-system keys out of range: one line naming the key, no output") {
  const fs::path out = scratch() / "mem.json";
  const std::string base = "run --trace " + small_trace() + " --out " + out.string() + " --set ";
  Result r = attnsim::test::run_attnsim(base + "qk_unit.query_block=49");
  CHECK(r.code != 0);
  CHECK(r.out == "attnsim: --set qk_unit.query_block: must be <= N, the layer's queries (layer 0 of " + small_trace() +
                     " has N = 48), got 49\n");
  r = attnsim::test::run_attnsim(base + "qk_unit.query_block=0");
  CHECK(r.out == "attnsim: --set qk_unit.query_block: must be >= 1, got 0\n");
  r = attnsim::test::run_attnsim(base + "qk_unit.lane_width=0");
  CHECK(r.out == "attnsim: --set qk_unit.lane_width: must be >= 1, got 0\n");
  CHECK_FALSE(fs::exists(out));
  CHECK(attnsim::test::run_attnsim(base + "qk_unit.query_block=48").code == 0);  // N itself is fine
  fs::remove(out);
  r = attnsim::test::run_attnsim(base + "sram.ports=0");
  CHECK(r.out == "attnsim: --set sram.ports: must be >= 1, got 0\n");
  r = attnsim::test::run_attnsim(base + "sram.width_bits=12 --set sram.ports=2");
  CHECK(r.out == "attnsim: --set sram.width_bits: must be a multiple of qk_unit.bits (8-bit elements), got 12\n");
  r = attnsim::test::run_attnsim(base + "reuse_buffer.ports=0");
  CHECK(r.out == "attnsim: --set reuse_buffer.ports: must be >= 1, got 0\n");
  r = attnsim::test::run_attnsim(base + "sram.ports=1 --set qk_unit.mode=early_term --set qk_unit.lane_sync=independent");
  CHECK(r.code != 0);
  CHECK(r.out.find("sram.ports: not modelled with early_term and qk_unit.lane_sync = \"independent\"") != std::string::npos);
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("missing --trace and unknown options are usage errors") {
  CHECK(attnsim::test::run_attnsim("run").code != 0);
  CHECK(attnsim::test::run_attnsim("run --trace x --bogus").code != 0);
  CHECK(attnsim::test::run_attnsim("frobnicate").code != 0);
  CHECK(attnsim::test::run_attnsim("--version").out.rfind("attnsim ", 0) == 0);
  CHECK(attnsim::test::run_attnsim("run --help").code == 0);
}

TEST_CASE("the same inputs give byte-identical stats apart from sim") {
  const fs::path dir = scratch();
  const std::string trace = small_trace();
  const fs::path a = dir / "a.json", b = dir / "b.json";
  REQUIRE(attnsim::test::run_attnsim("run -q --threads 1 --trace " + trace + " --out " + a.string()).code == 0);
  REQUIRE(attnsim::test::run_attnsim("run -q --threads 2 --trace " + trace + " --out " + b.string()).code == 0);
  nlohmann::json ja, jb;
  std::ifstream(a) >> ja;
  std::ifstream(b) >> jb;
  ja.erase("sim");
  jb.erase("sim");
  CHECK(ja.dump() == jb.dump());
}

// Rows spread over threads, the layer's tensors loaded by several, and heads computed
// ahead of the kernel (HeadSource): none of it may change a number. Every preset the demo
// trace can run, at 1, 2 and 3 threads (3: more threads than this machine's cores).
TEST_CASE("every preset gives the same stats with 1, 2 and 3 threads") {
  const fs::path dir = scratch();
  for (const char* preset : {"dense-baseline", "latte", "leopard", "transkimmer", "fca", "treeformer",
                             "treeformer-latte", "scatterbrain"}) {
    std::string first;
    for (const int threads : {1, 2, 3}) {
      const fs::path out = dir / (std::string(preset) + "-" + std::to_string(threads) + ".json");
      REQUIRE(attnsim::test::run_attnsim("run -q --threads " + std::to_string(threads) + " --config " +
                                         std::string(ATTNSIM_SOURCE_DIR) + "/configs/" + preset + ".json --trace " +
                                         kDemo + " --out " + out.string())
                  .code == 0);
      nlohmann::json stats;
      std::ifstream(out) >> stats;
      stats.erase("sim");
      if (threads == 1)
        first = stats.dump();
      else
        CHECK((preset + (" at " + std::to_string(threads)) + (stats.dump() == first ? " same" : " differs")) ==
              (preset + (" at " + std::to_string(threads)) + " same"));
    }
  }
}

TEST_CASE("stats carry every key SEMANTICS section 7 requires") {
  const fs::path out = scratch() / "s.json";
  REQUIRE(attnsim::test::run_attnsim("run -q --trace " + kDemo + " --out " + out.string()).code == 0);
  nlohmann::json s;
  std::ifstream(out) >> s;
  CHECK(s["schema"] == "attnsim.stats/1");
  CHECK(s["config"]["qk_unit"]["mode"] == "latte");
  CHECK(s["trace"]["sha256"].get<std::string>().size() == 64);
  CHECK(s["cycles"]["total"].get<uint64_t>() > 0);
  for (const char* m : {"dram", "sram", "qk_unit", "comparator", "reuse_buffer", "softmax", "av_unit"}) {
    CHECK(s["cycles"]["by_module"][m].contains("busy"));
    CHECK(s["cycles"]["by_module"][m].contains("stall"));
    CHECK(s["energy_pj"]["by_module"][m].contains("dynamic"));
    CHECK(s["energy_pj"]["by_module"][m].contains("static"));
    CHECK(s["counters"].contains(m));
  }
  for (const char* k : {"candidate_keys", "filtered_keys", "filtered_ratio", "exact_ratio"}) {
    CHECK(s["filter"].contains(k));
    CHECK(s["filter"]["by_layer"][0]["by_head"][0].contains(k));
  }
  CHECK(s["filter"]["by_layer"].size() == 4);
  CHECK(s["filter"]["by_layer"][0]["by_head"].size() == 4);
  CHECK(s["quality"].contains("rel_error"));
  CHECK(s["quality"].contains("mass_recall"));
  CHECK(s["quality"].contains("quant_error"));  // the demo trace is F16
  CHECK(s["sim"].contains("wall_seconds"));
  CHECK(s["sim"].contains("cycles_per_second"));
  // energy total is the sum of the modules' parts
  double sum = 0;
  for (const auto& [m, e] : s["energy_pj"]["by_module"].items()) sum += e["dynamic"].get<double>() + e["static"].get<double>();
  CHECK(s["energy_pj"]["total"].get<double>() == Approx(sum).epsilon(1e-12));
}

TEST_CASE("compare prints speedup and energy reduction against the first run") {
  const fs::path dir = scratch();
  const std::string trace = small_trace();
  REQUIRE(attnsim::test::run_attnsim("run -q --trace " + trace + " --out " + (dir / "x.json").string()).code == 0);
  const Result r = attnsim::test::run_attnsim("compare " + (dir / "x.json").string() + " " + (dir / "x.json").string());
  CHECK(r.code == 0);
  CHECK(r.out.find("1.00x") != std::string::npos);
}

TEST_CASE("gamma and the per-head margins it maps to give identical filtering") {
  // T_h = floor(-ln(gamma) * sqrt(d) / (scale_q * scale_k)) with each head's own scales.
  const attnsim::Trace trace(kDemo);
  nlohmann::json margins = nlohmann::json::array();
  for (int l = 0; l < trace.layers(); ++l) {
    const attnsim::LayerView v = trace.layer(l, 8);
    nlohmann::json row = nlohmann::json::array();
    for (const auto& h : v.head) row.push_back(attnsim::qk::latte_margin(0.02, v.d, h.scale_q, h.scale_k));
    margins.push_back(row);
  }
  const fs::path dir = scratch();
  const std::string with_margin = write(
      dir / "margin.json",
      nlohmann::json{{"schema", "attnsim.config/1"}, {"comparator", {{"margin", margins}}}}.dump());
  const fs::path a = dir / "gamma.json", b = dir / "margin_stats.json";
  REQUIRE(attnsim::test::run_attnsim("run -q --trace " + kDemo + " --set comparator.gamma=0.02 --out " + a.string()).code == 0);
  REQUIRE(attnsim::test::run_attnsim("run -q --config " + with_margin + " --trace " + kDemo + " --out " + b.string()).code == 0);
  nlohmann::json ja, jb;
  std::ifstream(a) >> ja;
  std::ifstream(b) >> jb;
  CHECK(ja["filter"].dump() == jb["filter"].dump());
  CHECK(ja["cycles"].dump() == jb["cycles"].dump());
  CHECK(ja["filter"]["filtered_keys"].get<uint64_t>() > 0);
}

TEST_CASE("a NaN found mid-run is still a one-line error naming the tensor") {
  // The values are read when the layer is loaded, inside the simulation.
  const fs::path dir = scratch();
  attnsim::SafetensorsWriter w;
  std::vector<float> ones(16, 1.0f), bad(16, 1.0f);
  bad[5] = std::nanf("");
  for (int l = 0; l < 2; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    w.add_float(p + "q", attnsim::DType::F32, {1, 4, 4}, ones);
    w.add_float(p + "k", attnsim::DType::F32, {1, 4, 4}, l == 1 ? bad : ones);
    w.add_float(p + "v", attnsim::DType::F32, {1, 4, 4}, ones);
  }
  const std::string trace = (dir / "nan.safetensors").string();
  w.write(trace);
  const fs::path out = dir / "nan.json";
  const Result r = attnsim::test::run_attnsim("run --trace " + trace + " --out " + out.string());
  CHECK(r.code != 0);
  CHECK(r.out == "attnsim: " + trace + ": layers.1.k: NaN at index [0, 1, 1]\n");
  CHECK_FALSE(fs::exists(out));
}

// Whole runs with the candidate generators and the low-rank unit on the hand-made tiny
// trace (tests/support/tiny_trace.h), every cycle derived by hand; and the one-line errors
// of bad mechanism input, through the attnsim binary. Each TEST_CASE runs in its own
// process (SystemC allows one simulation per process).
#include "sim/config.h"
#include "sim/run.h"
#include "tests/support/cli.h"
#include "tests/support/tiny_trace.h"
#include "workloads/safetensors.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

using namespace attnsim;

namespace {

// The small machine of tests/sim/accelerator_test.cpp, bit-parallel dense QK unit of 2 lanes.
std::vector<std::string> tiny_machine(std::vector<std::string> more) {
  std::vector<std::string> sets = {"qk_unit.type=bit_parallel", "qk_unit.mode=dense", "qk_unit.lanes=2",
                                   "dram.bytes_per_cycle=4", "dram.latency_cycles=10", "sram.capacity_kib=1",
                                   "sram.banks=2", "sram.width_bits=64", "softmax.elements_per_cycle=2",
                                   "softmax.latency_cycles=1", "av_unit.macs_per_cycle=8",
                                   "av_unit.latency_cycles=1", "av_unit.output_bits=8"};
  sets.insert(sets.end(), more.begin(), more.end());
  return sets;
}

nlohmann::json run(const std::vector<std::string>& sets, const std::string& trace) {
  const Config c = resolve_config(json{{"schema", kConfigSchema}}, "test.json", sets);
  return run_simulation(c, trace, 1).stats;
}

// The tiny trace with a depth-1 tree that splits on x0 at 0.5 (w = e0, b = -0.5).
std::string tiny_trace_with_tree() {
  const std::string base = test::write_tiny_trace();
  SafetensorsFile f(base);
  SafetensorsWriter w;
  for (const char* t : {"q", "k", "v"}) {
    const std::string name = std::string("layers.0.") + t;
    w.add_float(name, DType::F32, {1, 4, 4}, f.read_float(name));
  }
  w.add_float("layers.0.tree.0.w", DType::F32, {1, 4}, {1, 0, 0, 0});
  w.add_float("layers.0.tree.0.b", DType::F32, {1}, {-0.5});
  const std::string path = (std::filesystem::path(base).parent_path() / "tiny_tree.safetensors").string();
  w.write(path);
  return path;
}

}  // namespace

TEST_CASE("Treeformer TF on the tiny trace: candidates, the tree engine's stage and the run by hand") {
  const nlohmann::json s = run(tiny_machine({"candidates.source=tree"}), tiny_trace_with_tree());
  // Keys' x0: 1, -4, 8, 0 -> x0 - 0.5 < 0 for k1, k3 (leaf 0), not for k0, k2 (leaf 1).
  // Queries' x0: 127, 2, 10, -5 -> q0, q1, q2 to leaf 1 ({0, 2}), q3 to leaf 0 ({1, 3}).
  CHECK(s["filter"]["candidate_keys"] == 8);
  CHECK(s["filter"]["exact_ratio"].get<double>() == 0.5);
  CHECK(s["filter"]["candidates_per_query"]["mean"].get<double>() == 2.0);
  CHECK(s["filter"]["candidates_per_query"]["max"] == 2);
  CHECK(s["filter"]["candidates_per_query"]["histogram"] ==
        nlohmann::json::parse(R"([{"from":0,"to":0,"count":0},{"from":1,"to":1,"count":0},{"from":2,"to":3,"count":4}])"));
  CHECK(s["config_from_trace"] == nlohmann::json{{"tree_engine.depth", 1}});
  // DMA: Q, K, V 48 bytes and the tree's 1 x (4 + 1) words = 20 bytes: 17 cycles at
  // 4 B/cycle, then 10 latency: the head is loaded at 27. Tree engine (16 MACs per stage,
  // 8 sort ops per cycle): routing (4 + 4 + 1 - 1) x ceil(4/16) = 8, bucketing 1 + 1 + 1 =
  // 3: to the QK unit at 38. QK: 2 candidates, 1 cycle per row: rows leave at 39..42.
  // Softmax (2 survivors, 1 cycle, latency 1) and AV (8 MACs, 1 cycle, latency 1) follow;
  // the last row is ready at 46, written 46 -> 47, lands at 57.
  CHECK(s["cycles"]["total"] == 57);
  CHECK(s["cycles"]["by_module"]["tree_engine"]["busy"] == 11);
  CHECK(s["cycles"]["by_module"]["qk_unit"]["busy"] == 4);
  CHECK(s["counters"]["dram"]["read_bits"] == (48 + 20) * 8);
  CHECK(s["counters"]["tree_engine"]["split_macs"] == 8 * 1 * 4);
  CHECK(s["counters"]["tree_engine"]["sort_ops"] == 2 * 4 + 2);
  CHECK(s["energy_pj"]["by_module"]["tree_engine"]["dynamic"].get<double>() > 0);
}

TEST_CASE("the low-rank unit with every key scored: exact attention, and its two pipelines by hand") {
  const nlohmann::json s = run(tiny_machine({"lowrank_unit.enabled=true", "lowrank_unit.features=4",
                                             "lowrank_unit.macs_per_cycle=8", "lowrank_unit.exps_per_cycle=2"}),
                               test::write_tiny_trace());
  // Candidates "all", dense scoring: o_i is exact attention (SEMANTICS §5).
  CHECK(s["quality"]["rel_error"].get<double>() < 1e-12);
  CHECK(s["quality"]["mass_recall"].get<double>() == Approx(1.0).epsilon(1e-12));
  // m = 4, d = 4. Key side per key (m/2) d + d + m d + m = 8 + 4 + 16 + 4 = 32 MACs and 4
  // exps: the head's 128 MACs and 16 exps take max(128/8, 16/2) = 16 cycles. Query side
  // per row 8 + 4 + 16 + 4 + 4 survivors x (4 + 4) = 64 MACs and 4 exps: 8 cycles; 4 rows.
  CHECK(s["cycles"]["by_module"]["lowrank_unit"]["busy"] == 16 + 4 * 8);
  CHECK(s["counters"]["lowrank_unit"]["macs"] == 128 + 4 * 64);
  CHECK(s["counters"]["lowrank_unit"]["exps"] == 16 + 4 * 4);
  CHECK(s["counters"]["lowrank_unit"]["divides"] == 4 * 4);
  CHECK_FALSE(s.contains("config_from_trace"));  // features given: nothing taken from the trace
}

TEST_CASE("candidates none with the low-rank unit: no key scored, pure Performer attention") {
  const nlohmann::json s =
      run(tiny_machine({"candidates.source=none", "lowrank_unit.enabled=true"}), test::write_tiny_trace());
  CHECK(s["filter"]["candidate_keys"] == 0);
  CHECK(s["filter"]["exact_ratio"].get<double>() == 0.0);
  CHECK(s["cycles"]["by_module"]["qk_unit"]["busy"] == 0);
  CHECK(s["quality"]["mass_recall"].get<double>() == 0.0);
  CHECK(s["filter"]["candidates_per_query"]["histogram"] ==
        nlohmann::json::parse(R"([{"from":0,"to":0,"count":4}])"));
}

TEST_CASE("LSH with clusters as large as the layer: every key is a candidate, as dense") {
  const nlohmann::json s = run(tiny_machine({"candidates.source=lsh", "lsh_unit.cluster_size=4"}),
                               test::write_tiny_trace());
  CHECK(s["filter"]["candidate_keys"] == 16);
  CHECK(s["quality"]["rel_error"].get<double>() == 0.0);  // the same arithmetic as dense
  CHECK_FALSE(s.contains("config_from_trace"));  // no directions in the trace: R = 2
  // Per head: 2 x (4 + 4) x 4 = 64 projection MACs at 64 per cycle (1 cycle); per round
  // sort(4) = ceil(4/8) x 2 = 2 for queries, 2 for keys, 2 for the one key cluster (6);
  // per query the merge of its 2 clusters, 8 ids at 8 per cycle (1): 1 + 2 x 6 + 4 = 17.
  CHECK(s["cycles"]["by_module"]["lsh_unit"]["busy"] == 17);
  CHECK(s["counters"]["lsh_unit"]["merge_ops"] == 4 * 8);
}

TEST_CASE("bad mechanism input: one line naming the key or tensor, non-zero exit, no output") {
  const auto dir = test::scratch_dir("candidates_errors");
  const std::string trace = tiny_trace_with_tree(), out = (dir / "s.json").string();
  // A trace whose tree covers head 0 of a 2-head layer only.
  SafetensorsWriter w;
  const std::vector<float> qkv(2 * 3 * 2, 1.0f);
  for (const char* t : {"q", "k", "v"}) w.add_float(std::string("layers.0.") + t, DType::F32, {2, 3, 2}, qkv);
  w.add_float("layers.0.tree.0.w", DType::F32, {1, 2}, {1, 0});
  w.add_float("layers.0.tree.0.b", DType::F32, {1}, {0});
  const std::string half = (dir / "half_trees.safetensors").string();
  w.write(half);

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--trace " + half + " --set candidates.source=tree", "layers.0.tree.1.w: missing"},
      {"--trace " + trace + " --set candidates.source=tree --set tree_engine.depth=3",
       "--set tree_engine.depth: is 3, but the trace's trees (layers.0.tree.0.w) have depth 1"},
      {"--trace " + trace + " --set lowrank_unit.enabled=true --set lowrank_unit.features=5",
       "--set lowrank_unit.features: must be even"},
      {"--trace " + trace + " --set candidates.source=none", "--set candidates.source: \"none\" scores no key"},
      {"--trace " + trace + " --set lsh_unit.cluster_size=0", "--set lsh_unit.cluster_size: must be >= 1, got 0"},
      {"--trace " + trace + " --set candidates.source=tree --set tree_engine.attention=tc --set lowrank_unit.enabled=true",
       "--set lowrank_unit.enabled: needs the QK unit's survivors"},
  };
  for (const auto& [args, message] : cases) {
    INFO(args);
    const test::CliResult r = test::run_attnsim("run " + args + " --out " + out + " -q");
    CHECK(r.code != 0);
    CHECK(r.out.find(message) != std::string::npos);
    CHECK(test::count_lines(r.out) == 1);
    CHECK_FALSE(std::filesystem::exists(out));
  }
}

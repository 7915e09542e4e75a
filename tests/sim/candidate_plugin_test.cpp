// A candidate generator plugs in without touching the QK unit, the head model or the stats:
// a generator of the test's own ("odd": C_i = the odd keys the query may see, on a unit
// of its own that is busy 10 cycles per head and counts one `lookups` per row) runs through
// the whole accelerator, and every number is derived by hand.
#include "arch/candidates.h"
#include "sim/accelerator.h"
#include "sim/config.h"
#include "sim/metrics.h"
#include "tests/support/tiny_trace.h"
#include "workloads/trace.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace attnsim;

namespace {

class OddHeadCandidates : public HeadCandidates {
 public:
  OddHeadCandidates(int n, int m, bool causal) : n_(n), m_(m), causal_(causal) {}
  void row(int i, std::vector<int32_t>& out) const override {
    out.clear();
    for (int j = 1; j < visible_key_count(i, m_, causal_); j += 2) out.push_back(j);
  }
  uint64_t cycles() const override { return 10; }
  void count(ModuleActivity& unit) const override { unit.add("lookups", static_cast<uint64_t>(n_)); }

 private:
  int n_, m_;
  bool causal_;
};

class OddCandidates : public CandidateGenerator {
 public:
  std::string name() const override { return "odd"; }
  std::string unit() const override { return "odd_unit"; }
  ModuleActivity activity_template() const override { return {"odd_unit", 0, 0, {{"lookups", 0}}}; }
  std::unique_ptr<HeadCandidates> for_head(const HeadWork& head) const override {
    return std::make_unique<OddHeadCandidates>(head.n(), head.m(), head.layer->causal);
  }
};

}  // namespace

TEST_CASE("a registered generator with a unit of its own runs through the whole accelerator") {
  register_candidate_generator("odd", [](const json&) { return std::make_unique<OddCandidates>(); });
  const Config c = resolve_config(
      json{{"schema", kConfigSchema}}, "test.json",
      {"qk_unit.type=bit_parallel", "qk_unit.mode=dense", "qk_unit.lanes=2", "dram.bytes_per_cycle=4",
       "dram.latency_cycles=10", "sram.capacity_kib=1", "sram.banks=2", "sram.width_bits=64",
       "softmax.elements_per_cycle=2", "softmax.latency_cycles=1", "av_unit.macs_per_cycle=8",
       "av_unit.latency_cycles=1", "av_unit.output_bits=8"});
  const Trace trace(test::write_tiny_trace());
  Metrics metrics(trace.layers(), true);
  SimOptions options;
  options.candidates = "odd";
  const SimOutcome out = simulate(c, trace, metrics, options);

  // The DMA has the head in SRAM at 22 (48 bytes at 4 B/cycle + 10 latency, as in
  // accelerator_test); the odd unit works 10 cycles: the QK unit gets it at 32. Each row
  // scores keys {1, 3}: ceil(2/2) = 1 cycle, rows leave at 33, 34, 35, 36. Softmax (2
  // survivors, 1 cycle, latency 1) and AV (8 MACs, 1 cycle, latency 1) follow row by row;
  // the last row is ready for the write-back at 40, written 40->41, lands at 51.
  CHECK(out.total == Cycles(51));
  const auto module = [&](const std::string& name) -> const ModuleActivity& {
    for (const ModuleActivity& m : out.modules)
      if (m.name == name) return m;
    FAIL("no module " << name);
    throw;
  };
  CHECK(module("odd_unit").busy == 10);
  CHECK(module("odd_unit").counter("lookups") == 4);
  CHECK(module("qk_unit").busy == 4);
  CHECK(module("qk_unit").counter("int8_macs") == 4 * 2 * 4);
  CHECK(module("av_unit").counter("macs") == 4 * 2 * 4);

  // 8 candidates of 16 visible keys, none filtered, all 8 scored exactly.
  const nlohmann::json f = metrics.filter_json();
  CHECK(f["candidate_keys"] == 8);
  CHECK(f["filtered_keys"] == 0);
  CHECK(f["exact_ratio"].get<double>() == 0.5);
  // The quality reference still covers every visible key. In this trace each row's exact
  // attention sits on an even key (row scores: q0 753 -455 931 5, q1 -249 -649 1169 0,
  // q2 5220 160 -240 40, q3 1020 4 -4 8; logits are half of them, so the largest leads the
  // next by at least 89 in the exponent): the odd candidates hold almost none of the mass.
  const nlohmann::json q = metrics.quality_json();
  CHECK(q["mass_recall"].get<double>() < 1e-15);
  CHECK(q["rel_error"].get<double>() > 0.5);
}

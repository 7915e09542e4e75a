#pragma once
// Candidate generators: the units that decide, for every query row i of a head, which
// keys the QK unit scores (the candidate set C_i, SEMANTICS §5 "Candidate generators").
//
// The QK unit, the head model and the stats writer know a generator only through this
// interface, so a new one (Treeformer's tree-lookup engine, Scatterbrain's LSH unit) plugs
// in by implementing it and registering a name; `candidates.source` in the config picks
// the generator by that name. Built in: "all" (every key the query may see), "tree" (the
// tree-lookup engine, arch/tree_engine.h), "lsh" (the LSH unit, arch/lsh_unit.h), "none"
// (no key: pure low-rank attention with the low-rank unit).
//
// What a generator does: when a head is loaded, for_head() prepares the head's candidate
// sets (route or hash the keys) and returns a HeadCandidates that gives each row's C_i, in
// key-index order, restricted to the keys the query may see (0..i when causal).
//
// Timing rule: a generator with hardware of its own (unit() names its module) runs as a
// stage between the DMA and the QK unit (arch/candidate_stage.h): per head it is busy
// HeadCandidates::cycles(), then hands the head on (blocked on a full head queue is
// stall). A generator without a unit ("all") adds no stage and no cycles.
//
// Stats: the unit's busy/stall and the counters it declares (activity_template(), filled
// per head by HeadCandidates::count()), costed by the energy table under its module name.
#include "arch/pipeline.h"
#include "core/activity.h"
#include "core/params.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace attnsim {

// One head's candidate sets, made when the head is loaded. Thread-safe: rows() may be
// called from several threads at once.
class HeadCandidates {
 public:
  virtual ~HeadCandidates() = default;
  // C_i of row i: key ids in ascending order, each a key the query may see. Asked while
  // the head model computes the head's rows (it may read the head's dequantized rows,
  // which the model frees afterwards).
  virtual void row(int i, std::vector<int32_t>& out) const = 0;
  // Cycles the generator's unit is busy on this head (0 without a unit).
  virtual uint64_t cycles() const { return 0; }
  // Adds this head's action counts to the unit's counters.
  virtual void count(ModuleActivity& /*unit*/) const {}
  // Per-head parameters (bytes) the DMA loads with the head into the unit's buffer.
  virtual uint64_t param_bytes() const { return 0; }
  // A generator that attends aggregates itself (Treeformer TC) instead of handing keys to
  // the QK unit: attend() writes row i's output (d values) and returns how many
  // aggregates it attended; the QK unit does nothing for such rows.
  virtual bool attends_aggregates() const { return false; }
  virtual int attend(int /*i*/, double* /*out*/) const { return 0; }
};

// A HeadCandidates whose unit's cycles and action counts are worked out once per head.
class CostedHeadCandidates : public HeadCandidates {
 public:
  uint64_t cycles() const override { return cycles_; }
  void count(ModuleActivity& unit) const override {
    for (const auto& [action, n] : counts_) unit.add(action, n);
  }

 protected:
  uint64_t cycles_ = 0;
  std::vector<std::pair<std::string, uint64_t>> counts_;
};

class CandidateGenerator {
 public:
  virtual ~CandidateGenerator() = default;
  // The name `candidates.source` selects it by.
  virtual std::string name() const = 0;
  // The module name of its hardware (SEMANTICS §7, e.g. "tree_engine"); "" when it has none.
  virtual std::string unit() const { return ""; }
  // Its unit's activity with every counter it reports at zero (names fixed once).
  virtual ModuleActivity activity_template() const { return {unit(), 0, 0, {}}; }
  // Whether for_head() reads the head's dequantized Q and K (HeadWork::q_deq, k_deq).
  virtual bool uses_dequantized_rows() const { return false; }
  // Prepares one head (the layer's active tokens, causality and data are in `head`).
  virtual std::unique_ptr<HeadCandidates> for_head(const HeadWork& head) const = 0;
};

// The keys query `row` may see: all M keys, or keys 0..row when causal.
inline int visible_key_count(int row, int m, bool causal) { return causal ? std::min(row + 1, m) : m; }
void visible_keys(int row, int m, bool causal, std::vector<int32_t>& out);

// ---- registry ------------------------------------------------------------------------------

// Builds a generator from the resolved config tree (a generator reads its own section).
using CandidateFactory = std::function<std::unique_ptr<CandidateGenerator>(const json& resolved_config)>;

// Registers `name` (replacing an earlier registration of it). The built-ins are always
// there.
void register_candidate_generator(const std::string& name, CandidateFactory factory);
// Registered names, in registration order.
std::vector<std::string> candidate_generator_names();
// Throws std::invalid_argument for an unknown name.
std::unique_ptr<CandidateGenerator> make_candidate_generator(const std::string& name, const json& resolved_config);

// ---- params ----------------------------------------------------------------------------------

struct CandidatesParams {
  std::string source;

  static const ParamTable<CandidatesParams>& table() {
    static const ParamTable<CandidatesParams> t{
        "candidates", "Which keys the QK unit scores for each query (SEMANTICS §5).",
        {field(&CandidatesParams::source, "source", "all")
             .one_of({"all", "tree", "lsh", "none"})
             .doc("The candidate generator: all = every key the query may see; tree = Treeformer's tree-lookup engine; lsh = Scatterbrain's LSH unit; none = no key (with the low-rank unit).")}};
    return t;
  }
};

}  // namespace attnsim

#pragma once
// The hardware of a candidate generator that has one (arch/candidates.h), as a stage
// between the DMA and the QK unit.
//
// What it does: takes each loaded head from the DMA, prepares the head's candidate sets
// (the generator's work: routing or hashing keys and queries; already computed
// functionally by the head model) and hands the head to the QK unit.
//
// Timing rule: busy HeadCandidates::cycles() per head, then the head is passed on; time
// blocked on a full head queue is stall. It works on the next head while the QK unit
// scores the current one (the SRAM's double buffering holds both).
//
// Stats: under the generator's module name, busy, stall and the counters the generator
// declares (CandidateGenerator::activity_template, HeadCandidates::count).
#include "arch/candidates.h"
#include "arch/stage.h"

#include <memory>

namespace attnsim {

class CandidateStage : public Stage<std::shared_ptr<HeadWork>> {
 public:
  CandidateStage(sc_core::sc_module_name name, const CandidateGenerator& generator)
      : Stage(name, trace_unit_of(generator), Cycles(0), "stall: head queue full"),
        activity_(generator.activity_template()) {}

  // Its track in VCD and timeline traces.
  static TraceUnit trace_unit_of(const CandidateGenerator& g) {
    if (g.unit() == "tree_engine") return TraceUnit::tree_engine;
    if (g.unit() == "lsh_unit") return TraceUnit::lsh_unit;
    return TraceUnit::candidate_unit;
  }

  ModuleActivity activity() const {
    ModuleActivity a = activity_;
    a.busy = busy_cycles();
    a.stall = stall_cycles();
    return a;
  }

 private:
  StageWork begin(std::shared_ptr<HeadWork>& head) override {
    return {Cycles(head->candidates->cycles()), "candidates", {head->layer_index(), head->head, -1}};
  }
  void end(std::shared_ptr<HeadWork>& head, const StageWork&, bool) override { head->candidates->count(activity_); }

  ModuleActivity activity_;  // the declared counters, summed over heads
};

}  // namespace attnsim

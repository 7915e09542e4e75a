#pragma once
// skim_controller: the token-skim controller (Transkimmer, FCA), SEMANTICS §5.
//
// What it does, per layer, on jobs from the layer scheduler (the decisions themselves are
// made by the functional model, arch/skim_math.h; this unit costs them):
//  - Transkimmer, before layer l: runs the predictor MLP on the active tokens (on its own
//    MAC array, or the scheduler sends it to the GEMM engine instead), scans the active
//    list to compact it, and writes each newly skimmed token's hidden state to the
//    forwarding buffer in DRAM (it goes to the output as it is).
//  - FCA, after layer l's attention: the scores accumulate while the softmax produces
//    probabilities (score_adds, no extra cycles); then it ranks the n scores and pools the
//    tail's hidden states into C coarse tokens.
//
// Timing rule for a job: busy = ceil(predictor_macs / macs_per_cycle)
//   + ceil(tokens_scanned / tokens_per_cycle) + ceil(rank_ops / tokens_per_cycle)
//   + ceil(pool_macs / macs_per_cycle); then the forwarded hidden states
//   (tokens_forwarded x D x model.hidden_bits / 8 bytes) go through the DRAM channel
//   (waiting behind other transfers is stall).
//
// Params (SkimControllerParams in arch/unit_params.h, where the defaults, units and docs
// are declared once): mode, source, keep, groups, predictor_unit, macs_per_cycle,
// tokens_per_cycle. Counters: macs, token_ops, score_adds.
#include "arch/dram.h"
#include "arch/unit_params.h"
#include "core/activity.h"

#include <systemc>

#include <cstdint>
#include <ostream>

namespace attnsim {

class ActivityRecorder;

struct SkimJob {
  int layer = 0;
  uint64_t predictor_macs = 0;    // Transkimmer MLP on the controller's own array
  uint64_t tokens_scanned = 0;    // compaction of the active list
  uint64_t tokens_forwarded = 0;  // newly skimmed tokens, hidden state to the forward buffer
  uint64_t rank_ops = 0;          // FCA: compares to pick the top R
  uint64_t pool_macs = 0;         // FCA: tail hidden states x weights
  uint64_t score_adds = 0;        // FCA: probabilities accumulated into scores (overlapped)
  uint64_t d_model = 0;
  bool operator==(const SkimJob& o) const { return layer == o.layer && predictor_macs == o.predictor_macs; }
};
inline std::ostream& operator<<(std::ostream& os, const SkimJob& j) { return os << "skim job L" << j.layer; }

class SkimController : public sc_core::sc_module {
 public:
  sc_core::sc_fifo_in<SkimJob> job_in;
  sc_core::sc_fifo_out<SkimJob> done;

  SkimController(sc_core::sc_module_name name, const SkimControllerParams& p, int hidden_bits,
                 DramChannel& dram);
  ModuleActivity activity() const;
  // Activity tracing (arch/activity_trace.h); null when off.
  void set_tracer(ActivityRecorder* t) { trace_ = t; }

 private:
  void run();
  SkimControllerParams p_;
  int hidden_bits_;
  DramChannel& dram_;
  uint64_t busy_ = 0, stall_ = 0, macs_ = 0, token_ops_ = 0, score_adds_ = 0;
  ActivityRecorder* trace_ = nullptr;
};

}  // namespace attnsim

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
// Params: SkimControllerParams below. Counters: macs, token_ops, score_adds.
#include "arch/dram.h"
#include "arch/stage.h"
#include "core/activity.h"
#include "core/params.h"

#include <systemc>

#include <cstdint>
#include <ostream>

namespace attnsim {

enum class SkimMode { off, transkimmer, fca };
enum class SkimSource { trace, predictor };
enum class PredictorUnit { dedicated, gemm_engine };

inline const Choices<SkimMode>& skim_modes() {
  static const Choices<SkimMode> c{{"off", SkimMode::off}, {"transkimmer", SkimMode::transkimmer}, {"fca", SkimMode::fca}};
  return c;
}
inline const Choices<SkimSource>& skim_sources() {
  static const Choices<SkimSource> c{{"trace", SkimSource::trace}, {"predictor", SkimSource::predictor}};
  return c;
}
inline const Choices<PredictorUnit>& predictor_units() {
  static const Choices<PredictorUnit> c{{"dedicated", PredictorUnit::dedicated}, {"gemm_engine", PredictorUnit::gemm_engine}};
  return c;
}

struct SkimControllerParams {
  SkimMode mode;
  SkimSource source;
  json keep;  // FCA: R_l per layer, or a fraction (checked against the trace by the layer plan)
  int groups;
  PredictorUnit predictor_unit;
  int macs_per_cycle;    // the dedicated unit's MAC array
  int tokens_per_cycle;  // compaction / selection throughput

  static const ParamTable<SkimControllerParams>& table() {
    static const ParamTable<SkimControllerParams> t{
        "skim_controller", "Token-skim controller (drops or merges tokens layer by layer).",
        {choice(&SkimControllerParams::mode, "mode", SkimMode::off, skim_modes()).doc("Skimming mechanism."),
         choice(&SkimControllerParams::source, "source", SkimSource::trace, skim_sources())
             .doc("Transkimmer keep masks: from the trace, or computed by the predictor MLP."),
         field(&SkimControllerParams::keep, "keep", 0.5)
             .per_layer()
             .doc("FCA: R_l per layer (list of integers), or a fraction of the layer's tokens.")
             .above(0.0),
         field(&SkimControllerParams::groups, "groups", 5).doc("FCA: number of coarse groups C.").min(1),
         choice(&SkimControllerParams::predictor_unit, "predictor_unit", PredictorUnit::dedicated, predictor_units())
             .doc("Transkimmer predictor MLP: on the controller's own MAC array, or as two GEMM jobs on the GEMM engine."),
         field(&SkimControllerParams::macs_per_cycle, "macs_per_cycle", 64)
             .unit("MACs/cycle")
             .doc("The controller's own MAC array (predictor MLP, FCA pooling of hidden states).")
             .min(1).max(plausible::kPerCycle),
         field(&SkimControllerParams::tokens_per_cycle, "tokens_per_cycle", 8)
             .unit("tokens/cycle")
             .doc("Tokens the controller compacts, forwards or ranks per cycle.")
             .min(1).max(plausible::kPerCycle)}};
    return t;
  }
};

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

class SkimController : public Stage<SkimJob> {
 public:
  SkimController(sc_core::sc_module_name name, const SkimControllerParams& p, int hidden_bits,
                 DramChannel& dram);
  ModuleActivity activity() const;

 private:
  StageWork begin(SkimJob& job) override;
  void end(SkimJob& job, const StageWork& work, bool traced) override;
  SkimControllerParams p_;
  int hidden_bits_;
  DramChannel& dram_;
  uint64_t macs_ = 0, token_ops_ = 0, score_adds_ = 0;
};

}  // namespace attnsim

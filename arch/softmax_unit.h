#pragma once
// softmax: turns a row's surviving exact scores into probabilities.
//
// What it does: p_j = exp(c*(s_j - max s)) / sum, c = scale_q*scale_k/sqrt(d), over the
// survivors only (filtered keys get probability 0, SEMANTICS §3). The probabilities
// themselves are computed by the head model with attn::softmax (arch/attention_math.h);
// this unit applies the timing rule.
//
// Timing rule: a row of n survivors keeps the unit busy ceil(n / softmax.elements_per_cycle)
// cycles (0 for n = 0); its probabilities reach the next unit softmax.latency_cycles
// later (pipelined: the next row starts at once). Stall = blocked on a full output FIFO.
//
// K/V tiling (arch/kv_tiling.h): a row comes part by part (its survivors in one key tile
// each), online: a part of n survivors is busy ceil(n / elements_per_cycle); every part
// after the row's first also takes one exp (the correction exp(old max - new max)), no
// cycle; the reciprocal is taken once, after the row's last part.
//
// Params: SoftmaxParams below.
// Counters: max_compares (n), exps (n), sum_adds (n), reciprocals (1 per non-empty row),
// normalizes (n).
#include "arch/pipeline.h"
#include "arch/stage.h"
#include "core/activity.h"
#include "core/params.h"

namespace attnsim {

struct SoftmaxParams {
  int elements_per_cycle;
  int latency_cycles;

  static const ParamTable<SoftmaxParams>& table() {
    static const ParamTable<SoftmaxParams> t{
        "softmax", "Softmax over a row's surviving scores.",
        {field(&SoftmaxParams::elements_per_cycle, "elements_per_cycle", 8)
             .unit("elements/cycle").doc("Scores accepted per cycle.").min(1).max(plausible::kPerCycle),
         field(&SoftmaxParams::latency_cycles, "latency_cycles", 8)
             .unit("cycles").doc("Pipeline latency from a row's last score to its first probability.").min(0).max(plausible::kLatencyCycles)}};
    return t;
  }
};

class SoftmaxUnit : public Stage<RowToken> {
 public:
  SoftmaxUnit(sc_core::sc_module_name name, const SoftmaxParams& p);
  ModuleActivity activity() const;

 private:
  StageWork begin(RowToken& row) override;
  void end(RowToken& row, const StageWork& work, bool traced) override;
  SoftmaxParams p_;
  uint64_t elements_ = 0, rows_ = 0, rescales_ = 0;
};

}  // namespace attnsim

#pragma once
// softmax: turns a row's surviving exact scores into probabilities.
//
// What it does: p_j = exp(c*(s_j - max s)) / sum, c = scale_q*scale_k/sqrt(d), over the
// survivors only (filtered keys get probability 0, SEMANTICS §3).
//
// Timing rule: a row of n survivors keeps the unit busy ceil(n / softmax.elements_per_cycle)
// cycles (0 for n = 0); its probabilities reach the next unit softmax.latency_cycles
// later (pipelined: the next row starts at once). Stall = blocked on a full output FIFO.
//
// Params (SoftmaxParams in arch/unit_params.h, where the defaults, units and docs are
// declared once): elements_per_cycle, latency_cycles.
// Counters: max_compares (n), exps (n), sum_adds (n), reciprocals (1 per non-empty row),
// normalizes (n).
#include "arch/pipeline.h"
#include "arch/unit_params.h"
#include "core/activity.h"

#include <systemc>

namespace attnsim {

class ActivityRecorder;

class SoftmaxUnit : public sc_core::sc_module {
 public:
  sc_core::sc_fifo_in<RowToken> row_in;
  sc_core::sc_fifo_out<RowToken> row_out;

  SoftmaxUnit(sc_core::sc_module_name name, const SoftmaxParams& p);
  ModuleActivity activity() const;
  // Activity tracing (arch/activity_trace.h); null when off.
  void set_tracer(ActivityRecorder* t) { trace_ = t; }

 private:
  void run();
  SoftmaxParams p_;
  uint64_t busy_ = 0, stall_ = 0, elements_ = 0, rows_ = 0;
  ActivityRecorder* trace_ = nullptr;
};

}  // namespace attnsim

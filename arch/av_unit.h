#pragma once
// av_unit: multiplies a row's probabilities with the survivors' value rows (P.V).
//
// What it does: out_t = sum_j p_j * v_jt with dequantized V, t < d (zeros when a row has
// no survivor). When it finishes the last row of a head, that head's SRAM slot is free.
//
// Timing rule: a row of n survivors is busy ceil(n*d / av_unit.macs_per_cycle) cycles;
// its output reaches the write-back av_unit.latency_cycles later. Stall = blocked on a
// full output FIFO.
//
// Params (AvUnitParams in arch/unit_params.h, where the defaults, units and docs are
// declared once): macs_per_cycle, latency_cycles, output_bits (the width of an output
// element, used by the write-back).
// Counters: macs (n*d). SRAM: reads n*d*B bits of V per row.
#include "arch/pipeline.h"
#include "arch/sram.h"
#include "arch/unit_params.h"
#include "core/activity.h"

#include <systemc>

namespace attnsim {

class ActivityRecorder;

class AvUnit : public sc_core::sc_module {
 public:
  sc_core::sc_fifo_in<RowToken> row_in;
  sc_core::sc_fifo_out<RowToken> row_out;

  AvUnit(sc_core::sc_module_name name, const AvUnitParams& p, int bits, SramBuffers& sram,
         sc_core::sc_semaphore& free_slots);
  ModuleActivity activity() const;
  // Activity tracing (arch/activity_trace.h); null when off.
  void set_tracer(ActivityRecorder* t) { trace_ = t; }

 private:
  void run();
  AvUnitParams p_;
  int bits_;
  SramBuffers& sram_;
  sc_core::sc_semaphore& free_slots_;
  uint64_t busy_ = 0, stall_ = 0, macs_ = 0;
  ActivityRecorder* trace_ = nullptr;
};

}  // namespace attnsim

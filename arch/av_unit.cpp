#include "arch/av_unit.h"

#include "arch/activity_trace.h"
#include "arch/kernel_time.h"

namespace attnsim {

AvUnit::AvUnit(sc_core::sc_module_name name, const AvUnitParams& p, int bits, SramBuffers& sram,
               sc_core::sc_semaphore& free_slots)
    : sc_module(name), p_(p), bits_(bits), sram_(sram), free_slots_(free_slots) {
  SC_HAS_PROCESS(AvUnit);
  SC_THREAD(run);
}

// The output row itself is computed by the functional model with attn::weighted_sum
// (arch/attention_math.h); this thread applies the timing rule.
void AvUnit::run() {
  while (true) {
    RowToken row = row_in->read();
    if (row.ready > sc_core::sc_time_stamp()) sc_core::wait(row.ready - sc_core::sc_time_stamp());
    const HeadWork& w = *row.head;
    const uint64_t macs = static_cast<uint64_t>(row.outcome().survivors) * w.d();
    sram_.read_bits(macs * bits_);
    const Cycles busy(ceil_div(macs, p_.macs_per_cycle));
    const bool traced = trace_ && trace_->in_window(w.layer_index(), w.head);
    const TraceTag tag{w.layer_index(), w.head, row.row};
    if (traced) trace_->interval(TraceUnit::av_unit, kBusy, now_cycles(), now_cycles() + busy, "row", tag);
    wait_cycles(busy);
    busy_ += busy.count();
    macs_ += macs;
    // The head's V is no longer needed: its SRAM slot may take the next head.
    if (row.row == w.n() - 1) free_slots_.post();
    row.ready = sc_core::sc_time_stamp() + to_sc_time(Cycles(p_.latency_cycles));
    if (traced) trace_->open(TraceUnit::av_unit, kStall, "stall: output FIFO full", tag);
    const Cycles before = now_cycles();
    row_out->write(row);
    stall_ += (now_cycles() - before).count();
    if (traced) trace_->close(TraceUnit::av_unit);
  }
}

ModuleActivity AvUnit::activity() const { return {"av_unit", busy_, stall_, {{"macs", macs_}}}; }

}  // namespace attnsim

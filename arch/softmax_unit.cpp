#include "arch/softmax_unit.h"

#include "arch/activity_trace.h"
#include "arch/kernel_time.h"

namespace attnsim {

SoftmaxUnit::SoftmaxUnit(sc_core::sc_module_name name, const SoftmaxParams& p)
    : sc_module(name), p_(p) {
  SC_HAS_PROCESS(SoftmaxUnit);
  SC_THREAD(run);
}

// The probabilities themselves are computed by the functional model with
// attn::softmax (arch/attention_math.h); this thread applies the timing rule.
void SoftmaxUnit::run() {
  while (true) {
    RowToken row = row_in->read();
    if (row.ready > sc_core::sc_time_stamp()) sc_core::wait(row.ready - sc_core::sc_time_stamp());
    const uint64_t n = row.outcome().survivors;
    const Cycles busy(ceil_div(n, p_.elements_per_cycle));
    const bool traced = trace_ && trace_->in_window(row.head->layer_index(), row.head->head);
    const TraceTag tag{row.head->layer_index(), row.head->head, row.row};
    if (traced) trace_->interval(TraceUnit::softmax, kBusy, now_cycles(), now_cycles() + busy, "row", tag);
    wait_cycles(busy);
    busy_ += busy.count();
    elements_ += n;
    rows_ += n > 0 ? 1 : 0;
    row.ready = sc_core::sc_time_stamp() + to_sc_time(Cycles(p_.latency_cycles));
    if (traced) trace_->open(TraceUnit::softmax, kStall, "stall: output FIFO full", tag);
    const Cycles before = now_cycles();
    row_out->write(row);
    stall_ += (now_cycles() - before).count();
    if (traced) trace_->close(TraceUnit::softmax);
  }
}

ModuleActivity SoftmaxUnit::activity() const {
  return {"softmax", busy_, stall_,
          {{"max_compares", elements_},
           {"exps", elements_},
           {"sum_adds", elements_},
           {"reciprocals", rows_},
           {"normalizes", elements_}}};
}

}  // namespace attnsim

#include "arch/writeback.h"

#include "arch/activity_trace.h"
#include "arch/kernel_time.h"
#include "arch/sc_threads.h"

namespace attnsim {

Writeback::Writeback(sc_core::sc_module_name name, int output_bits, DramChannel& dram,
                     LayerBarrier& barrier, RowSink& sink)
    : sc_module(name), output_bits_(output_bits), dram_(dram), barrier_(barrier), sink_(sink) {
  SC_HAS_PROCESS(Writeback);
  SC_THREAD(run);
}

void Writeback::run() {
  run_thread_body([this] {
    Cycles landed(0);  // when the latest write of the current layer lands
    while (true) {
      RowToken row = row_in->read();
      if (!row.last_part()) continue;  // K/V tiling: the row's partial state stays on chip
      if (row.ready > sc_core::sc_time_stamp()) sc_core::wait(row.ready - sc_core::sc_time_stamp());
      const HeadWork& w = *row.head;
      const uint64_t bytes = ceil_div(static_cast<uint64_t>(w.d()) * output_bits_, 8);
      dram_.count_write(bytes);
      const Cycles requested = now_cycles();
      const DramChannel::Transfer t = dram_.reserve(requested, bytes);
      dram_.add_stall(t.start - requested);
      const bool traced = trace_ && trace_->in_window(w.layer_index(), w.head);
      if (traced) trace_transfer(w, row.row, requested, t.start, t.end);
      wait_until(t.end);
      landed = max(landed, t.end + dram_.latency());
      sink_.row_done(w, row.row);
      if (traced && row.row == w.n() - 1) trace_->head_leaves();
      const bool layer_end = w.last_head_of_layer && row.row == w.n() - 1;
      if (layer_end) {
        wait_until(landed);
        ++barrier_.completed;
        barrier_.advanced.notify(sc_core::SC_ZERO_TIME);
      }
    }
  });
}

// Waiting behind other transfers (dram stall), then the row's own transfer.
void Writeback::trace_transfer(const HeadWork& w, int row, Cycles requested, Cycles start, Cycles end) {
  const TraceTag tag{w.layer_index(), w.head, row};
  trace_->interval(TraceUnit::writeback, kStall, requested, start, "stall: DRAM channel busy", tag);
  trace_->interval(TraceUnit::writeback, kBusy, start, end, "write row", tag);
  trace_->interval(TraceUnit::dram, kBusy, start, end, "write row", tag);
}

}  // namespace attnsim

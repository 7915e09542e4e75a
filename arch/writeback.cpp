#include "arch/writeback.h"

#include "arch/kernel_time.h"

namespace attnsim {

Writeback::Writeback(sc_core::sc_module_name name, int output_bits, DramChannel& dram,
                     LayerBarrier& barrier, RowSink& sink)
    : sc_module(name), output_bits_(output_bits), dram_(dram), barrier_(barrier), sink_(sink) {
  SC_HAS_PROCESS(Writeback);
  SC_THREAD(run);
}

void Writeback::run() {
  Cycles landed(0);  // when the latest write of the current layer lands
  while (true) {
    RowToken row = row_in->read();
    if (row.ready > sc_core::sc_time_stamp()) sc_core::wait(row.ready - sc_core::sc_time_stamp());
    const HeadWork& w = *row.head;
    const uint64_t bytes = ceil_div(static_cast<uint64_t>(w.d()) * output_bits_, 8);
    dram_.count_write(bytes);
    const Cycles requested = now_cycles();
    const Cycles end = dram_.reserve(requested, bytes);
    const Cycles transfer(ceil_div(bytes, static_cast<uint64_t>(dram_.params().bytes_per_cycle)));
    dram_.add_stall(end - requested - transfer);
    wait_until(end);
    landed = max(landed, end + dram_.latency());
    sink_.row_done(w, row.row);
    const bool layer_end = w.last_head_of_layer && row.row == w.n() - 1;
    if (layer_end) {
      wait_until(landed);
      ++barrier_.completed;
      barrier_.advanced.notify(sc_core::SC_ZERO_TIME);
    }
  }
}

}  // namespace attnsim

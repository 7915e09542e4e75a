#include "arch/av_unit.h"

namespace attnsim {

AvUnit::AvUnit(sc_core::sc_module_name name, const AvUnitParams& p, int bits, SramBuffers& sram,
               sc_core::sc_semaphore& free_slots)
    : Stage(name, TraceUnit::av_unit, Cycles(static_cast<uint64_t>(p.latency_cycles)), "stall: output FIFO full"),
      p_(p),
      bits_(bits),
      sram_(sram),
      free_slots_(free_slots) {}

namespace {
uint64_t row_macs(const RowToken& row) { return static_cast<uint64_t>(row.outcome().survivors) * row.head->d(); }
}  // namespace

StageWork AvUnit::begin(RowToken& row) {
  const uint64_t macs = row_macs(row);
  // The survivors' V rows (none for a Treeformer TC row: its node sums are the tree
  // engine's, which counts their reads).
  sram_.read_bits(static_cast<uint64_t>(row.outcome().value_rows) * row.head->d() * bits_);
  return {Cycles(ceil_div(macs, p_.macs_per_cycle)), "row", {row.head->layer_index(), row.head->head, row.row}};
}

void AvUnit::end(RowToken& row, const StageWork&, bool) {
  macs_ += row_macs(row);
  // The head's V is no longer needed: its SRAM slot may take the next head.
  if (row.row == row.head->n() - 1) free_slots_.post();
}

ModuleActivity AvUnit::activity() const { return {"av_unit", busy_cycles(), stall_cycles(), {{"macs", macs_}}}; }

}  // namespace attnsim

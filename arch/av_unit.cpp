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
// K/V tiling: a part after the row's first also rescales the partial output (d MACs).
uint64_t row_macs(const RowToken& row) {
  return (static_cast<uint64_t>(row.survivors()) + (row.first_part() ? 0 : 1)) * row.head->d();
}
}  // namespace

StageWork AvUnit::begin(RowToken& row) {
  const uint64_t macs = row_macs(row);
  // The survivors' V rows (none for a Treeformer TC row: its node sums are the tree
  // engine's, which counts their reads).
  sram_.read_bits(static_cast<uint64_t>(row.value_rows()) * row.head->d() * bits_);
  if (row.part >= 0) {  // K/V tiling: the row state between its parts
    const uint64_t state = static_cast<uint64_t>(row.head->d()) * p_.output_bits + 32 * kRowStateWords;
    if (!row.first_part()) sram_.read_bits(state);
    if (!row.last_part()) sram_.write_bits(state);
  }
  return {Cycles(ceil_div(macs, p_.macs_per_cycle)), "row", {row.head->layer_index(), row.head->head, row.row}};
}

void AvUnit::end(RowToken& row, const StageWork&, bool) {
  macs_ += row_macs(row);
  // The head's V is no longer needed: its SRAM slot may take the next head.
  if (row.part >= 0) row.head->tiled->part_done(row.row, row.part);  // K/V tiling: the job's tile buffer
  if (row.last_of_head()) free_slots_.post();
}

ModuleActivity AvUnit::activity() const { return {"av_unit", busy_cycles(), stall_cycles(), {{"macs", macs_}}}; }

}  // namespace attnsim

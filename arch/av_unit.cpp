#include "arch/av_unit.h"

#include "arch/kernel_time.h"

#include <algorithm>
#include <vector>

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

uint64_t av_read_cycles(const SramParams& sram, int macs_per_cycle, int d, int bits, const int32_t* ids, size_t n) {
  if (!sram.ports || n == 0) return 0;
  const uint64_t ports = static_cast<uint64_t>(*sram.ports), width = static_cast<uint64_t>(sram.width_bits);
  const uint64_t banks = static_cast<uint64_t>(sram.banks), b = static_cast<uint64_t>(bits);
  if (d > macs_per_cycle) {  // one row at a time, in ceil(d / mpc) read cycles
    const uint64_t per_cycle = ceil_div(ceil_div(static_cast<uint64_t>(macs_per_cycle) * b, width), ports);
    return n * ceil_div(static_cast<uint64_t>(d), static_cast<uint64_t>(macs_per_cycle)) * per_cycle;
  }
  const size_t group = static_cast<size_t>(macs_per_cycle / d);
  const uint64_t accesses = ceil_div(static_cast<uint64_t>(d) * b, width);
  thread_local std::vector<uint32_t> per_bank;
  uint64_t total = 0;
  for (size_t begin = 0; begin < n; begin += group) {
    per_bank.assign(banks, 0);
    uint32_t most = 0;
    for (size_t i = begin; i < std::min(n, begin + group); ++i)
      most = std::max(most, sram.add_row(per_bank, banks, static_cast<uint64_t>(ids[i]), accesses));
    total += std::max<uint64_t>(1, ceil_div(static_cast<uint64_t>(most), ports));
  }
  return total;
}

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

void AvUnit::end(RowToken& row, const StageWork& work, bool) {
  macs_ += row_macs(row);
  // V reads slower than the MACs (sram.ports): the row waits for them.
  const uint64_t reads = row.part < 0 ? row.outcome().av_read_cycles : row.tile_part().av_read_cycles;
  if (reads > work.busy.count()) {
    wait_cycles(Cycles(reads - work.busy.count()));
    add_stall(Cycles(reads - work.busy.count()));
  }
  // The head's V is no longer needed: its SRAM slot may take the next head.
  if (row.part >= 0) row.head->tiled->part_done(row.row, row.part);  // K/V tiling: the job's tile buffer
  if (row.last_of_head()) free_slots_.post();
}

ModuleActivity AvUnit::activity() const { return {"av_unit", busy_cycles(), stall_cycles(), {{"macs", macs_}}}; }

}  // namespace attnsim

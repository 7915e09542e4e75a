#include "arch/softmax_unit.h"

namespace attnsim {

SoftmaxUnit::SoftmaxUnit(sc_core::sc_module_name name, const SoftmaxParams& p)
    : Stage(name, TraceUnit::softmax, Cycles(static_cast<uint64_t>(p.latency_cycles)), "stall: output FIFO full"),
      p_(p) {}

StageWork SoftmaxUnit::begin(RowToken& row) {
  const uint64_t n = row.survivors();
  return {Cycles(ceil_div(n, p_.elements_per_cycle)), "row", {row.head->layer_index(), row.head->head, row.row}};
}

void SoftmaxUnit::end(RowToken& row, const StageWork&, bool) {
  const uint64_t n = row.survivors();
  elements_ += n;
  rescales_ += row.first_part() ? 0 : 1;  // K/V tiling: exp(old max - new max)
  rows_ += row.last_part() && row.outcome().survivors > 0 ? 1 : 0;
}

ModuleActivity SoftmaxUnit::activity() const {
  return {"softmax", busy_cycles(), stall_cycles(),
          {{"max_compares", elements_},
           {"exps", elements_ + rescales_},
           {"sum_adds", elements_},
           {"reciprocals", rows_},
           {"normalizes", elements_}}};
}

}  // namespace attnsim

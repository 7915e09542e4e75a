#pragma once
// av_unit: multiplies a row's probabilities with the survivors' value rows (P.V).
//
// What it does: out_t = sum_j p_j * v_jt with dequantized V, t < d (zeros when a row has
// no survivor); the output row itself is computed by the head model with
// attn::weighted_sum (arch/attention_math.h), this unit applies the timing rule. When it
// finishes the last row of a head, that head's SRAM slot is free.
//
// Timing rule: a row of n survivors is busy ceil(n*d / av_unit.macs_per_cycle) cycles;
// its output reaches the write-back av_unit.latency_cycles later. Stall = blocked on a
// full output FIFO. With sram.ports the V reads are timed too (av_read_cycles below): V
// row j lives in bank j mod sram.banks, the unit reads its survivors' rows in order,
// g = max(1, floor(macs_per_cycle / d)) rows per read cycle, each row a = ceil(d*B /
// sram.width_bits) accesses, and a group takes max over banks of ceil(a x its rows in the
// bank / ports) cycles (a row wider than the MACs, d > macs_per_cycle, is read in
// ceil(d / macs_per_cycle) cycles of ceil(macs_per_cycle*B / width_bits) accesses each, all
// in its bank). Reads and MACs overlap: the row lasts max(busy, its read cycles), the
// excess counted as stall.
//
// K/V tiling (arch/kv_tiling.h): the AV unit takes a row part by part (one per key tile);
// a part of s survivors is busy ceil((s + 1)*d / macs_per_cycle), the + 1 being the
// rescale of the partial output by exp(old max - new max) (none for the row's first part:
// ceil(s*d / macs)); it reads the row state (d*output_bits + 96 bits) from the SRAM before
// every part but the first and writes it after every part but the last. After the last
// part of a job it frees the job's K/V tile buffer. With sram.ports a part's V reads are
// timed by the rule above on its survivors in the tile (TilePart::av_read_cycles).
//
// Params: AvUnitParams below (output_bits is the width of an output element, used by
// the write-back).
// Counters: macs (n*d). SRAM: reads n*d*B bits of V per row (a Treeformer TC row weights
// the tree engine's node value sums instead: no SRAM read).
#include "arch/pipeline.h"
#include "arch/sram.h"
#include "arch/stage.h"
#include "core/activity.h"
#include "core/params.h"

#include <systemc>

namespace attnsim {

struct AvUnitParams {
  int macs_per_cycle;
  int latency_cycles;
  int output_bits;

  static const ParamTable<AvUnitParams>& table() {
    static const ParamTable<AvUnitParams> t{
        "av_unit", "Multiplies a row's probabilities with the value rows (P.V).",
        {field(&AvUnitParams::macs_per_cycle, "macs_per_cycle", 512)
             .unit("MACs/cycle").doc("Multiply-accumulates per cycle.").min(1).max(plausible::kPerCycle),
         field(&AvUnitParams::latency_cycles, "latency_cycles", 4)
             .unit("cycles").doc("Pipeline latency (adder tree, rounding).").min(0).max(plausible::kLatencyCycles),
         field(&AvUnitParams::output_bits, "output_bits", 16)
             .unit("bits").doc("Width of an output element written back to DRAM.").min(1).max(64)}};
    return t;
  }
};

// The cycles the AV unit's V reads of one row take (rule above): survivors' value-row ids
// in order. 0 when sram.ports is absent (not modelled).
uint64_t av_read_cycles(const SramParams& sram, int macs_per_cycle, int d, int bits, const int32_t* ids, size_t n);

class AvUnit : public Stage<RowToken> {
 public:
  AvUnit(sc_core::sc_module_name name, const AvUnitParams& p, int bits, SramBuffers& sram,
         sc_core::sc_semaphore& free_slots);
  ModuleActivity activity() const;

 private:
  StageWork begin(RowToken& row) override;
  void end(RowToken& row, const StageWork& work, bool traced) override;
  AvUnitParams p_;
  int bits_;
  SramBuffers& sram_;
  sc_core::sc_semaphore& free_slots_;
  uint64_t macs_ = 0;
};

}  // namespace attnsim

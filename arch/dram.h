#pragma once
// dram: the off-chip memory channel.
//
// What it does: carries the DMA's head loads (DRAM -> SRAM) and the write-back of output
// rows (-> DRAM). It is an analytical channel shared by the DMA and the write-back
// threads, not a thread of its own.
//
// Timing rule: a transfer of b bytes requested at cycle t starts at max(t, free), where
// `free` is the end of the previous transfer, and occupies the channel for
// ceil(b / dram.bytes_per_cycle) cycles; its data has arrived dram.latency_cycles after
// that. Requests at the same cycle are served in the kernel's (deterministic) order.
//
// Params (DramParams in arch/unit_params.h, where the defaults, units and docs are
// declared once): bytes_per_cycle, latency_cycles, burst_bytes.
// Stats: busy = cycles the channel transfers data; stall = cycles the DMA waited for a
// free SRAM buffer or on a full head queue plus cycles the write-back waited for the
// channel behind other transfers. Counters: read_bits, write_bits.
#include "arch/unit_params.h"
#include "core/activity.h"
#include "core/cycles.h"

namespace attnsim {

class DramChannel {
 public:
  explicit DramChannel(const DramParams& p) : p_(p) {}

  // Reserve the channel for `bytes` at or after `now`; returns the cycle the transfer
  // ends (data arrives `latency()` later).
  Cycles reserve(Cycles now, uint64_t bytes) {
    const Cycles start = max(now, free_);
    const Cycles duration(ceil_div(bytes, static_cast<uint64_t>(p_.bytes_per_cycle)));
    free_ = start + duration;
    busy_ += duration.count();
    return free_;
  }
  Cycles latency() const { return Cycles(static_cast<uint64_t>(p_.latency_cycles)); }
  const DramParams& params() const { return p_; }

  void count_read(uint64_t bytes) { read_bits_ += 8 * bytes; }
  void count_write(uint64_t bytes) { write_bits_ += 8 * bytes; }
  void add_stall(Cycles c) { stall_ += c.count(); }

  ModuleActivity activity() const {
    return {"dram", busy_, stall_, {{"read_bits", read_bits_}, {"write_bits", write_bits_}}};
  }

 private:
  DramParams p_;
  Cycles free_{0};
  uint64_t busy_ = 0, stall_ = 0, read_bits_ = 0, write_bits_ = 0;
};

}  // namespace attnsim

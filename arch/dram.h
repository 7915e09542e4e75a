#pragma once
// dram: the off-chip memory channel.
//
// What it does: carries the DMA's head loads (DRAM -> SRAM), the write-back of output
// rows, the skim controller's forwarded hidden states (-> DRAM) and, with
// gemm_engine.dram_path "shared" (the default), the GEMM engine's operand and result
// traffic. It is an analytical channel shared by those threads, not a thread of its own.
//
// Timing rule (arbitration: first come first served in request order, at the granularity
// of what each unit requests): a transfer of b bytes requested at cycle t starts at
// max(t, free), where `free` is the end of the transfer reserved before it, and occupies
// the channel for transfer_cycles(b) = ceil(b / dram.bytes_per_cycle) cycles; its data has
// arrived dram.latency_cycles after that. Requests at the same cycle are served in the
// kernel's (deterministic) order. The DMA and the GEMM engine split their traffic into
// bursts (dram.burst_bytes; the engine's rounded down to whole cycles) and request each
// burst when their previous one ends, so the others' requests interleave with theirs;
// the write-back requests one row, the skim controller one job's hidden states. Every
// unit that moves data off chip times it with dram_transfer_cycles.
//
// Stats: busy = cycles the channel transfers data (every requester above); stall = cycles
// the DMA waited for a free SRAM buffer or on a full head queue plus cycles the
// write-back waited for the channel behind other transfers. (The DMA's and the GEMM
// engine's bursts waiting behind others show as later data instead; the skim
// controller's wait is skim_controller stall.) Counters: read_bits, write_bits.
#include "core/activity.h"
#include "core/cycles.h"
#include "core/params.h"

namespace attnsim {

struct DramParams {
  int bytes_per_cycle;  // sustained bandwidth of the channel
  int latency_cycles;   // fixed latency from request to first data
  int burst_bytes;      // largest transfer that holds the channel without interruption

  static const ParamTable<DramParams>& table() {
    static const ParamTable<DramParams> t{
        "dram", "Off-chip memory channel shared by the DMA loads, the write-back, the skim controller and the GEMM engine.",
        {field(&DramParams::bytes_per_cycle, "bytes_per_cycle", 64)
             .unit("bytes/cycle").doc("Sustained channel bandwidth.").min(1).max(plausible::kPerCycle),
         field(&DramParams::latency_cycles, "latency_cycles", 100)
             .unit("cycles")
             .doc("Latency from a request to its data, paid once per head load, per write-back and per GEMM job.")
             .min(0).max(plausible::kLatencyCycles),
         field(&DramParams::burst_bytes, "burst_bytes", 2048)
             .unit("bytes")
             .doc("The DMA's head loads and the GEMM engine's traffic are split into bursts of this size (the engine's rounded down to a multiple of bytes_per_cycle), so other transfers interleave with them.")
             .min(1).max(1 << 24)}};
    return t;
  }
};

// Cycles the channel is occupied by a transfer of `bytes`: ceil(bytes / bytes_per_cycle).
inline Cycles dram_transfer_cycles(const DramParams& p, uint64_t bytes) {
  return Cycles(ceil_div(bytes, static_cast<uint64_t>(p.bytes_per_cycle)));
}

class DramChannel {
 public:
  explicit DramChannel(const DramParams& p) : p_(p) {}

  // One transfer on the channel: when it started and ended (its data arrives latency()
  // after the end).
  struct Transfer {
    Cycles start, end;
    Cycles duration() const { return end - start; }
  };

  // Reserve the channel for `bytes` at or after `now`.
  Transfer reserve(Cycles now, uint64_t bytes) {
    const Cycles start = max(now, free_);
    const Cycles duration = dram_transfer_cycles(p_, bytes);
    free_ = start + duration;
    busy_ += duration.count();
    return {start, free_};
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

#pragma once
// sram: the on-chip Q/K/V buffers.
//
// What it does: holds the Q, K and V of the heads being processed, B bits per element, one
// head per slot. It has as many slots as the heads in flight need and sram.capacity_kib
// holds: two (double buffering: the DMA loads head h+1 while head h is computed), plus one
// per head-level stage between the DMA and the QK unit (a candidate generator's unit, the
// low-rank unit's key side), which works on a head of its own; fewer when fewer fit; when
// not even one fits the run is K/V-tiled (arch/kv_tiling.h: one slot holding a Q block,
// its rows' state and one or two K/V tiles).
//
// Timing rule: the buffers are assumed to deliver what the units ask each cycle (the
// units' own rules bound the run time); busy counts port occupancy:
// ceil(words / sram.banks) per access batch, where a word is sram.width_bits.
//
// Params: SramParams below. Counters: read_words, write_words (one width_bits access of
// one bank each; energy per access is that of one bank of capacity/banks).
#include <algorithm>
#include <optional>

#include "core/activity.h"
#include "core/cycles.h"
#include "core/params.h"

namespace attnsim {

struct SramParams {
  int capacity_kib;
  int banks;
  int width_bits;
  std::optional<int> ports{};  // accesses per bank per cycle; absent: unlimited (not modelled)

  static const ParamTable<SramParams>& table() {
    static const ParamTable<SramParams> t{
        "sram", "On-chip buffers holding one head's Q, K and V (two heads when they fit: double buffering).",
        {field(&SramParams::capacity_kib, "capacity_kib", 1024)
             .unit("KiB").doc("Total capacity of the Q/K/V buffers.").min(1),
         field(&SramParams::banks, "banks", 64)
             .doc("Number of banks; access energy is that of one bank's capacity.").min(1),
         field(&SramParams::width_bits, "width_bits", 128)
             .unit("bits")
             .doc("Width of one bank access (one energy event); banks x width_bits is the bits per cycle the buffers supply.")
             .min(8),
         field(&SramParams::ports, "ports", json())
             .unit("accesses/cycle")
             .doc("Accesses one bank serves per cycle, for the QK unit's K reads (key j in bank j mod banks: a lane-cycle of a tile lasts until every key's access got a port, docs/qk_unit.md) and the AV unit's V reads (row j in bank j mod banks, arch/av_unit.h). Absent: unlimited (not modelled). The DMA's fill is not arbitrated yet (busy is its port demand).")
             .min(1)}};
    return t;
  }
};

class SramBuffers {
 public:
  explicit SramBuffers(const SramParams& p) : p_(p) {}

  uint64_t capacity_bits() const { return static_cast<uint64_t>(p_.capacity_kib) * 1024 * 8; }
  // Slots for heads of `head_bits` each: `wanted`, or as many as fit (0: not one).
  int slots_for(uint64_t head_bits, int wanted = 2) const {
    return static_cast<int>(std::min<uint64_t>(static_cast<uint64_t>(wanted), capacity_bits() / head_bits));
  }

  void read_bits(uint64_t bits) { access(bits, read_words_); }
  void write_bits(uint64_t bits) { access(bits, write_words_); }
  double bank_kib() const { return static_cast<double>(p_.capacity_kib) / p_.banks; }
  const SramParams& params() const { return p_; }

  ModuleActivity activity() const {
    return {"sram", busy_, 0, {{"read_words", read_words_}, {"write_words", write_words_}}};
  }

 private:
  void access(uint64_t bits, uint64_t& counter) {
    const uint64_t words = ceil_div(bits, static_cast<uint64_t>(p_.width_bits));
    counter += words;
    busy_ += ceil_div(words, static_cast<uint64_t>(p_.banks));
  }
  SramParams p_;
  uint64_t busy_ = 0, read_words_ = 0, write_words_ = 0;
};

}  // namespace attnsim

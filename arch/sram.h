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
// Timing rule: without sram.ports the buffers are assumed to deliver what the units ask
// each cycle (the units' own rules bound the run time); busy counts port occupancy:
// ceil(words / sram.banks) per access batch, where a word is sram.width_bits. With
// sram.ports = R the SRAM's slots are bank-disjoint (slot s owns banks / slots banks), so
// the DMA's fill of the next head never meets the datapath's reads of the current one:
// the QK unit's K reads and the AV unit's V reads wait for their slot's ports (their
// rules: arch/qk_unit.h, arch/av_unit.h) and the DMA writes each burst into its slot at R
// per bank per cycle (fill_write_cycles; arch/dma.h). A K/V-tiled run's T tile buffers
// take the slots' place (banks / T each, and the Q block's too; arch/kv_tiling.h).
//
// Params: SramParams below. Counters: read_words, write_words (one width_bits access of
// one bank each; energy per access is that of one bank of capacity/banks).
#include <algorithm>
#include <optional>
#include <vector>

#include "core/activity.h"
#include "core/cycles.h"
#include "core/params.h"

namespace attnsim {

enum class SramMapping { row, striped };
inline const Choices<SramMapping>& sram_mappings() {
  static const Choices<SramMapping> c{{"row", SramMapping::row}, {"striped", SramMapping::striped}};
  return c;
}

struct SramParams {
  int capacity_kib;
  int banks;
  int width_bits;
  std::optional<int> ports{};  // accesses per bank per cycle; absent: unlimited (not modelled)
  SramMapping mapping = SramMapping::row;

  // Adds the `words` accesses of row r (of Q, K or V, within its slot of `banks` banks) to
  // per_bank and returns the largest count among the banks it touched: "row" puts them
  // all in bank r mod banks; "striped" in banks (r x words + w) mod banks, w < words.
  uint32_t add_row(std::vector<uint32_t>& per_bank, uint64_t banks, uint64_t r, uint64_t words) const {
    uint32_t most = 0;
    if (mapping == SramMapping::row) return per_bank[r % banks] += static_cast<uint32_t>(words);
    for (uint64_t w = 0; w < words; ++w) most = std::max(most, ++per_bank[(r * words + w) % banks]);
    return most;
  }

  static const ParamTable<SramParams>& table() {
    static const ParamTable<SramParams> t{
        "sram", "On-chip buffers holding one head's Q, K and V (two heads when they fit: double buffering).",
        {field(&SramParams::capacity_kib, "capacity_kib", 1024)
             .unit("KiB").doc("Total capacity of the Q/K/V buffers.").min(1).max(plausible::kCapacityKib),
         field(&SramParams::banks, "banks", 64)
             .doc("Number of banks; access energy is that of one bank's capacity.").min(1).max(plausible::kBanks),
         field(&SramParams::width_bits, "width_bits", 128)
             .unit("bits")
             .doc("Width of one bank access (one energy event); banks x width_bits is the bits per cycle the buffers supply.")
             .min(8).max(plausible::kAccessBits),
         field(&SramParams::ports, "ports", json())
             .unit("accesses/cycle")
             .doc("Accesses one bank serves per cycle. When given, the slots (a K/V-tiled run: its tile buffers) are bank-disjoint (banks / slots each) and row j of Q, K or V is in bank j mod (banks / slots): the QK unit's K reads (docs/qk_unit.md), the AV unit's V reads (arch/av_unit.h) and the DMA's burst writes (arch/dma.h) wait for ports. Absent: unlimited (not modelled). With ports, sram.width_bits must be a multiple of qk_unit.bits (whole elements per access).")
             .min(1).max(plausible::kPorts),
         choice(&SramParams::mapping, "mapping", SramMapping::row, sram_mappings())
             .doc("Banks of a row's words (with sram.ports): row, all in bank r mod banks; striped, word w in bank (r x words + w) mod banks (a row's accesses spread over consecutive banks).")}};
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

  // With ports modelled the slots are bank-disjoint: each has banks / slots banks (at
  // least 1), so the DMA's fill of one never meets the datapath's reads of another.
  int slot_banks(int slots) const { return std::max(1, p_.banks / std::max(1, slots)); }

  // The cycles the DMA's writes of one burst take in its slot (sram.ports): the burst
  // covers bytes [offset, offset + bytes) of the head's Q (n rows), K and V (m rows each),
  // rows of d elements of B bits; row r of a tensor is in bank r mod slot_banks, its
  // ceil(d B / width_bits) words all there. max over banks of ceil(words / ports), at
  // least 1; bytes past V (the mechanism parameters) go to the units' own buffers.
  uint64_t fill_write_cycles(uint64_t offset, uint64_t bytes, int n, int m, int d, int bits, int slots) const;

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

inline uint64_t SramBuffers::fill_write_cycles(uint64_t offset, uint64_t bytes, int n, int m, int d, int bits,
                                               int slots) const {
  if (!p_.ports || bytes == 0) return 0;
  const uint64_t banks = static_cast<uint64_t>(slot_banks(slots));
  const uint64_t row_bits = static_cast<uint64_t>(d) * bits;
  const uint64_t row_words = ceil_div(row_bits, static_cast<uint64_t>(p_.width_bits));
  const uint64_t rows = static_cast<uint64_t>(n) + 2 * static_cast<uint64_t>(m);
  // The rows the burst writes (a row split between bursts counts in both: its words are
  // written when its last byte arrives, a partial row's words when they do; taken whole).
  const uint64_t first = offset * 8 / row_bits, last = std::min(rows, ceil_div((offset + bytes) * 8, row_bits));
  std::vector<uint32_t> per_bank(banks, 0);
  uint64_t most = 0;
  for (uint64_t r = first; r < last; ++r) {
    const uint64_t within = r < static_cast<uint64_t>(n) ? r : (r - n) % static_cast<uint64_t>(m);
    most = std::max<uint64_t>(most, p_.add_row(per_bank, banks, within, row_words));
  }
  return std::max<uint64_t>(1, ceil_div(most, static_cast<uint64_t>(*p_.ports)));
}

}  // namespace attnsim

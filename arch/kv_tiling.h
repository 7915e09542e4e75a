#pragma once
// kv_tiling: heads whose Q, K and V do not fit in sram.capacity_kib, streamed through the
// Q/K/V buffers in tiles (FlashAttention-style; docs/microarchitecture.md "K/V tiling").
//
// When: kv_tiling.mode "auto" (default) tiles a run only when one of its heads does not
// fit in the SRAM (heads that fit keep the untiled schedule exactly); "always" tiles every
// run. A tiled run tiles every head of it.
//
// Geometry (resolved once per run, sim/layer_plan.cpp; d = the largest head dimension,
// B = qk_unit.bits):
//  - key tile KT = kv_tiling.key_tile keys (absent: reuse_buffer.entries). In latte mode KT
//    must be a multiple of reuse_buffer.entries, so that no reuse-buffer segment straddles
//    two tiles: a row's segments are then exactly SEMANTICS §3's and the filter counts are
//    those of the untiled run.
//  - a K/V tile buffer holds K and V of KT keys: 2*KT*d*B bits; a query row takes
//    d*B bits of Q plus its row state (the output accumulator, d*av_unit.output_bits bits,
//    and three 32-bit words: LATTE's running maximum, the softmax running maximum and its
//    normalizer): kRowStateWords.
//  - tile buffers: 2 (double buffering: the DMA loads the next tile while the current one
//    is used) when two tile buffers and the Q block fit, else 1; the Q block is
//    kv_tiling.query_tile rows (absent: every row the rest of the capacity holds, at most
//    the largest N; to decide 1 or 2 buffers the absent Q block counts min(N, KT) rows).
//    Not even one tile buffer and one row: config error.
//
// Loop order: per head, per query block b (QB consecutive rows), per key tile t that a row
// of the block has candidates in (causal: t up to the tile of the block's last row), the
// job (b, t). The DMA loads Q block b once (before its first job) and the K/V tile of each
// job; K/V tiles are re-read from DRAM once per query block. Every row of the block then
// goes through the QK unit, the softmax and the AV unit with its candidates in the tile (a
// "part" of the row); the row's state carries the running maximum, the normalizer and the
// partial output across tiles; the write-back writes a row after its last part.
//
// With sram.ports the tile buffers are bank-disjoint like an untiled run's slots (banks / T
// each, T = tile_buffers), key j of tile t at row j - t*KT; the QK unit's K reads and the
// AV unit's V reads of a part and the DMA's writes of a load wait for ports by the untiled
// rules (arch/qk_unit.h, arch/av_unit.h, arch/dma.h).
//
// With qk_unit.query_block = Qb > 1 a Q block holds whole query blocks: kv_tiling.query_tile
// must be a multiple of Qb (absent: rounded down to one); a job's query blocks are timed
// together (arch/qk_unit.h).
//
// Candidates must be all keys (candidates.source "all"), the low-rank unit off and no FCA
// when a run is tiled: config errors otherwise.
#include "core/params.h"

#include <systemc>

#include <cstdint>
#include <optional>
#include <vector>

namespace attnsim {

enum class TilingMode { automatic, always };

inline const Choices<TilingMode>& tiling_modes() {
  static const Choices<TilingMode> c{{"auto", TilingMode::automatic}, {"always", TilingMode::always}};
  return c;
}

struct KvTilingParams {
  TilingMode mode;
  std::optional<int> key_tile{};
  std::optional<int> query_tile{};

  static const ParamTable<KvTilingParams>& table() {
    static const ParamTable<KvTilingParams> t{
        "kv_tiling", "Heads that do not fit in the SRAM: K/V streamed in tiles per query block (arch/kv_tiling.h).",
        {choice(&KvTilingParams::mode, "mode", TilingMode::automatic, tiling_modes())
             .doc("auto: tile a run only when one of its heads' Q, K and V do not fit in sram.capacity_kib; always: tile every run (every head of a tiled run is tiled)."),
         field(&KvTilingParams::key_tile, "key_tile", json())
             .unit("keys")
             .doc("KT: keys per K/V tile; in latte mode a multiple of reuse_buffer.entries (segments never straddle tiles). Absent: reuse_buffer.entries.")
             .min(1),
         field(&KvTilingParams::query_tile, "query_tile", json())
             .unit("rows")
             .doc("QB: query rows per Q block (K/V tiles are re-read from DRAM once per block); a multiple of qk_unit.query_block. Absent: as many rows (Q and row state) as the SRAM holds beside the tile buffers, rounded down to whole query blocks.")
             .min(1)}};
    return t;
  }
};

// 32-bit words of a row's state beside its output accumulator: LATTE's running maximum,
// the softmax running maximum and the normalizer.
inline constexpr int kRowStateWords = 3;

// The resolved geometry of a tiled run (off: untiled).
struct KvTiling {
  bool on = false;
  int key_tile = 0;      // KT keys
  int query_tile = 0;    // QB rows
  int tile_buffers = 0;  // 1 or 2
  int row_state_bits = 0;  // d*output_bits + 32*kRowStateWords (largest d)
};

// One job (b, t) of a tiled head.
struct TileJob {
  int block = 0, tile = 0;
  int first_row = 0, end_row = 0;  // rows of block b
  int first_key = 0, end_key = 0;  // keys of tile t
};

// A tiled head's schedule and the hand-offs between the DMA (loads), the QK unit (uses Q
// and K) and the AV unit (uses V): counters with one event, awaited in loops.
struct TileState {
  KvTiling geometry;
  int tiles = 0;  // key tiles of the head
  std::vector<TileJob> jobs;
  std::vector<int32_t> first_tile, last_tile;  // per row: its first and last tile with candidates (-1: none)

  // simulation state
  int loaded = 0;        // jobs whose data is in the SRAM
  bool q_free = true;    // the Q block buffer may take the next block
  int tile_free = 0;     // free K/V tile buffers
  sc_core::sc_event changed;
  void signal() { changed.notify(); }
  template <class Pred>
  void wait_for(Pred p) {
    while (!p()) sc_core::wait(changed);
  }
  // per (block, tile), block * tiles + tile: the last row of the block with candidates in
  // the tile (-1: no job); the AV unit frees the job's tile buffer after that row's part.
  std::vector<int> job_last_row;
  // The AV unit has finished the part (row, tile): free the tile buffer after the job's last.
  void part_done(int row, int tile) {
    if (job_last_row[static_cast<size_t>(row / geometry.query_tile) * tiles + tile] == row) {
      ++tile_free;
      signal();
    }
  }
};

}  // namespace attnsim

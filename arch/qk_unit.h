#pragma once
// qk_unit (with its comparator and reuse buffer): scores each query row against its
// candidate keys. SEMANTICS §3 (functional) and §4 (timing) are the contract;
// docs/qk_unit.md explains the rules with examples.
//
// What it does, per row i of a head (candidates C_i from the candidate generator,
// arch/candidates.h: all keys, or keys 0..i when causal, unless a generator narrows them):
//  - dense, bit_serial: every candidate scored exactly, B bit-planes each.
//  - dense, bit_parallel: every candidate scored exactly, one dot product per lane-cycle.
//  - latte: pass 1 computes the MSB estimate e_ij from the first P planes of K, the
//    comparator keeps j iff m_i - e_ij <= T_h (running max m_i over the segments so far),
//    the reuse buffer holds the partial sums, pass 2 finishes the survivors' B-P planes.
//    Rows longer than reuse_buffer.entries are processed in segments.
//  - early_term (LeOPArd): each key stops after the first plane b where p_b + u_b < theta_h.
//
// Timing rule (cycles per row, L = qk_unit.lanes, c = ceil(d / qk_unit.lane_width), 1 by
// default: the cycles a lane spends on one d-wide bit-plane or dot product):
//  busy: dense bit-serial ceil(n/L)*B*c; bit-parallel ceil(n/L)*c;
//        latte sum_seg (ceil(n_seg/L)*P + ceil(s_seg/L)*(B-P))*c;
//        early_term lockstep c * sum over L-key tiles of the max plane count,
//        independent c * the greedy makespan (arch/qk_math.h; scaling every key's time by
//        c leaves the greedy assignment unchanged).
//  comparator (latte): the comparator needs a segment's maximum, known only when its
//        pass 1 ends; it then takes cmp = ceil(n_seg / comparator.keys_per_cycle) +
//        comparator.latency_cycles cycles. Meanwhile the lanes run pass 1 of the next
//        segment (the next in the row, or the first of the next row of the head; the
//        reuse buffer holds both segments' partial sums), then pass 2 of this one:
//          P1(s0) | max(P1(s1), cmp(s0)) | P2(s0) | max(P1(s2), cmp(s1)) | P2(s1) | ...
//        so the lanes stall max(0, cmp(s_k) - P1(s_k+1)) per segment (P1 of "next" = 0
//        after the last segment of a head, or when the next row has no candidate). A row
//        leaves the unit when its last pass 2 ends; a row whose first pass 1 the previous
//        row did not overlap pays it itself. Busy stays the §4 formula; stall adds the
//        output FIFO's back-pressure. The unit works out this schedule itself, row by
//        row, from each row's segments and the next row's first pass 1 (qk_row_timing).
//  Early-termination bound checks happen inside the lanes and take no extra cycles.
//
// Reuse-buffer ports (reuse_buffer.ports = R per bank per cycle, `banks` banks; absent:
// unlimited, not modelled): pass 1 writes each tile's estimates, the entry of the key at
// position p of a row's segment going to bank p mod banks; pass 2 reads each tile's
// survivors' partial sums from theirs. A tile's accesses need T = max over banks of
// ceil(accesses in the bank / R) cycles (reuse_buffer.mapping: bank (r x entries + p) mod
// banks, linear, or (r + p) mod banks, skewed, for row r of a query block, r = 0 without
// blocks), and the tile lasts max(its planes, T): P*c in
// pass 1, (B-P)*c in pass 2 (accesses overlap the planes of the same tile). The extra
// cycles lengthen the passes in the comparator schedule and count as QK unit stall
// (busy stays the §4 formula); the reuse buffer's busy is then the sum of the tiles' T.
//
// K-buffer ports (sram.ports = R, sram.banks banks; absent: unlimited): key j lives in bank
// j mod banks; every lane-cycle each lane of a tile reads a = ceil(its bits / sram.width_bits)
// accesses of its key (W bits of a plane bit-serial, W x B bits bit-parallel). A lane-cycle
// of a tile lasts max(1, max over banks of ceil(a x the tile's keys in the bank / R)), so
// the tile's p planes take p x c x that (early_term lock-step: plane b reads only the keys
// still running). The extra cycles are QK stall and lengthen the passes (LATTE: a tile
// lasts the longer of that and its reuse-buffer port time). early_term with independent
// lanes is not modelled with ports (a config error).
//
// Query blocks (qk_unit.query_block = Qb > 1; 1 is the rule above, row by row): the head's
// rows are taken in blocks of Qb consecutive rows (the last may be shorter). Each lane has
// Qb adder trees, one per row of the block: a bit-plane of a key read once from the K
// buffer goes to all of them, so K is read once per block instead of once per row. Each
// row keeps its own candidates, filter decisions and reuse-buffer segments (its k-th
// segment is its candidates [kE, (k+1)E), E = reuse_buffer.entries, as for one row), so the
// filter counts do not depend on Qb. The lanes stream the union of what the block's rows
// need, in key-index order:
//  dense: U = union of the rows' candidates; busy ceil(|U|/L)*B*c (bit-parallel ceil(|U|/L)*c).
//  latte: per segment index k, pass 1 over U_k = union of the rows' k-th segments, the
//        comparator over all n_k = sum of their sizes (cmp_k = ceil(n_k / keys_per_cycle) +
//        latency), pass 2 over S_k = union of their survivors ("the survivors of all Qb
//        rows re-stream their remaining planes"; a row ignores a key it filtered):
//        busy sum_k (ceil(|U_k|/L)*P + ceil(|S_k|/L)*(B-P))*c, and the comparator schedule
//        above with the block's segments in place of a row's (the next block's first pass 1
//        overlaps the last compare).
//  early_term: a key stays in its lane until every row of the block has stopped it: its
//        planes are the largest any row ran; lock-step tiles of L keys of U, or the greedy
//        makespan, on those, times c.
// All Qb rows leave the unit when the block's last pass ends, in row order. K reads
// (sram_read_bits) count the planes streamed once per block plus each row's query; the
// counters (bitplane_ops, adder_tree_inputs, int8_macs, compares, reuse-buffer accesses)
// stay those of the rows, since every row's adder tree and accumulator still work. The
// lanes' static power scales with Qb (Qb trees per lane), the reuse buffer holds Qb rows'
// segments (its capacity and static power x Qb).
//
// K/V tiling (arch/kv_tiling.h; a head that does not fit in the SRAM, or kv_tiling.mode
// "always"): the unit works job by job, (query block b, key tile t) in that order, and
// starts job j when the DMA has loaded it. In a job it takes the block's rows that have
// candidates in the tile, in row order; each such part of a row costs the rule above on
// the row's candidates within the tile (latte: the row's segments within the tile, which
// are whole segments of SEMANTICS §3 since the key tile is a multiple of
// reuse_buffer.entries; the running maximum is carried across tiles as across segments),
// and the parts of a job follow one another by the comparator schedule above, the job's
// parts in place of a head's rows: the chain of overlapped pass 1s ends with the job (its
// last part pays its whole last compare). Each part reads its query row (d*B bits) again.
// With sram.ports and reuse_buffer.ports a part's lane tiles wait by the rules above (key
// j of tile t in row j - t*KT of the tile buffer's banks). With query blocks (Qb > 1) the
// parts in the tile of each query block's rows are scored together by the query-block rule
// above (on the rows' candidates within the tile), one unit of the job's chain, and leave
// together in row order. After the last part of a query
// block the block's Q buffer is free for the DMA.
//
// Params: QkUnitParams, ComparatorParams, ReuseBufferParams below.
// Stats: qk_unit busy/stall; counters qk_unit.bitplane_ops (lane-planes processed),
//  qk_unit.adder_tree_inputs (d per bit-plane op), qk_unit.int8_macs (bit_parallel);
//  comparator busy (compare cycles) and comparator.compares; reuse_buffer busy
//  (ceil(accesses/banks) per segment) and reuse_buffer.reads / writes. The comparator is
//  present in latte and early_term modes, the reuse buffer in latte mode.
#include "arch/pipeline.h"
#include "arch/sram.h"
#include "core/activity.h"
#include "core/params.h"

#include <systemc>

#include <memory>
#include <optional>
#include <vector>

namespace attnsim {

class ActivityRecorder;

// ---- params ------------------------------------------------------------------------------

enum class QkType { bit_serial, bit_parallel };
enum class QkMode { dense, latte, early_term };
enum class LaneSync { lockstep, independent };

inline const Choices<QkType>& qk_types() {
  static const Choices<QkType> c{{"bit_serial", QkType::bit_serial}, {"bit_parallel", QkType::bit_parallel}};
  return c;
}
inline const Choices<QkMode>& qk_modes() {
  static const Choices<QkMode> c{
      {"dense", QkMode::dense}, {"latte", QkMode::latte}, {"early_term", QkMode::early_term}};
  return c;
}
inline const Choices<LaneSync>& lane_syncs() {
  static const Choices<LaneSync> c{{"lockstep", LaneSync::lockstep}, {"independent", LaneSync::independent}};
  return c;
}

struct QkUnitParams {
  QkType type;
  QkMode mode;
  int bits;           // B
  int estimate_bits;  // P
  int lanes;          // L
  LaneSync lane_sync;
  std::optional<int> lane_width{};  // W elements per lane per cycle; absent: the head dimension d
  int query_block = 1;              // Qb rows scored together (K read once per block)

  // Cycles one lane spends on one bit-plane (bit_serial) or one dot product (bit_parallel)
  // of a d-wide key: ceil(d / W); 1 with the default W = d.
  uint64_t plane_cycles(int d) const {
    const int w = lane_width.value_or(d);
    return (static_cast<uint64_t>(d) + w - 1) / w;
  }

  static const ParamTable<QkUnitParams>& table() {
    static const ParamTable<QkUnitParams> t{
        "qk_unit", "Scores each query against its candidate keys (SEMANTICS §3, §4).",
        {choice(&QkUnitParams::type, "type", QkType::bit_serial, qk_types())
             .doc("bit_serial: one bit-plane of K per lane per cycle; bit_parallel: one whole dot product per lane per cycle."),
         choice(&QkUnitParams::mode, "mode", QkMode::latte, qk_modes())
             .doc("dense: every candidate scored exactly; latte: MSB estimate, threshold, finish survivors; early_term: LeOPArd bit-level early termination."),
         field(&QkUnitParams::bits, "bits", 8).unit("bits").doc("B: quantization width of Q, K and V.").min(2).max(16),
         field(&QkUnitParams::estimate_bits, "estimate_bits", 4)
             .unit("bits").doc("P: MSB planes in LATTE's estimate pass (1..B).").min(1).max(16),
         field(&QkUnitParams::lanes, "lanes", 64).doc("L: keys scored in parallel.").min(1).max(plausible::kLanes),
         choice(&QkUnitParams::lane_sync, "lane_sync", LaneSync::lockstep, lane_syncs())
             .doc("lockstep: lanes work on tiles of L keys; independent: each key goes to the lane that frees first."),
         field(&QkUnitParams::lane_width, "lane_width", json())
             .unit("elements")
             .doc("W: elements of a key a lane takes per cycle (one bit each bit-serial, B bits each bit-parallel); a plane or dot product of d elements takes ceil(d / W) cycles. Absent: the head dimension (one cycle). Static power scales with W / d.")
             .min(1).max(plausible::kLanes),
         field(&QkUnitParams::query_block, "query_block", 1)
             .unit("rows")
             .doc("Qb: query rows scored together; each lane has Qb adder trees, so a key's plane read once serves the block's Qb rows (K read once per block). Filtering stays per row. Static power of the lanes and the reuse buffer's capacity scale with Qb.")
             .min(1).max(4096)}};
    return t;
  }
};

// gamma, margin and theta stay as JSON until a trace fixes L and H; the layer plan
// (sim/layer_plan.h) resolves them per (layer, head) once.
struct ComparatorParams {
  json gamma;
  json margin;  // null when absent
  json theta;
  int latency_cycles;
  int keys_per_cycle;

  static const ParamTable<ComparatorParams>& table() {
    static const ParamTable<ComparatorParams> t{
        "comparator", "Head-wise threshold comparator between the QK unit's passes.",
        {field(&ComparatorParams::gamma, "gamma", 0.01)
             .per_head()
             .doc("LATTE keep ratio gamma_h in (0,1]: keep keys whose probability is at least gamma_h times the row maximum.")
             .above(0.0)
             .max(1.0),
         field(&ComparatorParams::margin, "margin", json())
             .per_head()
             .integers()
             .doc("Integer score margin T_h; when given it overrides gamma.")
             .min(0.0),
         field(&ComparatorParams::theta, "theta", 0).per_head().integers().doc("LeOPArd integer threshold theta_h (early_term mode)."),
         field(&ComparatorParams::latency_cycles, "latency_cycles", 1)
             .unit("cycles").doc("Pipeline latency of one comparison.").min(0).max(plausible::kLatencyCycles),
         field(&ComparatorParams::keys_per_cycle, "keys_per_cycle", 64)
             .unit("keys/cycle").doc("Comparisons per cycle.").min(1).max(plausible::kPerCycle)}};
    return t;
  }
};

enum class ReuseMapping { linear, skewed };
inline const Choices<ReuseMapping>& reuse_mappings() {
  static const Choices<ReuseMapping> c{{"linear", ReuseMapping::linear}, {"skewed", ReuseMapping::skewed}};
  return c;
}

struct ReuseBufferParams {
  int entries;
  int banks;
  int bits_per_entry;
  std::optional<int> ports{};  // accesses per bank per cycle; absent: unlimited (not modelled)
  ReuseMapping mapping = ReuseMapping::linear;

  // The bank of entry p of the segment of row r of a query block (r = 0 without blocks).
  uint64_t bank(uint64_t r, uint64_t p) const {
    const uint64_t b = static_cast<uint64_t>(banks);
    return mapping == ReuseMapping::linear ? (r * static_cast<uint64_t>(entries) + p) % b : (r + p) % b;
  }

  static const ParamTable<ReuseBufferParams>& table() {
    static const ParamTable<ReuseBufferParams> t{
        "reuse_buffer", "Holds pass-1 partial sums until survivors finish their planes.",
        {field(&ReuseBufferParams::entries, "entries", 4096)
             .doc("Partial sums held; longer rows are processed in segments.").min(1).max(1 << 24),
         field(&ReuseBufferParams::banks, "banks", 16)
             .doc("Banks of the buffer: partial sums written or read per cycle.").min(1).max(plausible::kBanks),
         field(&ReuseBufferParams::bits_per_entry, "bits_per_entry", 32)
             .unit("bits").doc("Width of one stored partial sum.").min(1).max(64),
         field(&ReuseBufferParams::ports, "ports", json())
             .unit("accesses/cycle")
             .doc("Accesses one bank serves per cycle (the bank of an entry: reuse_buffer.mapping). A pass-1 tile cannot retire its estimates, nor a pass-2 tile read its partial sums, faster than the ports allow; the lanes wait (QK unit stall). Absent: unlimited (not modelled; the buffer's busy is then port demand).")
             .min(1).max(plausible::kPorts),
         choice(&ReuseBufferParams::mapping, "mapping", ReuseMapping::linear, reuse_mappings())
             .doc("Bank of entry p of the segment of row r of a query block (r = 0 without blocks): linear, (r x entries + p) mod banks; skewed, (r + p) mod banks (the rows' entries for the same key in different banks). Matters only with reuse_buffer.ports.")}};
    return t;
  }
};

struct QkSetup {
  QkUnitParams qk;
  ComparatorParams comparator;
  ReuseBufferParams reuse;
  SramParams sram = SramParams::table().defaults();  // the SRAM's banks and ports (K and V reads)
  // The functional model scores every candidate exactly (the quality reference reads the
  // filtered keys' scores too); false: only the survivors (nothing reads the others').
  bool exact_all = true;
  bool has_comparator() const { return qk.mode != QkMode::dense; }
  bool has_reuse_buffer() const { return qk.mode == QkMode::latte; }
};

// ---- functional model and row cost (pure, no SystemC) ------------------------------------

// Scores one row: fills row.exact (every candidate's exact score; empty unless
// setup.exact_all), row.keep, row.survivor_ids / survivor_scores and row.exact_scored from
// row.candidates, and returns
// the row's cycles and action counts with its comparator schedule (QkRowCost). Safe to
// call from several threads on different rows.
QkRowCost score_row(const QkSetup& setup, const HeadWork& work, RowData& row);

// ---- K/V tiling (arch/kv_tiling.h) -----------------------------------------------------

// The row's part in each of `tiles` key tiles of `key_tile` keys (parts[t]), from what
// score_row left in `row` (candidates in key order, keep, early_term's planes): the
// candidates and survivors in the tile and the QK unit's cost of them, the rule of the
// header applied to the tile's candidates alone (latte: the row's segments within the
// tile; a segment is cut at a tile edge only if key_tile is not a multiple of
// reuse_buffer.entries or some key is not a candidate, which a tiled run rules out), plus
// the query row's d*B bits read once per part. A part with no candidates costs nothing.
void tile_parts(const QkSetup& setup, int d, const RowData& row, int key_tile, int tiles, TilePart* parts);

// ---- query blocks (qk_unit.query_block = Qb > 1) ----------------------------------------

// One row of a block as score_row left it (or its part in a key tile, K/V tiling): its
// candidates (ascending), the comparator's keep flag per candidate, early_term's planes
// per candidate (null otherwise), and its own cost (counters).
struct BlockRow {
  const int32_t* candidates;
  size_t n;
  const uint8_t* keep;
  const int* planes;  // early_term only
  const QkRowCost* cost;
};

// Keys seen in a block, by key id (scratch of one thread, reused across blocks).
struct KeyMarks {
  std::vector<uint32_t> stamp;
  uint32_t epoch = 0;
  std::vector<int> planes;  // early_term: the most planes any row of the block ran on a key
  void reset(int m);        // a fresh, empty set over keys 0..m-1
};

// The QK unit's cost of a block of rows scored together (the rule in the header): the
// timing fields of QkRowCost (busy, the comparator schedule, comparator_busy) and
// sram_read_bits for the block; the counters (bitplane_ops, adder_tree_inputs, int8_macs,
// compares, reuse) are the sum of the rows' own. `m` = keys of the head.
QkRowCost block_cost(const QkSetup& setup, int d, int m, const std::vector<BlockRow>& rows, KeyMarks& marks);

// What a row costs in the unit's stream of rows (the comparator schedule of the header).
struct QkRowTiming {
  uint64_t advance = 0;          // cycles the unit spends on the row before it leaves
  uint64_t comparator_wait = 0;  // of which the lanes wait for the comparator
};

// The timing of a row given its neighbours: `own_pass1_done` when the previous row's last
// segment already ran this row's first pass 1 (overlapped with its comparator), and
// `next_first_pass1` the first pass 1 of the next row of the head (0 when there is none).
QkRowTiming qk_row_timing(const QkRowCost& row, bool own_pass1_done, uint64_t next_first_pass1);

// ---- the SystemC module -------------------------------------------------------------------

class QkUnit : public sc_core::sc_module {
 public:
  sc_core::sc_fifo_in<std::shared_ptr<HeadWork>> head_in;
  sc_core::sc_fifo_out<RowToken> row_out;

  QkUnit(sc_core::sc_module_name name, const QkSetup& setup, SramBuffers& sram);

  bool has_comparator() const { return setup_.has_comparator(); }
  bool has_reuse_buffer() const { return setup_.has_reuse_buffer(); }
  ModuleActivity activity() const;
  ModuleActivity comparator_activity() const;
  ModuleActivity reuse_buffer_activity() const;
  // Activity tracing (arch/activity_trace.h); null when off.
  void set_tracer(ActivityRecorder* t) { trace_ = t; }

 private:
  void run();
  void run_blocks(const std::shared_ptr<HeadWork>& work);
  void process(const HeadWork& work, int row, const QkRowCost& c, const QkRowCost* next, bool& own_pass1_done,
               bool traced);
  void emit(const RowToken& token, bool traced);
  void run_tiled(const std::shared_ptr<HeadWork>& work);
  void trace_row(const HeadWork& work, int row, const QkRowTiming& t);

  QkSetup setup_;
  SramBuffers& sram_;
  QkRowCost total_;
  uint64_t comparator_wait_ = 0, output_stall_ = 0;
  ActivityRecorder* trace_ = nullptr;
};

}  // namespace attnsim

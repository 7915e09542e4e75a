#pragma once
// What flows between the units. A HeadWork is one head of one layer resident in the
// SRAM buffers; a RowToken is one query row of it travelling QK unit -> softmax -> AV
// unit -> write-back.
//
// Functional first, then time: when a head is loaded, the head model (arch/head_model.h)
// runs every row through the units' pure functions (the candidate generator, score_row,
// softmax, weighted_sum) on real data, in parallel over rows, and keeps per row only what
// the timing needs (RowOutcome). The SystemC units then advance time by the cycles their
// rules give for those outcomes. RowData is the head model's per-row scratch.
#include "arch/kv_tiling.h"
#include "core/params.h"
#include "workloads/skim_types.h"
#include "workloads/trace.h"

#include <systemc>

#include <cstdint>
#include <memory>
#include <ostream>
#include <vector>

namespace attnsim {

class HeadCandidates;  // arch/candidates.h

// The channels between the units, and how far the steps of a layer overlap.
struct PipelineParams {
  int fifo_depth;
  bool overlap_gemm = false;  // encoder scope: per-head QKV projections overlap attention

  static const ParamTable<PipelineParams>& table() {
    static const ParamTable<PipelineParams> t{
        "pipeline", "Latency-insensitive channels between the units, and how far a layer's steps overlap.",
        {field(&PipelineParams::fifo_depth, "fifo_depth", 4)
             .unit("rows").doc("Depth of every FIFO between two units.").min(1).max(1 << 16),
         field(&PipelineParams::overlap_gemm, "overlap_gemm", false)
             .doc("Encoder scope: project Q, K and V head by head, the DMA loading head h as soon as its projection is done while the GEMM engine projects head h+1 (sim/layer_scheduler.h); false: one QKV GEMM before the layer's attention. No effect in attention scope.")}};
    return t;
  }
};

// One layer in flight, with the per-head comparator thresholds resolved for it.
struct LayerContext {
  LayerView view;               // the active tokens of the layer (all of them without skimming)
  bool causal = false;
  std::vector<int64_t> margin;  // LATTE integer margin T_h per head
  std::vector<int64_t> theta;   // LeOPArd threshold theta_h per head
  // With skimming, the unreduced layer: the quality reference is exact attention over
  // all its keys (SEMANTICS §7). Null when the layer is not reduced.
  std::shared_ptr<const LayerView> full;
  skim::TokenMap map;           // the active tokens as mixes of the original ones (skimming)
  // FCA: head-mean attention probabilities over the active tokens, n x n, accumulated by
  // the functional model (each row written by one thread, heads one after another).
  std::shared_ptr<std::vector<double>> abar;
  // Mechanism parameters the trace carries, per head (empty when it has none: the unit
  // then uses its own, built or seeded): Treeformer trees, LSH directions, Performer W.
  std::vector<TreeParams> trees;
  std::vector<Matrix> lsh_directions;
  std::vector<Matrix> performer;
};

// Cycles and action counts of one row in the QK unit, its comparator and its reuse
// buffer (rules in arch/qk_unit.h), with what the unit needs to schedule the row among
// its neighbours (latte's comparator overlaps the next segment's pass 1: qk_row_timing).
struct QkRowCost {
  uint64_t busy = 0;             // qk_unit busy cycles (SEMANTICS §4)
  uint64_t comparator_busy = 0;
  uint64_t bitplane_ops = 0;
  uint64_t adder_tree_inputs = 0;
  uint64_t int8_macs = 0;
  uint64_t compares = 0;
  uint64_t reuse_reads = 0, reuse_writes = 0, reuse_busy = 0;
  uint64_t reuse_port_wait = 0;  // lane cycles spent waiting for reuse-buffer ports (stall)
  uint64_t sram_port_wait = 0;   // lane cycles spent waiting for K-buffer ports (stall)
  uint64_t sram_read_bits = 0;   // Q row and K bits read

  // The comparator schedule (latte; `overlapped` false in the other modes, where a row
  // simply takes its busy cycles). Segments s_0..s_{k-1} of the row:
  bool overlapped = false;
  int segments = 0;
  uint64_t first_pass1 = 0;      // P1(s_0)
  uint64_t inner_advance = 0;    // sum over s_0..s_{k-2} of max(P1(next), cmp) + P2
  uint64_t inner_wait = 0;       // sum over s_0..s_{k-2} of max(0, cmp - P1(next))
  uint64_t last_compare = 0;     // cmp(s_{k-1}), compare cycles plus latency
  uint64_t last_pass2 = 0;       // P2(s_{k-1})

  QkRowCost& operator+=(const QkRowCost& o) {
    busy += o.busy, comparator_busy += o.comparator_busy;
    bitplane_ops += o.bitplane_ops, adder_tree_inputs += o.adder_tree_inputs;
    int8_macs += o.int8_macs, compares += o.compares;
    reuse_reads += o.reuse_reads, reuse_writes += o.reuse_writes, reuse_busy += o.reuse_busy;
    reuse_port_wait += o.reuse_port_wait, sram_port_wait += o.sram_port_wait;
    sram_read_bits += o.sram_read_bits;
    return *this;
  }
};

// What the timed units need to know about one row, plus its quality contributions
// (summed in row order by the write-back's sink, so results do not depend on threads).
struct RowOutcome {
  uint32_t candidates = 0;     // |C_i| (Treeformer TC: the path nodes attended)
  uint32_t survivors = 0;      // what the softmax and the AV unit work on
  uint32_t value_rows = 0;     // V rows the AV unit reads from the SRAM (TC: none, its node
                               // sums are the tree engine's)
  uint32_t av_read_cycles = 0; // with sram.ports: cycles the AV unit's V reads take (av_unit.h)
  uint64_t exact_scored = 0;
  QkRowCost qk;
  uint64_t lowrank_macs = 0, lowrank_exps = 0;  // the low-rank unit's row work (when on)
  // quality (zero when quality is off, or for a coarse FCA token, which has no reference)
  bool measured = false;
  bool has_mass = true;        // false for TC rows: mass_recall is not defined for them
  double err_sq = 0, ref_sq = 0, mass = 0, qerr_sq = 0, qref_sq = 0;
};

// K/V tiling (arch/kv_tiling.h): a row's candidates within one key tile, and what the
// QK unit, the softmax and the AV unit spend on them.
struct TilePart {
  uint32_t first = 0;       // its first candidate's index in the row's candidates
  uint32_t candidates = 0;
  uint32_t survivors = 0;
  QkRowCost qk;  // the row's segments within the tile, scheduled as a row of their own
  uint32_t av_read_cycles = 0;  // with sram.ports: the AV unit's V reads of the part (av_unit.h)
};

struct HeadWork {
  std::shared_ptr<const LayerContext> layer;
  int head = 0;
  bool last_head_of_layer = false;
  // Functional helpers derived once per head (not hardware state); k_msb and v_deq are
  // freed once the head model has run.
  std::vector<int16_t> k_msb;  // K truncated to its P most significant planes (LATTE)
  std::vector<double> v_deq;   // dequantized V, M x d
  std::vector<double> q_deq, k_deq;  // dequantized Q (N x d) and K (M x d), when a candidate
                                     // generator or the low-rank unit needs them
  bool wide = false;           // accumulate in int64 (large B*d)
  double score_scale = 1.0;    // scale_q*scale_k/sqrt(d): integer score -> logit

  // The candidate generator's work on this head (its unit's cycles and counts).
  std::shared_ptr<const HeadCandidates> candidates;
  uint64_t param_bytes = 0;    // per-head parameters the DMA loads with Q, K, V (trees,
                               // LSH directions, Performer W) into their units' buffers
  uint64_t lowrank_head_macs = 0, lowrank_head_exps = 0;  // the low-rank unit's key side
  // Per-row outcome of the head model, read by the timed units.
  std::vector<RowOutcome> rows;
  // qk_unit.query_block > 1: the QK unit's cost of each block of rows scored together
  // (block_cost, arch/qk_unit.h); empty with query_block = 1, where each row's own cost
  // times it.
  std::vector<QkRowCost> blocks;
  // K/V tiling (null: the head is not tiled): the schedule, and every row's part in every
  // key tile, parts[row * tiles + t] (candidates 0: the row has none in tile t).
  std::shared_ptr<TileState> tiled;
  std::vector<TilePart> parts;
  // Tiled with qk_unit.query_block = Qb > 1: the cost of query block k's parts in tile t
  // scored together (block_cost), block_parts[k * tiles + t]; `blocks` stays empty.
  std::vector<QkRowCost> block_parts;

  const HeadData& data() const { return layer->view.head[head]; }
  int n() const { return layer->view.n; }
  int m() const { return layer->view.m; }
  int d() const { return layer->view.d; }
  int layer_index() const { return layer->view.index; }
};

// A row in flight between two timed units.
struct RowToken {
  std::shared_ptr<HeadWork> head;
  int row = 0;
  sc_core::sc_time ready;  // when the producing unit's pipeline delivers it
  int part = -1;           // K/V tiling: the key tile of this part of the row (-1: the whole row)
  const RowOutcome& outcome() const { return head->rows[row]; }
  const TilePart& tile_part() const { return head->parts[static_cast<size_t>(row) * head->tiled->tiles + part]; }
  // What the softmax and the AV unit work on: the row's survivors, or those of its part.
  uint32_t survivors() const { return part < 0 ? outcome().survivors : tile_part().survivors; }
  uint32_t value_rows() const { return part < 0 ? outcome().value_rows : tile_part().survivors; }
  bool first_part() const { return part < 0 || part == head->tiled->first_tile[row]; }
  bool last_part() const { return part < 0 || part == head->tiled->last_tile[row]; }
  // The last token of its head (the AV unit frees the head's SRAM slot after it).
  bool last_of_head() const { return row == head->n() - 1 && last_part(); }
  bool operator==(const RowToken& o) const { return head == o.head && row == o.row && part == o.part; }
};
inline std::ostream& operator<<(std::ostream& os, const RowToken& t) {
  return os << "row " << t.row;
}

struct RowData {
  int row = 0;
  std::vector<int32_t> candidates;  // candidate set C_i (key ids, ascending) from the generator
  std::vector<int64_t> exact;       // exact integer score of every candidate
  std::vector<uint8_t> keep;        // comparator decision per candidate (1 = survivor)
  std::vector<int> planes;          // early_term: bit-planes processed per candidate
  std::vector<int32_t> survivor_ids;
  std::vector<int64_t> survivor_scores;
  uint64_t exact_scored = 0;        // keys whose score the unit computed exactly
  std::vector<double> probs;        // softmax over survivors
  int64_t softmax_max = 0;          // its largest score and its sum of exponentials
  double softmax_sum = 0;           //   relative to it (attn::SoftmaxSum)
  std::vector<double> out;          // output row, d values
  // True when `out` is the softmax and AV units' P.V over the survivors; false when another
  // unit produced it (the low-rank combination, Treeformer TC).
  bool plain_output = true;
};

// The write-back hands every finished row to a sink (sim/: filter statistics and
// quality metrics), and reports layer completion.
class RowSink {
 public:
  virtual ~RowSink() = default;
  virtual void row_done(const HeadWork& head, int row) = 0;
};

}  // namespace attnsim

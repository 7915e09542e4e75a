#pragma once
// qk_unit (with its comparator and reuse buffer): scores each query row against its
// candidate keys. SEMANTICS §3 (functional) and §4 (timing) are the contract.
//
// What it does, per row i of a head (candidates C_i: all keys, or keys 0..i when causal):
//  - dense, bit_serial: every candidate scored exactly, B bit-planes each.
//  - dense, bit_parallel: every candidate scored exactly, one dot product per lane-cycle.
//  - latte: pass 1 computes the MSB estimate e_ij from the first P planes of K, the
//    comparator keeps j iff m_i - e_ij <= T_h (running max m_i over the segments so far),
//    the reuse buffer holds the partial sums, pass 2 finishes the survivors' B-P planes.
//    Rows longer than reuse_buffer.entries are processed in segments.
//  - early_term (LeOPArd): each key stops after the first plane b where p_b + u_b < theta_h.
//
// Timing rule (cycles per row, L = qk_unit.lanes):
//  busy: dense bit-serial ceil(n/L)*B; bit-parallel ceil(n/L);
//        latte sum_seg ceil(n_seg/L)*P + ceil(s_seg/L)*(B-P);
//        early_term lockstep sum over L-key tiles of the max plane count,
//        independent the greedy makespan (arch/qk_math.h).
//  comparator (latte): the comparator needs a segment's maximum, known only when its
//        pass 1 ends; it then takes cmp = ceil(n_seg / comparator.keys_per_cycle) +
//        comparator.latency_cycles cycles. Meanwhile the lanes run pass 1 of the next
//        segment (the next in the row, or the first of the next row of the head; the
//        reuse buffer holds both segments' partial sums), then pass 2 of this one:
//          P1(s0) | max(P1(s1), cmp(s0)) | P2(s0) | max(P1(s2), cmp(s1)) | P2(s1) | ...
//        so the lanes stall max(0, cmp(s_k) - P1(s_k+1)) per segment (P1 of "next" = 0
//        after the last segment of a head). A row leaves the unit when its last pass 2
//        ends. Busy stays the §4 formula; stall adds the output FIFO's back-pressure.
//  Early-termination bound checks happen inside the lanes and take no extra cycles.
//
// Params: QkUnitParams, ComparatorParams, ReuseBufferParams (arch/unit_params.h).
// Stats: qk_unit busy/stall; counters qk_unit.bitplane_ops (lane-planes processed),
//  qk_unit.adder_tree_inputs (d per bit-plane op), qk_unit.int8_macs (bit_parallel);
//  comparator busy (compare cycles) and comparator.compares; reuse_buffer busy
//  (ceil(accesses/banks) per segment) and reuse_buffer.reads / writes. The comparator is
//  present in latte and early_term modes, the reuse buffer in latte mode.
#include "arch/pipeline.h"
#include "arch/sram.h"
#include "arch/unit_params.h"
#include "core/activity.h"

#include <systemc>

#include <algorithm>
#include <memory>
#include <vector>

namespace attnsim {

class ActivityRecorder;

struct QkSetup {
  QkUnitParams qk;
  ComparatorParams comparator;
  ReuseBufferParams reuse;
};

// The dense candidate generator: all keys, or keys 0..i when the trace is causal.
void dense_candidates(int row, int m, bool causal, std::vector<int32_t>& out);
inline int candidate_count(int row, int m, bool causal) { return causal ? std::min(row + 1, m) : m; }

// Where a row sits in its head's stream of segments (latte's overlapped comparator).
struct RowPlace {
  bool first_in_head = true;        // the unit starts with this row's first pass 1
  uint64_t next_row_pass1 = 0;      // pass-1 cycles of the next row's first segment (0: none)
};

// Pass-1 cycles of the first segment of a row with `candidates` keys (latte).
uint64_t first_segment_pass1_cycles(const QkSetup& setup, uint64_t candidates);

// Functional and timing model of one row: fills row.exact (every candidate's exact
// score), row.keep, row.survivor_ids / survivor_scores and row.exact_scored from
// row.candidates, and returns the row's cycles and action counts. Pure: no SystemC;
// safe to call from several threads on different rows.
QkRowCost score_row(const QkSetup& setup, const HeadWork& work, RowData& row,
                    const RowPlace& place = {});

class QkUnit : public sc_core::sc_module {
 public:
  sc_core::sc_fifo_in<std::shared_ptr<HeadWork>> head_in;
  sc_core::sc_fifo_out<RowToken> row_out;

  QkUnit(sc_core::sc_module_name name, const QkSetup& setup, SramBuffers& sram);

  bool has_comparator() const { return setup_.qk.mode != "dense"; }
  bool has_reuse_buffer() const { return setup_.qk.mode == "latte"; }
  ModuleActivity activity() const;
  ModuleActivity comparator_activity() const;
  ModuleActivity reuse_buffer_activity() const;
  // Activity tracing (arch/activity_trace.h); null when off.
  void set_tracer(ActivityRecorder* t) { trace_ = t; }

 private:
  void run();
  void trace_row(const HeadWork& work, int row, const QkRowCost& c);

  QkSetup setup_;
  SramBuffers& sram_;
  QkRowCost total_;
  uint64_t output_stall_ = 0;
  ActivityRecorder* trace_ = nullptr;
};

}  // namespace attnsim

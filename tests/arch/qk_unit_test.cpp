// The QK unit on hand cases: a row's cost and comparator schedule from score_row (through
// the head model), the row-by-row lookahead of qk_row_timing, and the SystemC module's
// output times and busy / stall for rows whose costs are set by hand. Each TEST_CASE
// elaborates at most one design: ctest runs each in its own process.
#include "arch/candidates.h"
#include "arch/head_model.h"
#include "arch/kernel_time.h"
#include "arch/qk_unit.h"
#include "arch/sc_threads.h"
#include "arch/sram.h"

#include <catch2/catch.hpp>

#include <systemc>

#include <memory>
#include <vector>

using namespace attnsim;

namespace {

QkSetup setup(QkMode mode, int lanes, int entries, int keys_per_cycle, int latency) {
  QkSetup s;
  s.qk = {QkType::bit_serial, mode, 8, 4, lanes, LaneSync::lockstep};
  s.comparator.gamma = 0.01;
  s.comparator.theta = 0;
  s.comparator.keys_per_cycle = keys_per_cycle;
  s.comparator.latency_cycles = latency;
  s.reuse = {entries, 16, 32};
  return s;
}

// One head of d = 1: every query is 1, the keys are `keys`, scales 1, margin `margin`.
std::shared_ptr<LayerContext> one_dim_layer(int queries, const std::vector<int16_t>& keys, int64_t margin) {
  auto ctx = std::make_shared<LayerContext>();
  LayerView& v = ctx->view;
  v.heads = 1, v.n = queries, v.m = static_cast<int>(keys.size()), v.d = 1;
  v.head.resize(1);
  v.head[0].q.assign(queries, 1);
  v.head[0].k = keys;
  v.head[0].v.assign(keys.size(), 1);
  ctx->margin = {margin};
  ctx->theta = {0};
  return ctx;
}

// The same keys in a head of dimension d: q = (1, ..., 1), key j = (keys[j], 0, ..., 0),
// so every dot product and estimate equals the d = 1 case's.
std::shared_ptr<LayerContext> wide_layer(int d, const std::vector<int16_t>& keys, int64_t margin) {
  auto ctx = one_dim_layer(1, keys, margin);
  LayerView& v = ctx->view;
  v.d = d;
  v.head[0].q.assign(d, 1);
  v.head[0].k.assign(keys.size() * d, 0);
  v.head[0].v.assign(keys.size() * d, 1);
  for (size_t j = 0; j < keys.size(); ++j) v.head[0].k[j * d] = keys[j];
  return ctx;
}

std::vector<RowOutcome> model_rows(const QkSetup& s, std::shared_ptr<LayerContext> ctx) {
  const auto all = make_candidate_generator("all", json::object());
  return HeadModel(s, *all, nullptr, nullptr, 1).compute(ctx, 0)->rows;
}

}  // namespace

TEST_CASE("a latte row of three segments: cost and comparator schedule by hand") {
  // d = 1, q = 1, keys 16 32 48 64 80: B = 8, P = 4 keeps each key whole (multiples of 16),
  // so the estimates are the keys. entries = 2: segments {16, 32}, {48, 64}, {80}; margin 0
  // keeps the running maximum: 32, then 64, then 80 (one survivor each).
  // L = 1: P1 = keys x 4 = 8, 8, 4; P2 = survivors x 4 = 4, 4, 4; busy 32.
  // Comparator 1 key/cycle + latency 3: cmp = 2+3, 2+3, 1+3 = 5, 5, 4.
  //   s0: next P1 8 >= cmp 5: max 8 + P2 4 = 12, no wait;
  //   s1: next P1 4 <  cmp 5: max 5 + P2 4 = 9, wait 1;
  //   s2 (last): cmp 4 and P2 4 wait for whatever follows the row.
  const QkSetup s = setup(QkMode::latte, 1, 2, 1, 3);
  const std::vector<RowOutcome> rows = model_rows(s, one_dim_layer(1, {16, 32, 48, 64, 80}, 0));
  const QkRowCost& c = rows[0].qk;
  CHECK(rows[0].candidates == 5);
  CHECK(rows[0].survivors == 3);
  CHECK(c.busy == 32);
  CHECK(c.overlapped);
  CHECK(c.segments == 3);
  CHECK(c.first_pass1 == 8);
  CHECK(c.inner_advance == 12 + 9);
  CHECK(c.inner_wait == 1);
  CHECK(c.last_compare == 4);
  CHECK(c.last_pass2 == 4);
  CHECK(c.comparator_busy == 2 + 2 + 1);
  CHECK(c.compares == 5);
  CHECK(c.reuse_writes == 5);
  CHECK(c.reuse_reads == 3);
  CHECK(c.reuse_busy == 6);  // ceil(keys / 16) + ceil(survivors / 16) = 1 + 1 per segment
  CHECK(c.bitplane_ops == 5 * 4 + 3 * 4);
  CHECK(c.sram_read_bits == 32 * 1 + 1 * 8);  // bit-planes of d = 1 bit, plus the query

  // Alone in its head: P1(s0) + 21 + max(0, 4) + 4 = 37 cycles, of which 1 + 4 wait.
  const QkRowTiming alone = qk_row_timing(c, false, 0);
  CHECK(alone.advance == 37);
  CHECK(alone.comparator_wait == 5);
  CHECK(alone.advance == c.busy + alone.comparator_wait);
  // Followed by a row whose first pass 1 takes 10 cycles: the last compare hides in it.
  const QkRowTiming followed = qk_row_timing(c, false, 10);
  CHECK(followed.advance == 8 + 21 + 10 + 4);
  CHECK(followed.comparator_wait == 1);
  // Its own first pass 1 already run by the previous row: 8 cycles less.
  CHECK(qk_row_timing(c, true, 10).advance == 21 + 10 + 4);
}

TEST_CASE("rows of other modes take their busy cycles, an empty latte row none") {
  QkRowCost dense;
  dense.busy = 17;
  CHECK(qk_row_timing(dense, false, 99).advance == 17);
  CHECK(qk_row_timing(dense, true, 99).comparator_wait == 0);
  QkRowCost empty;
  empty.overlapped = true;  // latte, but C_i was empty: no segment, nothing to do
  CHECK(qk_row_timing(empty, false, 5).advance == 0);
  CHECK(qk_row_timing(empty, false, 5).comparator_wait == 0);
}

TEST_CASE("dense and early-termination rows through score_row") {
  // Dense bit-serial, L = 2: 5 keys -> ceil(5/2) * 8 = 24 cycles, 40 bit-plane ops.
  const QkSetup dense = setup(QkMode::dense, 2, 4096, 64, 1);
  const RowOutcome d = model_rows(dense, one_dim_layer(1, {16, 32, 48, 64, 80}, 0))[0];
  CHECK(d.qk.busy == 24);
  CHECK_FALSE(d.qk.overlapped);
  CHECK(d.qk.bitplane_ops == 40);
  CHECK(d.survivors == 5);
  CHECK(d.exact_scored == 5);
  // early_term, theta 0, q = 1 (qpos 1): a key k stops after plane b when
  // p_b + (2^(8-b) - 1) < 0. k = -80 (1011 0000): plane 1 gives -128 + 127 < 0: 1 plane.
  // k = 3: p_b = 0 for b <= 6 and u_b >= 1, so all 8 planes, and 3 >= 0 survives.
  const QkSetup et = setup(QkMode::early_term, 2, 4096, 64, 1);
  const RowOutcome e = model_rows(et, one_dim_layer(1, {-80, 3}, 0))[0];
  CHECK(e.qk.bitplane_ops == 1 + 8);
  CHECK(e.qk.busy == 8);  // one tile of 2 keys: its slowest key
  CHECK(e.qk.compares == 9);
  CHECK(e.survivors == 1);
  CHECK(e.exact_scored == 1);
}

namespace {

// Feeds `heads` to a QK unit at cycle 0 and records when the sink takes each row; the
// sink waits `sink_gap` cycles after each row.
struct QkHarness : sc_core::sc_module {
  sc_core::sc_fifo<std::shared_ptr<HeadWork>> heads_fifo;
  sc_core::sc_fifo<RowToken> rows_fifo;
  SramBuffers sram{SramParams{1024, 64, 128}};
  QkUnit qk;
  std::vector<std::shared_ptr<HeadWork>> heads;
  uint64_t sink_gap;
  std::vector<uint64_t> left;  // cycle each row was taken, in order

  QkHarness(sc_core::sc_module_name name, const QkSetup& s, std::vector<std::shared_ptr<HeadWork>> h,
            int depth = 16, uint64_t gap = 0)
      : sc_module(name),
        heads_fifo("heads", 4),
        rows_fifo("rows", depth),
        qk("qk_unit", s, sram),
        heads(std::move(h)),
        sink_gap(gap) {
    qk.head_in(heads_fifo);
    qk.row_out(rows_fifo);
    SC_HAS_PROCESS(QkHarness);
    SC_THREAD(source);
    SC_THREAD(sink);
  }
  void source() {
    for (const auto& h : heads) heads_fifo.write(h);
  }
  void sink() {
    while (true) {
      rows_fifo.read();
      left.push_back(now_cycles().count());
      wait_cycles(Cycles(sink_gap));
    }
  }
};

// A head whose rows have the given (first P1, last compare, last P2, busy); a row with
// busy 0 has no segment (an empty C_i).
struct HandRow {
  uint64_t first_pass1, last_compare, last_pass2, busy;
};
std::shared_ptr<HeadWork> hand_head(const std::vector<HandRow>& rows) {
  auto ctx = std::make_shared<LayerContext>();
  ctx->view.heads = 1, ctx->view.n = static_cast<int>(rows.size()), ctx->view.m = 1, ctx->view.d = 1;
  auto w = std::make_shared<HeadWork>();
  w->layer = ctx;
  for (const HandRow& r : rows) {
    RowOutcome o;
    o.qk.overlapped = true;
    o.qk.segments = r.busy > 0 ? 1 : 0;
    o.qk.first_pass1 = r.first_pass1;
    o.qk.last_compare = r.last_compare;
    o.qk.last_pass2 = r.last_pass2;
    o.qk.busy = r.busy;
    w->rows.push_back(o);
  }
  return w;
}

}  // namespace

TEST_CASE("the QK unit schedules each row's comparator against the next row's first pass 1") {
  init_kernel_time();
  // Head A: rows (P1 6, cmp 3, P2 2) and (P1 5, cmp 2, P2 1). Row 0 runs its own pass 1
  // (6), then row 1's pass 1 while its comparator works (max(5, 3) = 5), then its pass 2
  // (2): leaves at 13 with no wait. Row 1's pass 1 is done: max(0, 2) + 1 = 3, of which 2
  // wait: leaves at 16.
  // Head B: rows (P1 6, cmp 3, P2 2), an empty row, (P1 4, cmp 7, P2 1). Row 0 cannot
  // overlap the empty row: 6 + max(0, 3) + 2 = 11 (wait 3), leaves at 27; the empty row
  // leaves at once (27); row 2 pays its own pass 1: 4 + max(0, 7) + 1 = 12 (wait 7): 39.
  const QkSetup s = setup(QkMode::latte, 1, 4096, 64, 1);
  QkHarness h("h", s,
              {hand_head({{6, 3, 2, 8}, {5, 2, 1, 6}}), hand_head({{6, 3, 2, 8}, {0, 0, 0, 0}, {4, 7, 1, 5}})});
  run_kernel();
  CHECK(h.left == std::vector<uint64_t>{13, 16, 27, 27, 39});
  const ModuleActivity a = h.qk.activity();
  CHECK(a.busy == 8 + 6 + 8 + 0 + 5);
  CHECK(a.stall == 2 + 3 + 7);  // comparator waits; the sink never blocks
  CHECK(a.busy + a.stall == 39);
}

TEST_CASE("a full output FIFO stalls the QK unit and counts as stall") {
  init_kernel_time();
  // Dense rows of 4 busy cycles into a one-deep FIFO; the sink takes a row, then rests 10
  // cycles. Row 0 is taken at 4 (sink free until 14); row 1 enters the FIFO at 8; row 2 is
  // done at 12 but the FIFO holds row 1 until 14: 2 cycles of stall. Taken at 4, 14, 24.
  const QkSetup s = setup(QkMode::dense, 1, 4096, 64, 1);
  auto w = hand_head({{0, 0, 0, 4}, {0, 0, 0, 4}, {0, 0, 0, 4}});
  for (RowOutcome& o : w->rows) o.qk.overlapped = false;
  QkHarness h("h", s, {w}, 1, 10);
  run_kernel();
  CHECK(h.left == std::vector<uint64_t>{4, 14, 24});
  CHECK(h.qk.activity().busy == 12);
  CHECK(h.qk.activity().stall == 2);
}

TEST_CASE("qk_unit.lane_width: a d-wide plane takes ceil(d / W) cycles in every mode") {
  // d = 10, W = 4: c = ceil(10/4) = 3 cycles per plane (or per dot product).
  // latte, the three-segment row of the first test case, every plane cycle x 3:
  //   busy 32 x 3 = 96; P1 = 24, 24, 12; P2 = 12, 12, 12; cmp 5, 5, 4 (the comparator's
  //   rule does not change). s0: max(24, 5) + 12 = 36; s1: max(12, 5) + 12 = 24; no wait.
  QkSetup s = setup(QkMode::latte, 1, 2, 1, 3);
  s.qk.lane_width = 4;
  const QkRowCost c = model_rows(s, wide_layer(10, {16, 32, 48, 64, 80}, 0))[0].qk;
  CHECK(c.busy == 96);
  CHECK(c.first_pass1 == 24);
  CHECK(c.inner_advance == 36 + 24);
  CHECK(c.inner_wait == 0);
  CHECK(c.last_compare == 4);
  CHECK(c.last_pass2 == 12);
  CHECK(c.bitplane_ops == 2 * 4 + 4 + 2 * 4 + 4 + 1 * 4 + 4);  // work is unchanged: 36 lane-planes
  // dense bit-serial, L = 2, 5 keys: ceil(5/2) * 8 * 3 = 72.
  QkSetup dense = setup(QkMode::dense, 2, 4096, 64, 1);
  dense.qk.lane_width = 4;
  CHECK(model_rows(dense, wide_layer(10, {16, 32, 48, 64, 80}, 0))[0].qk.busy == 72);
  // bit-parallel, L = 2: ceil(5/2) * 3 = 9 (one dot product takes 3 cycles).
  dense.qk.type = QkType::bit_parallel;
  CHECK(model_rows(dense, wide_layer(10, {16, 32, 48, 64, 80}, 0))[0].qk.busy == 9);
  // early_term, keys {-80, 3}, theta 0; here qpos = 10 (ten ones), so u_b = 10 (2^(8-b) - 1):
  // k = -80 (1011 0000): p_1..p_4 = -128, -128, -96, -80 against u = 1270, 630, 310, 150 go
  // on; p_5 = -80 + u_5 = 70 < 0 stops after 5 planes. k = 3 runs all 8. One tile: its
  // slowest key, 8 planes x 3 = 24 cycles; 13 lane-planes.
  QkSetup et = setup(QkMode::early_term, 2, 4096, 64, 1);
  et.qk.lane_width = 4;
  const RowOutcome e = model_rows(et, wide_layer(10, {-80, 3}, 0))[0];
  CHECK(e.qk.busy == 24);
  CHECK(e.qk.bitplane_ops == 5 + 8);
  // Independent lanes: the makespan scales too (a lane per key: max(5, 8) x 3).
  et.qk.lane_sync = LaneSync::independent;
  CHECK(model_rows(et, wide_layer(10, {-80, 3}, 0))[0].qk.busy == 24);
  // W >= d: one cycle per plane, as without the key.
  dense.qk.type = QkType::bit_serial;
  dense.qk.lane_width = 16;
  CHECK(model_rows(dense, wide_layer(10, {16, 32, 48, 64, 80}, 0))[0].qk.busy == 24);
}

namespace {

// A block row built by hand: candidates, keep flags and (early_term) planes.
struct HandBlockRow {
  std::vector<int32_t> candidates;
  std::vector<uint8_t> keep;
  std::vector<int> planes;
  QkRowCost cost;
};

QkRowCost hand_block(const QkSetup& s, int d, int m, std::vector<HandBlockRow>& rows) {
  std::vector<BlockRow> block;
  for (HandBlockRow& r : rows)
    block.push_back({r.candidates.data(), r.candidates.size(), r.keep.data(), r.planes.data(), &r.cost});
  KeyMarks marks;
  return block_cost(s, d, m, block, marks);
}

}  // namespace

TEST_CASE("query blocks: a latte block streams the union of its rows' segments") {
  // d = 1, L = 2, B = 8, P = 4, entries 2, comparator 1 key/cycle + latency 3.
  // Row A: candidates 0 1 2 3 4, kept 1 3 4; row B: candidates 0 1 2, kept 0 2.
  // Segment k = candidates [2k, 2k+2) of each row:
  //   k = 0: A {0,1}, B {0,1}: U = {0,1} (2), survivors A {1} + B {0}: S = {0,1} (2), n = 4;
  //   k = 1: A {2,3}, B {2}:   U = {2,3} (2), S = A {3} + B {2} = {2,3} (2), n = 3;
  //   k = 2: A {4}:            U = {4} (1),   S = {4} (1),                    n = 1.
  // busy = sum (ceil(U/2) x 4 + ceil(S/2) x 4) = 8 + 8 + 8 = 24.
  // cmp = n + 3 = 7, 6, 4; P1 = 4, 4, 4; P2 = 4, 4, 4:
  //   s0: max(P1(s1) 4, 7) + 4 = 11, wait 3; s1: max(4, 6) + 4 = 10, wait 2; last: cmp 4, P2 4.
  // K reads: planes streamed (2x4 + 2x4 + 2x4 + 2x4 + 1x4 + 1x4 = 40) x d + 2 queries x 8 bits.
  const QkSetup s = setup(QkMode::latte, 2, 2, 1, 3);
  std::vector<HandBlockRow> rows(2);
  rows[0] = {{0, 1, 2, 3, 4}, {0, 1, 0, 1, 1}, {}, {}};
  rows[1] = {{0, 1, 2}, {1, 0, 1}, {}, {}};
  rows[0].cost.bitplane_ops = 32, rows[0].cost.compares = 5, rows[0].cost.reuse_writes = 5;
  rows[1].cost.bitplane_ops = 20, rows[1].cost.compares = 3, rows[1].cost.reuse_writes = 3;
  const QkRowCost c = hand_block(s, 1, 5, rows);
  CHECK(c.busy == 24);
  CHECK(c.overlapped);
  CHECK(c.segments == 3);
  CHECK(c.first_pass1 == 4);
  CHECK(c.inner_advance == 11 + 10);
  CHECK(c.inner_wait == 3 + 2);
  CHECK(c.last_compare == 4);
  CHECK(c.last_pass2 == 4);
  CHECK(c.comparator_busy == 4 + 3 + 1);
  CHECK(c.sram_read_bits == 40 + 16);
  // The counters are the rows' own (every row's adder tree and accumulator work).
  CHECK(c.bitplane_ops == 52);
  CHECK(c.compares == 8);
  CHECK(c.reuse_writes == 8);
}

TEST_CASE("query blocks: dense and early-termination blocks") {
  // Dense, L = 2: A {0, 2, 4}, B {1, 2}: U = {0, 1, 2, 4}: bit-serial ceil(4/2) x 8 = 16,
  // bit-parallel 2; K reads 4 keys x 8 planes x d (1) + 2 queries x 8 bits = 48.
  QkSetup dense = setup(QkMode::dense, 2, 4096, 64, 1);
  std::vector<HandBlockRow> rows(2);
  rows[0] = {{0, 2, 4}, {1, 1, 1}, {}, {}};
  rows[1] = {{1, 2}, {1, 1}, {}, {}};
  CHECK(hand_block(dense, 1, 5, rows).busy == 16);
  CHECK(hand_block(dense, 1, 5, rows).sram_read_bits == 48);
  CHECK_FALSE(hand_block(dense, 1, 5, rows).overlapped);
  dense.qk.type = QkType::bit_parallel;
  CHECK(hand_block(dense, 1, 5, rows).busy == 2);
  // early_term, L = 2: A {0, 1, 2} planes 1 2 8, B {1, 2, 3} planes 1 2 3: a key runs the
  // most planes any row needs: 0:1, 1:2, 2:8, 3:3. Lock-step tiles {1, 2}, {8, 3}: 2 + 8 = 10.
  // Independent: key 0 lane 0 [0,1), key 1 lane 1 [0,2), key 2 lane 0 [1,9), key 3 lane 1
  // [2,5): makespan 9. K reads: 1 + 2 + 8 + 3 = 14 planes x d + 16.
  QkSetup et = setup(QkMode::early_term, 2, 4096, 64, 1);
  rows[0] = {{0, 1, 2}, {0, 0, 1}, {1, 2, 8}, {}};
  rows[1] = {{1, 2, 3}, {0, 0, 0}, {1, 2, 3}, {}};
  CHECK(hand_block(et, 1, 4, rows).busy == 10);
  CHECK(hand_block(et, 1, 4, rows).sram_read_bits == 14 + 16);
  et.qk.lane_sync = LaneSync::independent;
  CHECK(hand_block(et, 1, 4, rows).busy == 9);
  // lane_width multiplies as for a row: d = 10, W = 4 (c = 3): 27; reads 14 x 10 + 2 x 10 x 8.
  et.qk.lane_width = 4;
  CHECK(hand_block(et, 10, 4, rows).busy == 27);
  CHECK(hand_block(et, 10, 4, rows).sram_read_bits == 140 + 160);
}

TEST_CASE("query blocks through the head model: a block of one row is the row, filters do not depend on Qb") {
  // Causal-like candidates are not needed: with all keys as every row's candidates the
  // union is the row's set, so a block's busy is one row's (the Qb rows share the pass).
  QkSetup s = setup(QkMode::latte, 2, 2, 1, 3);
  auto ctx = one_dim_layer(3, {16, 32, 48, 64, 80}, 0);
  const std::vector<RowOutcome> single = model_rows(s, ctx);
  s.qk.query_block = 2;
  const auto all = make_candidate_generator("all", json::object());
  const auto w = HeadModel(s, *all, nullptr, nullptr, 1).compute(ctx, 0);
  REQUIRE(w->blocks.size() == 2);  // rows {0, 1}, {2}
  for (int i = 0; i < 3; ++i) {
    CHECK(w->rows[i].survivors == single[i].survivors);
    CHECK(w->rows[i].qk.bitplane_ops == single[i].qk.bitplane_ops);
  }
  // Every row has the same keys and the same survivors (q = 1 for all): the block costs
  // one row's pass; the last block (one row) is exactly that row's cost.
  CHECK(w->blocks[0].busy == single[0].qk.busy);
  CHECK(w->blocks[0].bitplane_ops == 2 * single[0].qk.bitplane_ops);
  CHECK(w->blocks[1].busy == single[2].qk.busy);
  CHECK(w->blocks[1].first_pass1 == single[2].qk.first_pass1);
  CHECK(w->blocks[1].inner_advance == single[2].qk.inner_advance);
  CHECK(w->blocks[1].last_compare == single[2].qk.last_compare);
  // The comparator of block 0 checks both rows' keys: segments of 2 + 2, 2 + 2, 1 + 1.
  CHECK(w->blocks[0].comparator_busy == 4 + 4 + 2);
}

TEST_CASE("query blocks: the QK unit lets a block's rows leave together when its last pass ends") {
  // Qb = 2, three rows: blocks {0, 1} (busy 10) and {2} (busy 7), dense timing (no
  // comparator overlap): rows 0 and 1 leave at 10, row 2 at 17.
  QkSetup s = setup(QkMode::dense, 64, 4096, 64, 1);
  s.qk.query_block = 2;
  auto w = hand_head({{0, 0, 0, 1}, {0, 0, 0, 1}, {0, 0, 0, 1}});
  for (RowOutcome& r : w->rows) r.qk.overlapped = false;
  w->blocks.resize(2);
  w->blocks[0].busy = 10;
  w->blocks[1].busy = 7;
  QkHarness h("h", s, {w});
  run_kernel();
  CHECK(h.left == std::vector<uint64_t>{10, 10, 17});
  CHECK(h.qk.activity().busy == 17);
}

TEST_CASE("reuse_buffer.ports: a tile lasts as long as its planes or its port accesses, whichever is longer") {
  // d = 1, q = 1, keys 16 80 16 80 16 80 16 80 (exact at P = 6), margin 0: survivors are the
  // 80s at positions 1 3 5 7. L = 8, B = 8, P = 6, one segment (entries 4096).
  // busy (SEMANTICS §4) = ceil(8/8) x 6 + ceil(4/8) x 2 = 8, whatever the ports.
  // 2 banks, 1 port: pass 1 writes 8 estimates at positions 0..7: 4 per bank, T = 4 <= 6,
  // no wait. Pass 2 reads positions 1 3 5 7, all in bank 1: T = 4 > B - P = 2: 2 cycles
  // of wait. Pass times 6 and 4; the buffer is busy 4 + 4 = 8.
  QkSetup s = setup(QkMode::latte, 8, 4096, 64, 1);
  s.qk.estimate_bits = 6;
  s.reuse.banks = 2;
  s.reuse.ports = 1;
  const std::vector<int16_t> keys{16, 80, 16, 80, 16, 80, 16, 80};
  QkRowCost c = model_rows(s, one_dim_layer(1, keys, 0))[0].qk;
  CHECK(c.busy == 8);
  CHECK(c.first_pass1 == 6);
  CHECK(c.last_pass2 == 4);
  CHECK(c.reuse_port_wait == 2);
  CHECK(c.reuse_busy == 8);
  // One bank: pass 1 needs T = 8 > 6 (2 of wait), pass 2 T = 4 (2 more); busy 8 + 4 = 12.
  s.reuse.banks = 1;
  c = model_rows(s, one_dim_layer(1, keys, 0))[0].qk;
  CHECK(c.first_pass1 == 8);
  CHECK(c.last_pass2 == 4);
  CHECK(c.reuse_port_wait == 4);
  CHECK(c.reuse_busy == 12);
  // Two ports on the one bank: T = 4 and 2, no wait; unlimited (absent) likewise.
  s.reuse.ports = 2;
  CHECK(model_rows(s, one_dim_layer(1, keys, 0))[0].qk.reuse_port_wait == 0);
  s.reuse.ports.reset();
  c = model_rows(s, one_dim_layer(1, keys, 0))[0].qk;
  CHECK(c.reuse_port_wait == 0);
  CHECK(c.first_pass1 == 6);
  CHECK(c.last_pass2 == 2);
}

TEST_CASE("reuse_buffer.ports under a query block: every row's entries compete for the banks") {
  // The keys of the previous case, two identical rows, Qb = 2, entries 4: segments
  // k = 0 (keys 0..3) and k = 1 (keys 4..7), each row keeping its two 80s (positions 1, 3
  // of the segment). Row r's entry p is r x 4 + p, bank (4r + p) mod 2 = p mod 2.
  // Pass 1 per segment: 4 keys x 2 rows = 8 writes, 4 per bank: T = 4 <= 6.
  // Pass 2 per segment: survivors {1, 3} of both rows: 4 reads, all in bank 1: T = 4 > 2,
  // 2 cycles of wait. Pass times 6, 4, 6, 4. Comparator: n_k = 8 keys -> 1 cycle + 1.
  // Schedule: first P1 6; s0: max(P1(s1) 6, 2) + 4 = 10; last compare 2, last P2 4.
  QkSetup s = setup(QkMode::latte, 8, 4, 64, 1);
  s.qk.estimate_bits = 6;
  s.qk.query_block = 2;
  s.reuse.banks = 2;
  s.reuse.ports = 1;
  const auto all = make_candidate_generator("all", json::object());
  const auto w = HeadModel(s, *all, nullptr, nullptr, 1).compute(one_dim_layer(2, {16, 80, 16, 80, 16, 80, 16, 80}, 0), 0);
  REQUIRE(w->blocks.size() == 1);
  const QkRowCost& b = w->blocks[0];
  CHECK(b.busy == 2 * (6 + 2));
  CHECK(b.first_pass1 == 6);
  CHECK(b.inner_advance == 10);
  CHECK(b.last_compare == 2);
  CHECK(b.last_pass2 == 4);
  CHECK(b.reuse_port_wait == 4);
  CHECK(b.reuse_busy == 4 + 4 + 4 + 4);
}

TEST_CASE("reuse_buffer.mapping skewed: the block's rows' entries for a key in different banks") {
  // The block of the previous case with bank (r + p) mod 2 instead of (4r + p) mod 2:
  // pass 1 still puts 4 writes in each bank (T = 4 <= 6); pass 2 reads row 0's survivors
  // (p = 1, 3) in bank 1 and row 1's in bank 0: 2 per bank, T = 2 = B - P, no wait.
  QkSetup s = setup(QkMode::latte, 8, 4, 64, 1);
  s.qk.estimate_bits = 6;
  s.qk.query_block = 2;
  s.reuse.banks = 2;
  s.reuse.ports = 1;
  s.reuse.mapping = ReuseMapping::skewed;
  const auto all = make_candidate_generator("all", json::object());
  const auto w = HeadModel(s, *all, nullptr, nullptr, 1).compute(one_dim_layer(2, {16, 80, 16, 80, 16, 80, 16, 80}, 0), 0);
  REQUIRE(w->blocks.size() == 1);
  CHECK(w->blocks[0].reuse_port_wait == 0);
  CHECK(w->blocks[0].last_pass2 == 2);
  CHECK(w->blocks[0].reuse_busy == 4 + 2 + 4 + 2);
  CHECK(s.reuse.bank(1, 3) == 0);
  s.reuse.mapping = ReuseMapping::linear;
  CHECK(s.reuse.bank(1, 3) == 1);  // (1 x 4 + 3) mod 2
}

TEST_CASE("sram.ports: the K buffer's banks and ports stretch a tile's lane-cycles") {
  // d = 1 (a plane is 1 bit: one access per key per lane-cycle), 2 banks (key j in bank j
  // mod 2), 1 port. Dense bit-serial, L = 4, keys 0..4 (estimates do not matter):
  //   tile {0,1,2,3}: 2 keys per bank -> each of the 8 planes takes 2 cycles: 16;
  //   tile {4}: 1 -> 8. 24 cycles against the §4 busy ceil(5/4) x 8 = 16: 8 of wait.
  QkSetup s = setup(QkMode::dense, 4, 4096, 64, 1);
  s.sram = SramParams{1024, 2, 128};
  s.sram.ports = 1;
  QkRowCost c = model_rows(s, one_dim_layer(1, {16, 32, 48, 64, 80}, 0))[0].qk;
  CHECK(c.busy == 16);
  CHECK(c.sram_port_wait == 8);
  CHECK(qk_row_timing(c, false, 0).advance == 24);
  // Bit-parallel, d = 10 at B = 8 is 80 bits: one 128-bit access per key per cycle:
  // tile {0..3}: 2 per bank, 2 cycles; tile {4}: 1. 3 against ceil(5/4) = 2. With
  // 64-bit words a key takes 2 accesses: 4 per bank in tile 0 (4 cycles), 2 in tile 1.
  s.qk.type = QkType::bit_parallel;
  c = model_rows(s, wide_layer(10, {16, 32, 48, 64, 80}, 0))[0].qk;
  CHECK(c.busy == 2);
  CHECK(c.sram_port_wait == 1);
  s.sram.width_bits = 64;
  CHECK(model_rows(s, wide_layer(10, {16, 32, 48, 64, 80}, 0))[0].qk.sram_port_wait == 4 + 2 - 2);
  // LATTE: the keys of the three-segment row of the first test case (L = 1: one key per
  // tile, never a conflict): no wait, whatever the ports.
  QkSetup latte = setup(QkMode::latte, 1, 2, 1, 3);
  latte.sram = SramParams{1024, 2, 128};
  latte.sram.ports = 1;
  CHECK(model_rows(latte, one_dim_layer(1, {16, 32, 48, 64, 80}, 0))[0].qk.sram_port_wait == 0);
  // LATTE with L = 2 on the keys 16 80 16 80 (P = 4, margin 0 keeps keys 1 and 3, both in
  // bank 1): pass 1 tiles {0,1}, {2,3} one key per bank: 4 + 4; pass 2 tile {1, 3}: both
  // in bank 1, each of its 4 planes takes 2 cycles: 8 against 4.
  latte = setup(QkMode::latte, 2, 4096, 64, 1);
  latte.sram = SramParams{1024, 2, 128};
  latte.sram.ports = 1;
  c = model_rows(latte, one_dim_layer(1, {16, 80, 16, 80}, 0))[0].qk;
  CHECK(c.busy == 8 + 4);
  CHECK(c.sram_port_wait == 4);
  CHECK(c.first_pass1 == 8);
  CHECK(c.last_pass2 == 8);
  // early_term lock-step, L = 2, keys {-80, 3} (theta 0, d = 1: 1 and 8 planes, the first
  // test's case) in banks 0 and 1: no conflict; the tile {-80, 3, ...} with 1 bank: plane 1
  // reads both keys (2 cycles), planes 2..8 only key 3: 2 + 7 = 9 against 8.
  QkSetup et = setup(QkMode::early_term, 2, 4096, 64, 1);
  et.sram = SramParams{1024, 1, 128};
  et.sram.ports = 1;
  c = model_rows(et, one_dim_layer(1, {-80, 3}, 0))[0].qk;
  CHECK(c.busy == 8);
  CHECK(c.sram_port_wait == 1);
}

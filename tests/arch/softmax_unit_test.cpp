// The softmax unit on rows whose survivor counts are set by hand. Its rule
// (arch/softmax_unit.h): a row of n survivors is busy ceil(n / elements_per_cycle) cycles
// (0 for n = 0), its probabilities are ready latency_cycles after the busy part, and the
// next row starts at once; time blocked on a full output FIFO is stall. Each TEST_CASE
// elaborates one design: ctest runs each in its own process.
#include "arch/kernel_time.h"
#include "arch/sc_threads.h"
#include "arch/softmax_unit.h"
#include "tests/support/rows.h"

#include <catch2/catch.hpp>

#include <systemc>

#include <vector>

using namespace attnsim;
using attnsim::test::Left;
using attnsim::test::StageHarness;

namespace {

using SoftmaxHarness = StageHarness<SoftmaxUnit>;

}  // namespace

TEST_CASE("softmax rows run back to back: ceil(n / 4) busy cycles each, ready 3 cycles later, an empty row costs nothing") {
  init_kernel_time();
  // 4 elements/cycle, latency 3; rows of 5, 0, 8 and 1 survivors, all ready at 0:
  //   row 0: ceil(5/4) = 2 cycles, [0, 2), ready 2 + 3 = 5;
  //   row 1: 0 survivors, 0 cycles at 2, ready 2 + 3 = 5, no reciprocal;
  //   row 2: ceil(8/4) = 2 cycles, [2, 4), ready 7;
  //   row 3: ceil(1/4) = 1 cycle, [4, 5), ready 8.
  // The sink never blocks, so each row leaves when its busy part ends.
  const auto head = test::hand_head(4, {5, 0, 8, 1});
  SoftmaxHarness h("h", {test::token(head, 0), test::token(head, 1), test::token(head, 2), test::token(head, 3)},
                   16, 0, SoftmaxParams{4, 3});
  run_kernel();
  CHECK(h.left == std::vector<Left>{{0, 0, 5, 2}, {0, 1, 5, 2}, {0, 2, 7, 4}, {0, 3, 8, 5}});
  const ModuleActivity a = h.unit.activity();
  CHECK(a.name == "softmax");
  CHECK(a.busy == 2 + 0 + 2 + 1);
  CHECK(a.stall == 0);
  // n summed over the rows: 5 + 0 + 8 + 1 = 14; one reciprocal per non-empty row: 3.
  CHECK(a.counter("max_compares") == 14);
  CHECK(a.counter("exps") == 14);
  CHECK(a.counter("sum_adds") == 14);
  CHECK(a.counter("normalizes") == 14);
  CHECK(a.counter("reciprocals") == 3);
  CHECK(a.counters.size() == 5);
}

TEST_CASE("a softmax row that arrives before its ready time waits for it, neither busy nor stalled") {
  init_kernel_time();
  // 4 elements/cycle, latency 3. All three rows are in the input FIFO at cycle 0:
  //   row 0 (8 survivors) ready at 10: the unit waits until 10, busy 2 -> 12, ready 15;
  //   row 1 (4 survivors) ready at 3, long past at 12: busy 1, [12, 13), ready 16;
  //   row 2 (4 survivors) ready at 20: the unit idles 13..20, busy 1 -> 21, ready 24.
  // Busy 2 + 1 + 1 = 4; the 10 + 7 cycles of waiting for rows count as neither.
  const auto head = test::hand_head(4, {8, 4, 4});
  SoftmaxHarness h("h", {test::token(head, 0, 10), test::token(head, 1, 3), test::token(head, 2, 20)}, 16, 0,
                   SoftmaxParams{4, 3});
  run_kernel();
  CHECK(h.left == std::vector<Left>{{0, 0, 15, 12}, {0, 1, 16, 13}, {0, 2, 24, 21}});
  CHECK(h.unit.activity().busy == 4);
  CHECK(h.unit.activity().stall == 0);
  CHECK(h.unit.activity().counter("reciprocals") == 3);
}

TEST_CASE("a one-deep output FIFO and a slow sink stall the softmax unit, and the stall is counted") {
  init_kernel_time();
  // 4 elements/cycle, latency 2; four rows of 4 survivors (1 busy cycle each). The output
  // FIFO holds one row; the sink takes a row, then rests 10 cycles.
  //   row 0: [0, 1), ready 3, into the FIFO at 1 and taken at once (sink rests to 11);
  //   row 1: [1, 2), ready 4, into the empty FIFO at 2;
  //   row 2: [2, 3), ready 5; the FIFO holds row 1 until the sink takes it at 11: stall 8;
  //   row 3: [11, 12), ready 14; the FIFO holds row 2 until 21: stall 9; taken at 31.
  // The ready time is set when the busy part ends: the stall does not move it.
  const auto head = test::hand_head(4, {4, 4, 4, 4});
  SoftmaxHarness h("h", {test::token(head, 0), test::token(head, 1), test::token(head, 2), test::token(head, 3)},
                   1, 10, SoftmaxParams{4, 2});
  run_kernel();
  CHECK(h.left == std::vector<Left>{{0, 0, 3, 1}, {0, 1, 4, 11}, {0, 2, 5, 21}, {0, 3, 14, 31}});
  CHECK(h.unit.activity().busy == 4);
  CHECK(h.unit.activity().stall == 8 + 9);
  CHECK(h.unit.activity().counter("exps") == 16);
  CHECK(h.unit.activity().counter("reciprocals") == 4);
}

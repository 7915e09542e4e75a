// The write-back on rows whose ready times are set by hand. Its rule (arch/writeback.h):
// when a row is ready its ceil(d * output_bits / 8) bytes are reserved on the DRAM channel
// (waiting behind other transfers is dram stall) and the write-back moves on when the
// channel has taken them; the write is posted and lands dram.latency_cycles after its
// transfer ends. After the last row of a layer's last head it waits until the layer's
// writes have landed, then counts the layer in the LayerBarrier and notifies. Rows reach
// the RowSink in order. Each TEST_CASE elaborates one design: ctest runs each in its own
// process.
#include "arch/dma.h"
#include "arch/dram.h"
#include "arch/kernel_time.h"
#include "arch/sc_threads.h"
#include "arch/writeback.h"
#include "tests/support/rows.h"

#include <catch2/catch.hpp>

#include <systemc>

#include <utility>
#include <vector>

using namespace attnsim;

namespace {

// d = 3 and 12-bit outputs: ceil(3 * 12 / 8) = 5 bytes a row; at 2 bytes/cycle a row holds
// the channel ceil(5/2) = 3 cycles; its data lands 10 cycles later.
constexpr int kD = 3, kOutputBits = 12;
const DramParams kDram{2, 10, 2048};

// A row as the sink received it, and the cycle.
struct Done {
  int layer, head, row;
  uint64_t at;
  bool operator==(const Done& o) const { return layer == o.layer && head == o.head && row == o.row && at == o.at; }
};
std::ostream& operator<<(std::ostream& os, const Done& d) {
  return os << "{L" << d.layer << " h" << d.head << " row " << d.row << " at " << d.at << "}";
}

struct RecordingSink : RowSink {
  std::vector<Done> rows;
  void row_done(const HeadWork& head, int row) override {
    rows.push_back({head.layer_index(), head.head, row, now_cycles().count()});
  }
};

// Another unit's transfer on the channel: requested at `at`, `bytes` long.
struct OtherTransfer {
  uint64_t at, bytes;
};

// Feeds `tokens` to a write-back at cycle 0; other transfers are reserved on the channel
// at their cycles; a watcher records (completed, cycle) at each barrier notification.
struct WritebackHarness : sc_core::sc_module {
  sc_core::sc_fifo<RowToken> rows_fifo;
  DramChannel dram{kDram};
  LayerBarrier barrier;
  RecordingSink sink;
  Writeback writeback;
  std::vector<RowToken> tokens;
  std::vector<OtherTransfer> others;
  std::vector<DramChannel::Transfer> other_done;
  std::vector<std::pair<int, uint64_t>> advanced;

  WritebackHarness(sc_core::sc_module_name name, std::vector<RowToken> t, std::vector<OtherTransfer> o = {})
      : sc_module(name),
        rows_fifo("rows", 16),
        writeback("writeback", kOutputBits, dram, barrier, sink),
        tokens(std::move(t)),
        others(std::move(o)) {
    writeback.row_in(rows_fifo);
    SC_HAS_PROCESS(WritebackHarness);
    SC_THREAD(source);
    SC_THREAD(other_unit);
    SC_THREAD(watcher);
  }
  void source() {
    for (const RowToken& t : tokens) rows_fifo.write(t);
  }
  void other_unit() {
    for (const OtherTransfer& o : others) {
      wait_until(Cycles(o.at));
      other_done.push_back(dram.reserve(now_cycles(), o.bytes));
    }
  }
  void watcher() {
    while (true) {
      sc_core::wait(barrier.advanced);
      advanced.emplace_back(barrier.completed, now_cycles().count());
    }
  }
};

using Advance = std::vector<std::pair<int, uint64_t>>;

}  // namespace

TEST_CASE("rows are written in order as they become ready, posted, and the layer completes when its last write lands") {
  init_kernel_time();
  // Layer 0, two heads of two rows, ready at 5, 6 (head 0) and 20, 21 (head 1):
  //   h0 row 0: [5, 8), lands 18; the write-back moves on at 8 without waiting for it;
  //   h0 row 1: ready 6, taken at 8: [8, 11), lands 21;
  //   h1 row 0: ready 20: [20, 23), lands 33;
  //   h1 row 1: ready 21, taken at 23: [23, 26), lands 36 - the layer's last row: the
  //   barrier counts the layer at 36.
  // The channel is never taken by anyone else: no stall.
  const auto layer = test::shape_only_layer(0, 2, 2, kD);
  const auto h0 = test::hand_head(layer, 0, {1, 1});
  const auto h1 = test::hand_head(layer, 1, {1, 1});
  WritebackHarness h("h", {test::token(h0, 0, 5), test::token(h0, 1, 6), test::token(h1, 0, 20), test::token(h1, 1, 21)});
  run_kernel();
  CHECK(h.sink.rows == std::vector<Done>{{0, 0, 0, 8}, {0, 0, 1, 11}, {0, 1, 0, 23}, {0, 1, 1, 26}});
  CHECK(h.advanced == Advance{{1, 36}});
  CHECK(h.barrier.completed == 1);
  const ModuleActivity d = h.dram.activity();
  CHECK(d.busy == 4 * 3);
  CHECK(d.stall == 0);
  CHECK(d.counter("write_bits") == 4 * 5 * 8);
  CHECK(d.counter("read_bits") == 0);
}

TEST_CASE("a row that finds another transfer on the DRAM channel waits behind it, and the wait is dram stall") {
  init_kernel_time();
  // Another unit takes the channel at 0 for 20 bytes: [0, 10). At 12 it asks for 4 more
  // bytes (2 cycles). One head of two rows, ready at 4 and 14:
  //   row 0: requested at 4, starts when the channel frees at 10: stall 6, [10, 13), lands 23;
  //   the other transfer of 12: [13, 15);
  //   row 1: requested at 14, behind it until 15: stall 1, [15, 18), lands 28: the layer
  //   completes at 28.
  const auto head = test::hand_head(kD, {1, 1});
  WritebackHarness h("h", {test::token(head, 0, 4), test::token(head, 1, 14)}, {{0, 20}, {12, 4}});
  run_kernel();
  REQUIRE(h.other_done.size() == 2);
  CHECK(h.other_done[0].start == Cycles(0));
  CHECK(h.other_done[0].end == Cycles(10));
  CHECK(h.other_done[1].start == Cycles(13));
  CHECK(h.other_done[1].end == Cycles(15));
  CHECK(h.sink.rows == std::vector<Done>{{0, 0, 0, 13}, {0, 0, 1, 18}});
  CHECK(h.advanced == Advance{{1, 28}});
  const ModuleActivity d = h.dram.activity();
  CHECK(d.busy == 10 + 3 + 2 + 3);
  CHECK(d.stall == 6 + 1);
  CHECK(d.counter("write_bits") == 2 * 5 * 8);  // the other unit's bytes are its own to count
}

TEST_CASE("the write-back takes no row of the next layer until the previous layer's writes have landed") {
  init_kernel_time();
  // Layers 0 and 1 of one head and one row each, ready at 0 and 2:
  //   layer 0 row: [0, 3), lands 13; the last row of the layer: the write-back waits until
  //   13 and counts layer 0 then;
  //   layer 1 row: ready 2, taken at 13: [13, 16), lands 26: layer 1 counted at 26.
  const auto l0 = test::hand_head(test::shape_only_layer(0, 1, 1, kD), 0, {1});
  const auto l1 = test::hand_head(test::shape_only_layer(1, 1, 1, kD), 0, {1});
  WritebackHarness h("h", {test::token(l0, 0, 0), test::token(l1, 0, 2)});
  run_kernel();
  CHECK(h.sink.rows == std::vector<Done>{{0, 0, 0, 3}, {1, 0, 0, 16}});
  CHECK(h.advanced == Advance{{1, 13}, {2, 26}});
  CHECK(h.dram.activity().busy == 6);
  CHECK(h.dram.activity().stall == 0);
}

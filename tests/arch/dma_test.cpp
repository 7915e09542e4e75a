// The DMA and the DRAM channel on a tiny layer whose Q, K and V are set by hand. The rule
// (arch/dma.h, arch/dram.h): a head is ceil((N + 2M) * d * B / 8) bytes, loaded in bursts
// of dram.burst_bytes, each reserved on the channel in turn (a burst of b bytes holds it
// ceil(b / bytes_per_cycle) cycles from max(request, free)); the head is ready
// dram.latency_cycles after its last burst ends. Waiting for a free SRAM slot or on a
// full head queue is dram stall; dram busy is the transfer cycles. The head model computes
// every row of the head when its slot is taken. Each TEST_CASE elaborates one design:
// ctest runs each in its own process.
#include "arch/candidates.h"
#include "arch/dma.h"
#include "arch/dram.h"
#include "arch/head_model.h"
#include "arch/kernel_time.h"
#include "arch/sc_threads.h"
#include "arch/sram.h"
#include "tests/support/head_fixtures.h"

#include <catch2/catch.hpp>

#include <systemc>

#include <memory>
#include <vector>

using namespace attnsim;

namespace {

// B = 5 bits a value: N = 3 queries, M = 2 keys, d = 3, so a head is
// (3 + 2*2) * 3 * 5 = 105 bits = ceil(105 / 8) = 14 bytes.
constexpr int kBits = 5;

// DRAM 4 bytes/cycle, latency 10, bursts of 6 bytes: the 14-byte head goes as 6 + 6 + 2
// bytes = 2 + 2 + 1 cycles. SRAM words of 32 bits in 2 banks.
const DramParams kDram{4, 10, 6};
const SramParams kSram{1, 2, 32};

// A head as the sink received it.
struct Received {
  int head;
  bool last;
  uint64_t at;
  bool operator==(const Received& o) const { return head == o.head && last == o.last && at == o.at; }
};
std::ostream& operator<<(std::ostream& os, const Received& r) {
  return os << "{head " << r.head << (r.last ? " last" : "") << " at " << r.at << "}";
}

// Hands one layer to a DMA at cycle 0. `slots` SRAM slots are free at the start; the
// test's `post_at` cycles free one more each. The head queue holds `queue_depth` heads;
// the sink starts taking heads at `sink_start` and rests `sink_gap` cycles after each.
// When `other_bytes` > 0, another unit reserves that many bytes on the channel at
// `other_at` (as the write-back would).
struct DmaHarness : sc_core::sc_module {
  sc_core::sc_fifo<std::shared_ptr<const LayerContext>> layers_fifo;
  sc_core::sc_fifo<std::shared_ptr<HeadWork>> heads_fifo;
  DramChannel dram{kDram};
  SramBuffers sram{kSram};
  sc_core::sc_semaphore slots;
  std::unique_ptr<CandidateGenerator> all = make_candidate_generator("all", json::object());
  // Dense bit-parallel scoring on L = 2 lanes: every row keeps both keys, ceil(2/2) = 1 cycle.
  HeadModel model{test::dense_qk_setup(kBits), *all, nullptr, nullptr, 1};
  Dma dma;

  std::shared_ptr<const LayerContext> layer;
  std::vector<uint64_t> post_at;
  uint64_t sink_start = 0, sink_gap = 0;
  uint64_t other_at = 0, other_bytes = 0;

  // pipeline.overlap_gemm: when `projected_at` is set, the DMA waits at the gate and the
  // test marks head i of layer 0 projected at cycle projected_at[i].
  ProjectionGate gate;
  std::vector<uint64_t> projected_at;

  std::vector<Received> received;
  std::vector<std::shared_ptr<HeadWork>> heads;
  DramChannel::Transfer other{};

  DmaHarness(sc_core::sc_module_name name, std::shared_ptr<const LayerContext> l, int free_slots, int queue_depth)
      : sc_module(name),
        layers_fifo("layers", 2),
        heads_fifo("heads", queue_depth),
        slots(free_slots),
        dma("dma", kBits, dram, sram, slots, model),
        layer(std::move(l)) {
    dma.layer_in(layers_fifo);
    dma.head_out(heads_fifo);
    SC_HAS_PROCESS(DmaHarness);
    SC_THREAD(source);
    SC_THREAD(sink);
    SC_THREAD(poster);
    SC_THREAD(other_unit);
    SC_THREAD(projector);
  }
  void projector() {
    if (projected_at.empty()) return;
    gate.layer = 0;
    for (uint64_t t : projected_at) {
      wait_until(Cycles(t));
      ++gate.projected;
      gate.advanced.notify(sc_core::SC_ZERO_TIME);
    }
  }
  void source() { layers_fifo.write(layer); }
  void sink() {
    wait_until(Cycles(sink_start));
    while (true) {
      std::shared_ptr<HeadWork> w = heads_fifo.read();
      received.push_back({w->head, w->last_head_of_layer, now_cycles().count()});
      heads.push_back(w);
      wait_cycles(Cycles(sink_gap));
    }
  }
  void poster() {
    for (uint64_t t : post_at) {
      wait_until(Cycles(t));
      slots.post();
    }
  }
  void other_unit() {
    if (other_bytes == 0) return;
    wait_until(Cycles(other_at));
    other = dram.reserve(now_cycles(), other_bytes);
  }
};

}  // namespace

TEST_CASE("a head of 14 bytes loads as bursts of 6, 6 and 2 bytes and is ready 10 cycles after the last") {
  init_kernel_time();
  // Bursts [0, 2), [2, 4), [4, 5): ceil(6/4) = 2, 2 and ceil(2/4) = 1 cycles, one after
  // another; the head is in SRAM at 5 + 10 = 15 and enters the head queue then.
  DmaHarness h("h", test::tiny_layer(1), 1, 4);
  run_kernel();
  CHECK(h.received == std::vector<Received>{{0, true, 15}});
  const ModuleActivity d = h.dram.activity();
  CHECK(d.busy == 2 + 2 + 1);
  CHECK(d.stall == 0);
  CHECK(d.counter("read_bits") == 14 * 8);
  CHECK(d.counter("write_bits") == 0);
  // The SRAM takes the head's 105 bits: ceil(105 / 32) = 4 words, ceil(4 / 2) = 2 port cycles.
  CHECK(h.sram.activity().counter("write_words") == 4);
  CHECK(h.sram.activity().busy == 2);
  // The head model ran on the loaded head: dense scoring keeps both keys of every row,
  // ceil(2 keys / 2 lanes) = 1 QK cycle a row.
  REQUIRE(h.heads.size() == 1);
  REQUIRE(h.heads[0]->rows.size() == 3);
  for (const RowOutcome& r : h.heads[0]->rows) {
    CHECK(r.candidates == 2);
    CHECK(r.survivors == 2);
    CHECK(r.qk.busy == 1);
  }
}

TEST_CASE("with one SRAM slot the second head waits until the slot is freed, and the wait is dram stall") {
  init_kernel_time();
  // Head 0 takes the only slot at 0: bursts [0, 5), in the queue at 15. Head 1 asks for a
  // slot at 15; the test frees it at 40: 40 - 15 = 25 cycles of stall. Its bursts run
  // [40, 42), [42, 44), [44, 45): in the queue at 55, the last head of the layer.
  DmaHarness h("h", test::tiny_layer(2), 1, 4);
  h.post_at = {40};
  run_kernel();
  CHECK(h.received == std::vector<Received>{{0, false, 15}, {1, true, 55}});
  const ModuleActivity d = h.dram.activity();
  CHECK(d.busy == 2 * 5);
  CHECK(d.stall == 25);
  CHECK(d.counter("read_bits") == 2 * 14 * 8);
  CHECK(h.sram.activity().counter("write_words") == 2 * 4);
  CHECK(h.slots.get_value() == 0);
}

TEST_CASE("a full head queue holds the DMA until the next unit takes a head, and the wait is dram stall") {
  init_kernel_time();
  // Two free slots, a head queue of one, a consumer that starts at 50 and rests 5 cycles
  // after each head. Head 0: [0, 5), in the queue at 15. Head 1: [15, 17), [17, 19),
  // [19, 20), ready at 30, but the queue holds head 0 until the consumer takes it at 50:
  // 50 - 30 = 20 cycles of stall. The consumer takes head 1 at 55.
  DmaHarness h("h", test::tiny_layer(2), 2, 1);
  h.sink_start = 50;
  h.sink_gap = 5;
  run_kernel();
  CHECK(h.received == std::vector<Received>{{0, false, 50}, {1, true, 55}});
  CHECK(h.dram.activity().busy == 10);
  CHECK(h.dram.activity().stall == 20);
}

TEST_CASE("a transfer reserved between two bursts of a head delays the rest of the head, without dram stall") {
  init_kernel_time();
  // Burst 0 holds the channel [0, 2). At 1 another unit reserves 8 bytes: they start when
  // the channel is free, [2, 4). The DMA reserves burst 1 at 2, behind them: [4, 6);
  // burst 2 [6, 7); the head is ready at 7 + 10 = 17. Busy is every transfer,
  // 2 + 2 + 2 + 1 = 7; the DMA's wait for the channel is not stall (only slot and queue
  // waits are).
  DmaHarness h("h", test::tiny_layer(1), 1, 4);
  h.other_at = 1;
  h.other_bytes = 8;
  run_kernel();
  CHECK(h.other.start == Cycles(2));
  CHECK(h.other.end == Cycles(4));
  CHECK(h.received == std::vector<Received>{{0, true, 17}});
  CHECK(h.dram.activity().busy == 7);
  CHECK(h.dram.activity().stall == 0);
}

TEST_CASE("with a projection gate the DMA starts a head only once its projection is done, and the wait is not stall") {
  init_kernel_time();
  // Head 0 is projected at 20: bursts [20, 22), [22, 24), [24, 25), in the queue at 35.
  // Head 1 at 40 (a slot has been free all along): [40, 45), in the queue at 55. Waiting
  // for the projection is idle, not dram stall.
  DmaHarness h("h", test::tiny_layer(2), 2, 4);
  h.projected_at = {20, 40};
  h.dma.set_projection_gate(&h.gate);
  run_kernel();
  CHECK(h.received == std::vector<Received>{{0, false, 35}, {1, true, 55}});
  CHECK(h.dram.activity().busy == 10);
  CHECK(h.dram.activity().stall == 0);
}

TEST_CASE("a head already projected when the DMA reaches it loads at once") {
  init_kernel_time();
  // Head 0 is projected at 2: [2, 7), in the queue at 17. Head 1, projected at 3, is
  // ready when the DMA comes to it at 17: [17, 22), in the queue at 32.
  DmaHarness h("h", test::tiny_layer(2), 2, 4);
  h.projected_at = {2, 3};
  h.dma.set_projection_gate(&h.gate);
  run_kernel();
  CHECK(h.received == std::vector<Received>{{0, false, 17}, {1, true, 32}});
}

TEST_CASE("sram.ports: the DMA's burst writes into its slot's banks") {
  // 4 banks, 2 slots: 2 banks per slot; 1 port; 128-bit words. A head of n = 2, m = 2,
  // d = 16, B = 8: rows of 128 bits (one word each): Q0 Q1 K0 K1 V0 V1 = 96 bytes.
  // Q row r, K row j and V row j are in bank r (j) mod 2.
  SramParams p{1, 4, 128};
  p.ports = 1;
  const SramBuffers sram(p);
  CHECK(sram.slot_banks(2) == 2);
  // The whole head in one burst: bank 0 gets Q0 K0 V0, bank 1 Q1 K1 V1: 3 cycles.
  CHECK(sram.fill_write_cycles(0, 96, 2, 2, 16, 8, 2) == 3);
  // Bursts of 32 bytes (two rows each): Q0 Q1 | K0 K1 | V0 V1: one word per bank, 1 cycle each.
  CHECK(sram.fill_write_cycles(0, 32, 2, 2, 16, 8, 2) == 1);
  CHECK(sram.fill_write_cycles(32, 32, 2, 2, 16, 8, 2) == 1);
  // One slot of 4 banks: rows 0 of Q, K and V are still all in bank 0: 3 cycles.
  CHECK(sram.fill_write_cycles(0, 96, 2, 2, 16, 8, 1) == 3);
  // 2 ports: ceil(3 / 2) = 2. 64-bit words: 2 words a row, 6 in bank 0, 1 port: 6.
  SramParams two = p;
  two.ports = 2;
  CHECK(SramBuffers(two).fill_write_cycles(0, 96, 2, 2, 16, 8, 2) == 2);
  SramParams narrow = p;
  narrow.width_bits = 64;
  CHECK(SramBuffers(narrow).fill_write_cycles(0, 96, 2, 2, 16, 8, 2) == 6);
  // Bytes past V (mechanism parameters) go to the units' buffers: the 1-cycle minimum only.
  // No ports: not modelled (0).
  CHECK(sram.fill_write_cycles(96, 64, 2, 2, 16, 8, 2) == 1);
  SramParams none = p;
  none.ports.reset();
  CHECK(SramBuffers(none).fill_write_cycles(0, 96, 2, 2, 16, 8, 2) == 0);
}

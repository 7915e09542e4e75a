// The AV unit on rows whose survivor counts are set by hand. Its rule (arch/av_unit.h): a
// row of n survivors is busy ceil(n*d / macs_per_cycle) cycles, its output is ready
// latency_cycles later, it reads n*d*B bits of V from the SRAM buffers (arch/sram.h:
// ceil(bits / width_bits) words per access), and the end of a head's last row frees the
// head's SRAM slot. Each TEST_CASE elaborates one design: ctest runs each in its own process.
#include "arch/av_unit.h"
#include "arch/kernel_time.h"
#include "arch/sc_threads.h"
#include "arch/sram.h"
#include "tests/support/rows.h"

#include <catch2/catch.hpp>

#include <systemc>

#include <vector>

using namespace attnsim;
using attnsim::test::Left;

namespace {

using AvHarness = test::StageHarness<AvUnit>;

// Takes `count` SRAM slots as the DMA would, recording the cycle each one is freed.
struct SlotWatcher : sc_core::sc_module {
  sc_core::sc_semaphore& slots;
  int count;
  std::vector<uint64_t> freed;
  SlotWatcher(sc_core::sc_module_name name, sc_core::sc_semaphore& s, int n) : sc_module(name), slots(s), count(n) {
    SC_HAS_PROCESS(SlotWatcher);
    SC_THREAD(run);
  }
  void run() {
    for (int i = 0; i < count; ++i) {
      slots.wait();
      freed.push_back(now_cycles().count());
    }
  }
};

}  // namespace

TEST_CASE("AV rows are busy ceil(n*d / macs_per_cycle) cycles and read n*d*B bits of V from the SRAM") {
  init_kernel_time();
  // d = 3, 4 MACs/cycle, latency 2, B = 8; SRAM words of 16 bits in 2 banks.
  // Rows of 5, 0 and 2 survivors, all ready at 0:
  //   row 0: 5*3 = 15 MACs, ceil(15/4) = 4 cycles, [0, 4), ready 6; V: 15*8 = 120 bits = 8 words;
  //   row 1: no survivor: 0 MACs, 0 cycles at 4, ready 6; no V read;
  //   row 2: 2*3 = 6 MACs, ceil(6/4) = 2 cycles, [4, 6), ready 8; V: 48 bits = 3 words.
  // SRAM busy: ceil(8/2) + ceil(3/2) = 4 + 2 = 6 port cycles. Row 2 (= n - 1) ends the
  // head: its slot is posted once, at 6.
  SramBuffers sram(SramParams{1, 2, 16});
  sc_core::sc_semaphore slots(0);
  const auto head = test::hand_head(3, {5, 0, 2});
  AvHarness h("h", {test::token(head, 0), test::token(head, 1), test::token(head, 2)}, 16, 0,
              AvUnitParams{4, 2, 16}, 8, sram, slots);
  run_kernel();
  CHECK(h.left == std::vector<Left>{{0, 0, 6, 4}, {0, 1, 6, 4}, {0, 2, 8, 6}});
  const ModuleActivity a = h.unit.activity();
  CHECK(a.name == "av_unit");
  CHECK(a.busy == 4 + 0 + 2);
  CHECK(a.stall == 0);
  CHECK(a.counter("macs") == 15 + 0 + 6);
  const ModuleActivity s = sram.activity();
  CHECK(s.counter("read_words") == 8 + 3);
  CHECK(s.counter("write_words") == 0);
  CHECK(s.busy == 6);
  CHECK(slots.get_value() == 1);
}

TEST_CASE("the AV unit frees a head's SRAM slot when the head's last row finishes, not before") {
  init_kernel_time();
  // d = 2, 4 MACs/cycle, latency 5; two heads of n = 3 rows, no free slot at the start.
  //   head 0, 4 survivors a row: 8 MACs = 2 cycles each: rows end at 2, 4, 6;
  //   head 1, 1, 2 and 6 survivors: 2, 4, 12 MACs = 1, 1, 3 cycles: rows end at 7, 8, 11.
  // A slot is posted when row 2 of a head ends its busy part: at 6 and at 11 - not when
  // rows 0 and 1 end, and not when the last output is ready (6 + 5, 11 + 5).
  SramBuffers sram(SramParams{1, 2, 16});
  sc_core::sc_semaphore slots(0);
  const auto layer = test::shape_only_layer(0, 2, 3, 2);
  const auto h0 = test::hand_head(layer, 0, {4, 4, 4});
  const auto h1 = test::hand_head(layer, 1, {1, 2, 6});
  AvHarness h("h",
              {test::token(h0, 0), test::token(h0, 1), test::token(h0, 2), test::token(h1, 0), test::token(h1, 1),
               test::token(h1, 2)},
              16, 0, AvUnitParams{4, 5, 16}, 8, sram, slots);
  SlotWatcher watcher("watcher", slots, 2);
  run_kernel();
  CHECK(watcher.freed == std::vector<uint64_t>{6, 11});
  CHECK(h.left == std::vector<Left>{{0, 0, 7, 2}, {0, 1, 9, 4}, {0, 2, 11, 6},
                                    {1, 0, 12, 7}, {1, 1, 13, 8}, {1, 2, 16, 11}});
  CHECK(h.unit.activity().busy == 6 + 5);
  CHECK(h.unit.activity().counter("macs") == 3 * 8 + 2 + 4 + 12);
  CHECK(slots.get_value() == 0);
}

TEST_CASE("av_read_cycles: V rows read through the SRAM's banks and ports") {
  // 4 banks, 1 port, 128-bit words; d = 16, B = 8: a row is 128 bits, one access.
  // 64 MACs per cycle: g = 4 rows per read cycle. Survivors 0 1 2 3 | 4 8 12 | : the first
  // group one row per bank (1 cycle), the second all in bank 0 (3 cycles): 4.
  SramParams sram{1024, 4, 128};
  sram.ports = 1;
  const std::vector<int32_t> ids{0, 1, 2, 3, 4, 8, 12};
  CHECK(av_read_cycles(sram, 64, 16, 8, ids.data(), ids.size()) == 1 + 3);
  // 2 ports: ceil(3/2) = 2 for the second group.
  sram.ports = 2;
  CHECK(av_read_cycles(sram, 64, 16, 8, ids.data(), ids.size()) == 1 + 2);
  // 64-bit words: 2 accesses a row; 1 port: 2 and 6.
  sram.ports = 1;
  sram.width_bits = 64;
  CHECK(av_read_cycles(sram, 64, 16, 8, ids.data(), ids.size()) == 2 + 6);
  // d = 128 > 64 MACs: a row at a time in 2 read cycles of ceil(64 x 8 / 64) = 8 accesses
  // of its bank each: 7 rows x 2 x 8 = 112.
  CHECK(av_read_cycles(sram, 64, 128, 8, ids.data(), ids.size()) == 7 * 2 * 8);
  // No ports: not modelled.
  sram.ports.reset();
  CHECK(av_read_cycles(sram, 64, 16, 8, ids.data(), ids.size()) == 0);
}

TEST_CASE("sram.mapping striped: a row's words spread over consecutive banks") {
  // 8 banks, 1 port, 64-bit words; d = 16, B = 8: a row is 2 words. 64 MACs per cycle:
  // groups of 4 rows. Rows 0 1 2 3: "row" puts 2 words in each of banks 0..3 (2 cycles);
  // "striped" puts row r's words in banks 2r, 2r + 1: one each (1 cycle).
  SramParams sram{1024, 8, 64};
  sram.ports = 1;
  const std::vector<int32_t> ids{0, 1, 2, 3};
  CHECK(av_read_cycles(sram, 64, 16, 8, ids.data(), ids.size()) == 2);
  sram.mapping = SramMapping::striped;
  CHECK(av_read_cycles(sram, 64, 16, 8, ids.data(), ids.size()) == 1);
  // Rows 0 and 4 striped: banks 0, 1 and 8 mod 8 = 0, 9 mod 8 = 1: 2 per bank, 2 cycles.
  const std::vector<int32_t> clash{0, 4};
  CHECK(av_read_cycles(sram, 64, 16, 8, clash.data(), clash.size()) == 2);
  // The DMA's fill of Q0 Q1 K0 K1 V0 V1 (n = m = 2) into one slot of 8 banks: row mapping
  // puts Q0 K0 V0 (6 words) in bank 0: 6 cycles; striped puts rows 0 in banks 0, 1 and rows
  // 1 in banks 2, 3: 3 words each, 3 cycles.
  SramParams row = sram;
  row.mapping = SramMapping::row;
  CHECK(SramBuffers(row).fill_write_cycles(0, 96, 2, 2, 16, 8, 1) == 6);
  CHECK(SramBuffers(sram).fill_write_cycles(0, 96, 2, 2, 16, 8, 1) == 3);
}

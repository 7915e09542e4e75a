#pragma once
// Hand-made rows for the tests of the units a RowToken goes through (softmax, AV unit,
// write-back): a head whose rows have the survivor counts a test chooses, tokens with a
// `ready` time, and a harness that feeds tokens to a Stage<RowToken> and records when
// its output leaves.
#include "arch/kernel_time.h"
#include "arch/pipeline.h"
#include "core/cycles.h"

#include <systemc>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace attnsim::test {

// The cycle an sc_time stands for (one cycle is one ns, arch/kernel_time.h).
inline uint64_t cycles_of(const sc_core::sc_time& t) {
  return static_cast<uint64_t>(t.value() / sc_core::sc_time(1, sc_core::SC_NS).value());
}

// A layer of `heads` heads of n = survivors.size() rows each (M = n), head dimension d,
// no data: only the shape the timed units read.
inline std::shared_ptr<LayerContext> shape_only_layer(int index, int heads, int n, int d) {
  auto ctx = std::make_shared<LayerContext>();
  ctx->view.index = index;
  ctx->view.heads = heads, ctx->view.n = n, ctx->view.m = n, ctx->view.d = d;
  return ctx;
}

// Head `head` of `layer`, whose row i has survivors[i] survivors.
inline std::shared_ptr<HeadWork> hand_head(std::shared_ptr<const LayerContext> layer, int head,
                                           const std::vector<uint32_t>& survivors) {
  auto w = std::make_shared<HeadWork>();
  w->layer = std::move(layer);
  w->head = head;
  w->last_head_of_layer = head == w->layer->view.heads - 1;
  for (uint32_t s : survivors) {
    RowOutcome o;
    o.candidates = s;
    o.survivors = o.value_rows = s;  // V rows read from the SRAM: the survivors'
    w->rows.push_back(o);
  }
  return w;
}

// The one head of a one-head layer 0 of d = `d`.
inline std::shared_ptr<HeadWork> hand_head(int d, const std::vector<uint32_t>& survivors) {
  return hand_head(shape_only_layer(0, 1, static_cast<int>(survivors.size()), d), 0, survivors);
}

inline RowToken token(std::shared_ptr<HeadWork> head, int row, uint64_t ready = 0) {
  return RowToken{std::move(head), row, to_sc_time(Cycles(ready))};
}

// A row as it left a unit: its head and row, the `ready` the unit gave it, and the cycle
// the sink took it.
struct Left {
  int head, row;
  uint64_t ready, at;
  bool operator==(const Left& o) const { return head == o.head && row == o.row && ready == o.ready && at == o.at; }
};
inline std::ostream& operator<<(std::ostream& os, const Left& l) {
  return os << "{head " << l.head << " row " << l.row << " ready " << l.ready << " at " << l.at << "}";
}

// Writes `tokens` at cycle 0 into the unit's input FIFO (deep enough for all of them); a
// sink takes each output, records it, and then rests `sink_gap` cycles. `Unit` is built
// from the trailing constructor arguments (after its name).
template <class Unit>
struct StageHarness : sc_core::sc_module {
  sc_core::sc_fifo<RowToken> in_fifo;
  sc_core::sc_fifo<RowToken> out_fifo;
  Unit unit;
  std::vector<RowToken> tokens;
  uint64_t sink_gap;
  std::vector<Left> left;

  template <class... Args>
  StageHarness(sc_core::sc_module_name name, std::vector<RowToken> t, int out_depth, uint64_t gap, Args&&... args)
      : sc_module(name),
        in_fifo("in", 16),
        out_fifo("out", out_depth),
        unit("unit", std::forward<Args>(args)...),
        tokens(std::move(t)),
        sink_gap(gap) {
    unit.in(in_fifo);
    unit.out(out_fifo);
    SC_HAS_PROCESS(StageHarness);
    SC_THREAD(source);
    SC_THREAD(sink);
  }
  void source() {
    for (const RowToken& t : tokens) in_fifo.write(t);
  }
  void sink() {
    while (true) {
      const RowToken t = out_fifo.read();
      left.push_back({t.head->head, t.row, cycles_of(t.ready), now_cycles().count()});
      wait_cycles(Cycles(sink_gap));
    }
  }
};

}  // namespace attnsim::test

#pragma once
// Seeing inside one run: the activity recorder behind `attnsim run --vcd` and `--timeline`
// (docs/tracing.md).
//
// Units that hold a recorder pointer (null when tracing is off: one pointer check per row)
// report what they do at the points where they already measure time:
//  - interval(unit, state, begin, end, ...): a span they know in advance (a row's busy
//    cycles, a DRAM transfer reserved on the channel), begin >= now;
//  - open(unit, state, ...) / close(unit): a span whose end they learn when it happens
//    (blocked on a full output FIFO, waiting for a free SRAM slot).
// Only work of the chosen window (layers x heads) is reported; GEMM and skim jobs belong
// to a layer only. FIFO levels are sampled from the channels themselves (num_available()
// after each update) while a head of the window is in the pipeline.
//
// Two outputs:
//  - VCD through SystemC's own tracing: one integer per unit (0 idle, 1 busy, 2 stall)
//    and one per FIFO (rows or heads held), updated in kernel time; 1 ns = 1 cycle.
//  - Chrome trace-event JSON (Perfetto, chrome://tracing): one "X" slice per span, one
//    "C" counter sample per FIFO level change; ts = cycles / 1000 so that the viewer's
//    1 ns is one cycle, like the VCD.
// Outside the window every signal reads 0. Both files are written atomically.
#include "core/cycles.h"

#include <systemc>

#include <climits>
#include <cstdint>
#include <functional>
#include <queue>
#include <string>
#include <vector>

namespace attnsim {

// An inclusive range of layer or head indices.
struct TraceRange {
  int first = 0;
  int last = INT_MAX;
  bool contains(int i) const { return i >= first && i <= last; }
  std::string text() const;  // "0:3", "2", "4:", "all"
};

// Parses "A:B" (inclusive), "A", "A:" (A to the end), ":B" or "all". Throws
// std::invalid_argument with a one-line message naming `flag`.
TraceRange parse_trace_range(const std::string& text, const std::string& flag);

struct TraceOptions {
  std::string vcd_path;       // empty: no VCD
  std::string timeline_path;  // empty: no timeline
  TraceRange layers{0, 0};    // default: the first layer
  TraceRange heads{};         // default: every head
  bool enabled() const { return !vcd_path.empty() || !timeline_path.empty(); }
};

// candidate_unit: the hardware of a candidate generator other than the tree engine and the
// LSH unit (arch/candidates.h).
enum class TraceUnit : int {
  dma, dram, qk_unit, softmax, av_unit, writeback, gemm_engine, skim_controller, candidate_unit,
  tree_engine, lsh_unit, lowrank_unit
};
inline constexpr int kTraceUnits = 12;
const char* trace_unit_name(TraceUnit u);

enum class TraceFifo : int { heads, scored, normalized, outputs };
inline constexpr int kTraceFifos = 4;
const char* trace_fifo_name(TraceFifo f);

// Values of a unit's VCD signal.
enum UnitState : int { kIdle = 0, kBusy = 1, kStall = 2 };

// What a span belongs to; -1 where it does not apply.
struct TraceTag {
  int layer = -1, head = -1, row = -1;
};

// The layer of a GEMM job named "L<l>.<step>", or -1.
int gemm_job_layer(const std::string& name);

class ActivityRecorder : public sc_core::sc_module {
 public:
  // `units`: the units present in this design (their signals and tracks); the others are
  // left out of both files.
  ActivityRecorder(sc_core::sc_module_name name, const TraceOptions& options,
                   std::vector<TraceUnit> units);
  ~ActivityRecorder() override;

  bool in_window(int layer, int head) const {
    return options_.layers.contains(layer) && options_.heads.contains(head);
  }
  bool layer_in_window(int layer) const { return options_.layers.contains(layer); }
  // Whether work tagged `tag` is traced: a head's work if its layer and head are in the
  // window, a layer's work (GEMM, skim jobs) if its layer is, work of no layer always.
  bool covers(const TraceTag& tag) const {
    if (tag.head >= 0) return in_window(tag.layer, tag.head);
    return tag.layer < 0 || layer_in_window(tag.layer);
  }

  // Elaboration: sample this FIFO's level after every change. Call before start().
  template <class T>
  void watch_fifo(TraceFifo f, sc_core::sc_fifo<T>& fifo) {
    level_of_[static_cast<int>(f)] = [&fifo] { return fifo.num_available(); };
    watched_[static_cast<int>(f)] = true;
    sc_core::sc_spawn_options opts;
    opts.spawn_method();
    opts.dont_initialize();
    opts.set_sensitivity(&fifo.data_written_event());
    opts.set_sensitivity(&fifo.data_read_event());
    sc_core::sc_spawn([this, f] { sample_fifo(f); }, sc_core::sc_gen_unique_name("fifo_probe"), &opts);
  }
  // Elaboration: opens the VCD (if asked) and declares its signals. Call before sc_start.
  void start();
  // After sc_start: closes the VCD and writes the timeline; both land atomically.
  void finish();

  // A span of `state` on `unit` from `begin` (>= now) to `end`. Zero-length spans are dropped.
  void interval(TraceUnit unit, UnitState state, Cycles begin, Cycles end, std::string what,
                const TraceTag& tag);
  // `unit` enters `state` now, until close() or the next open() on it.
  void open(TraceUnit unit, UnitState state, std::string what, const TraceTag& tag);
  void close(TraceUnit unit);

  // A head of the window enters the pipeline (DMA) / leaves it (its last row written).
  // FIFO levels are recorded while at least one is inside.
  void head_enters();
  void head_leaves();

  // What has been recorded (tests, and the writers).
  struct Span {
    TraceUnit unit;
    UnitState state;
    uint64_t begin, end;
    std::string what;
    TraceTag tag;
  };
  struct Level {
    TraceFifo fifo;
    uint64_t at;
    int value;
  };
  const std::vector<Span>& spans() const { return spans_; }
  const std::vector<Level>& levels(TraceFifo f) const { return levels_[static_cast<int>(f)]; }

 private:
  struct Change {
    uint64_t at, seq;
    int unit, value;
    bool operator>(const Change& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  struct OpenSpan {
    bool active = false;
    UnitState state = kIdle;
    uint64_t begin = 0;
    std::string what;
    TraceTag tag;
  };

  void set_state_at(TraceUnit unit, int value, Cycles at);
  void apply_due();  // SC_METHOD: applies the changes whose time has come
  void flush(uint64_t now);
  void sample_fifo(TraceFifo f);
  void record_level(TraceFifo f, int value);
  std::string timeline_json() const;

  TraceOptions options_;
  std::vector<TraceUnit> units_;
  // The VCD's signals: plain integers the trace file samples at the end of each time step.
  // Unsigned: SystemC traces a signed int of width 2 as 'x' for 2.
  unsigned state_[kTraceUnits] = {};
  unsigned level_[kTraceFifos] = {};
  std::function<int()> level_of_[kTraceFifos];
  bool watched_[kTraceFifos] = {};

  std::priority_queue<Change, std::vector<Change>, std::greater<Change>> pending_;
  uint64_t seq_ = 0;
  sc_core::sc_event wake_;
  OpenSpan open_[kTraceUnits];
  int heads_inside_ = 0;

  std::vector<Span> spans_;
  std::vector<Level> levels_[kTraceFifos];  // per FIFO, one sample per change
  sc_core::sc_trace_file* vcd_ = nullptr;
  std::string vcd_tmp_base_;
  bool finished_ = false;
};

}  // namespace attnsim

#pragma once
// The functional datapath of one head ("functional first, then time"): when a head is
// loaded, every row goes through the units' pure functions on the trace's real data -
// the candidate generator (C_i), the QK unit (score_row: scores, filter, row cost), the
// softmax (attn::softmax), the AV unit (attn::weighted_sum) and, when on, the low-rank
// unit's combination - and what the timed units need is kept per row in HeadWork::rows.
// A generator that attends aggregates itself (Treeformer TC) gives the row's output
// instead of a candidate list. Rows are independent, so they are spread over threads;
// nothing depends on the number of threads.
//
// Quality measurement is not the hardware's: the top level (sim/) hands a QualityMeter
// down, and the model calls it on every finished row. Without one, no quality is measured.
// Likewise a DecisionRecorder (`attnsim run --masks`) sees every finished row's candidates
// and survivors; without one, nothing is recorded.
#include "arch/candidates.h"
#include "arch/lowrank_unit.h"
#include "arch/pipeline.h"
#include "arch/qk_unit.h"
#include "core/worker_pool.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace attnsim {

// Quality of one head's rows against a reference (implemented in sim/quality.h).
class HeadQuality {
 public:
  virtual ~HeadQuality() = default;
  // Fills out.measured, err_sq, ref_sq, mass, qerr_sq, qref_sq for a finished row
  // (row.probs and row.out hold the accelerator's result). Called from several threads
  // at once on different rows; `scratch` is the calling thread's own.
  virtual void measure(const RowData& row, RowOutcome& out, std::vector<double>& scratch) const = 0;
};

class QualityMeter {
 public:
  virtual ~QualityMeter() = default;
  // Per head, before its rows: whatever the measurement derives once per head.
  virtual std::unique_ptr<HeadQuality> begin_head(const HeadWork& head) const = 0;
};

// Which keys one head's rows had as candidates and which of them survived the comparator
// (implemented in sim/masks.h).
class HeadDecisions {
 public:
  virtual ~HeadDecisions() = default;
  // A finished row: row.candidates (C_i, ascending key ids) and row.survivor_ids (the
  // candidates the QK unit kept, ascending). Called from several threads at once, each on
  // rows of its own, so an implementation writing per-row storage needs no lock.
  virtual void record(const RowData& row) = 0;
};

class DecisionRecorder {
 public:
  virtual ~DecisionRecorder() = default;
  // Per head, before its rows (head.candidates is set).
  virtual std::unique_ptr<HeadDecisions> begin_head(const HeadWork& head) const = 0;
};

// Fills the head's dequantized Q, K and V (HeadWork::q_deq, k_deq, v_deq), as the model
// does before a generator or the low-rank unit looks at the head.
void dequantize_rows(HeadWork& w);

// Hands a head's rows out to threads in chunks of whole query blocks, in ascending order:
// a thread that finishes early takes the next chunk, so rows of unequal cost (a causal
// row i sees i + 1 keys) still keep every thread busy. Which thread computes a row
// changes nothing in its results.
class RowChunks {
 public:
  RowChunks(int rows, int query_block, int threads);
  // The next chunk [begin, end); false when none is left.
  bool next(int& begin, int& end);

 private:
  int rows_, block_, chunk_blocks_, blocks_;
  std::atomic<int> next_{0};
};

class HeadModel {
 public:
  // `lowrank` may be null (the low-rank unit off), `quality` too (quality off), and
  // `decisions` (nothing recorded). The generator, the low-rank model, the meter and the
  // recorder must outlive the model.
  HeadModel(const QkSetup& qk, const CandidateGenerator& candidates, const LowRankModel* lowrank,
            const QualityMeter* quality, int threads, const DecisionRecorder* decisions = nullptr);

  // Head `head` of `layer`: its candidates, every row's outcome, the FCA scores (when the
  // layer collects them). Throws what the units' functions throw on bad data. One call at
  // a time: the calls share the model's row threads (and FCA's sums need heads in turn).
  std::shared_ptr<HeadWork> compute(std::shared_ptr<const LayerContext> layer, int head) const;
  // The same into a HeadWork whose layer and head are set.
  void compute(HeadWork& work) const;

  const QkSetup& qk() const { return qk_; }
  int threads() const { return threads_; }
  // The AV unit's MACs per cycle, for the V reads' cycles with sram.ports (av_unit.h);
  // without it the rows get none.
  void set_av_macs_per_cycle(int macs) { av_macs_per_cycle_ = macs; }
  // K/V tiling (arch/kv_tiling.h): every head computed from now on gets its tile schedule
  // and its rows' parts (HeadWork::tiled, parts); off (default): none.
  void set_tiling(const KvTiling& t) { tiling_ = t; }

 private:
  // Computes the rows of the chunks `chunks` hands out (ascending, on query-block
  // boundaries) until none is left.
  void compute_rows(HeadWork& w, const HeadQuality* quality, const LowRankHead* lowrank, HeadDecisions* decisions,
                    RowChunks& chunks) const;
  void block_parts(HeadWork& w, const std::vector<RowData>& rows, int first, int in_block, KeyMarks& marks) const;

  QkSetup qk_;
  const CandidateGenerator& candidates_;
  const LowRankModel* lowrank_;
  const QualityMeter* quality_;
  int threads_;
  const DecisionRecorder* decisions_;
  std::unique_ptr<WorkerPool> pool_;  // the row threads (null with one thread), one run at a time
  int av_macs_per_cycle_ = 0;
  KvTiling tiling_;
};

// Where the DMA gets its heads. With one thread (-j 1) a head is computed when the DMA
// asks for it, on the SystemC kernel's thread. With more, a producer thread computes the
// layer's heads in order, up to kAhead heads ahead of the one the DMA last took, while the
// kernel simulates the heads handed out: the kernel's work overlaps the rows' arithmetic,
// and the row threads never wait for the kernel between heads. Heads are still computed
// one at a time and in order (FCA's head-mean probabilities add up head by head, and the
// generator and the meters see heads as before), so no result depends on it. An error in
// a head's computation is thrown by the take() that asks for that head.
class HeadSource {
 public:
  static constexpr int kAhead = 2;  // computed heads not yet taken, at most

  explicit HeadSource(const HeadModel& model);
  ~HeadSource();  // waits for a head still being computed
  HeadSource(const HeadSource&) = delete;
  HeadSource& operator=(const HeadSource&) = delete;

  // Head `head` of `layer`, its rows computed. The DMA asks for every head of a layer, in
  // order (the first may be any, for a caller that starts mid-layer); anything else is a
  // std::logic_error.
  std::shared_ptr<HeadWork> take(const std::shared_ptr<const LayerContext>& layer, int head);

 private:
  struct Done {
    int head;
    std::shared_ptr<HeadWork> work;
    std::exception_ptr error;
  };
  void produce();
  int expected_head() const;  // the head the producer hands out next (lock held)

  const HeadModel& model_;
  std::mutex lock_;
  std::condition_variable changed_;
  std::shared_ptr<const LayerContext> layer_;  // the layer whose heads are produced
  int next_ = 0;                               // its next head to compute
  int computing_ = -1;                         // the head being computed, -1: none
  std::deque<Done> done_;                      // computed, in head order
  bool stopping_ = false;
  std::thread producer_;  // only with more than one thread
};

}  // namespace attnsim

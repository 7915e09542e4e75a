#include "sim/accelerator.h"

#include "arch/activity_trace.h"
#include "arch/av_unit.h"
#include "arch/candidate_stage.h"
#include "arch/dma.h"
#include "arch/dram.h"
#include "arch/gemm_engine.h"
#include "arch/head_model.h"
#include "arch/kernel_time.h"
#include "arch/lowrank_unit.h"
#include "arch/qk_unit.h"
#include "arch/sc_threads.h"
#include "arch/skim_controller.h"
#include "arch/softmax_unit.h"
#include "arch/sram.h"
#include "arch/writeback.h"
#include "core/errors.h"
#include "sim/layer_scheduler.h"
#include "sim/quality.h"

#include <systemc>

#include <memory>

namespace attnsim {

namespace {

// Progress: a sink wrapper that reports every ~0.5% of the rows.
class ProgressSink : public RowSink {
 public:
  ProgressSink(Metrics& m, uint64_t total, const std::function<void(uint64_t, uint64_t)>& f)
      : metrics_(m), total_(total), report_(f), step_(std::max<uint64_t>(1, total / 200)) {}
  void row_done(const HeadWork& head, int row) override {
    metrics_.row_done(head, row);
    const uint64_t done = metrics_.rows_done() + skipped_;
    if (report_ && (done % step_ == 0 || done == total_)) report_(done, total_);
  }
  // Rows a skimmed layer did not process still count as done for the progress bar.
  void skip(uint64_t rows) {
    skipped_ += rows;
    if (report_ && rows > 0) report_(metrics_.rows_done() + skipped_, total_);
  }

 private:
  Metrics& metrics_;
  uint64_t total_;
  std::function<void(uint64_t, uint64_t)> report_;
  uint64_t step_;
  uint64_t skipped_ = 0;
};

// A window that selects nothing is a mistake worth one line, not two empty files.
void check_trace_window(const TraceOptions& t, const Trace& trace) {
  int heads = 0;
  for (int l = 0; l < trace.layers(); ++l) heads = std::max(heads, trace.shape(l).heads);
  if (t.layers.first >= trace.layers())
    throw UsageError("--trace-layers '" + t.layers.text() + "': " + trace.path() + " has " +
                                std::to_string(trace.layers()) + " layers (0 to " + std::to_string(trace.layers() - 1) +
                                ")");
  if (t.heads.first >= heads)
    throw UsageError("--trace-heads '" + t.heads.text() + "': " + trace.path() + " has " +
                                std::to_string(heads) + " heads (0 to " + std::to_string(heads - 1) + ")");
}

// The design of one run: its units, the channels between them, and what they report.
// With sram.ports the SRAM's slots (a tiled run's K/V tile buffers) are bank-disjoint
// (arch/sram.h): a head's K and V are read from its slot's banks only, so the units see
// sram.banks / slots banks.
QkSetup slot_setup(const Config& c, int slots) {
  QkSetup s = c.qk_setup();
  if (c.sram.ports) s.sram.banks = SramBuffers(c.sram).slot_banks(slots);
  return s;
}

class Accelerator {
 public:
  Accelerator(const Config& c, const Trace& trace, Metrics& metrics, const SimOptions& o)
      : c_(c),
        trace_(trace),
        options_(o),
        plan_(plan_run(c, trace)),
        encoder_(c.model.scope == ModelScope::encoder),
        skimming_(c.skim_controller.mode != SkimMode::off),
        gemm_present_(encoder_ || (skimming_ && c.skim_controller.predictor_unit == PredictorUnit::gemm_engine)),
        generator_(make_candidate_generator(o.candidates.empty() ? c.candidates.source : o.candidates, plan_.config)),
        lowrank_params_(LowRankParams::table().from(plan_.config.at("lowrank_unit"))),
        lowrank_(lowrank_params_),
        model_(slot_setup(c, plan_.bank_groups()), *generator_, lowrank_params_.enabled ? &lowrank_ : nullptr,
               c.quality.enabled ? &quality_ : nullptr, o.threads, o.decisions),
        dram_(c.dram),
        sram_(c.sram),
        free_slots_("free_slots", plan_.sram_slots),
        sink_(metrics, plan_.rows, o.on_progress),
        planner_(c, trace, plan_, metrics, o.threads) {
    model_.set_tiling(plan_.tiling);
    build();
    wire();
  }

  SimOutcome run() {
    run_kernel();  // until no event is left (the last layer's last step is done); rethrows a unit's error
    out_.total = now_cycles();
    if (recorder_) recorder_->finish();  // after the total: it steps the kernel one cycle on
    out_.modules = collect();
    out_.config = plan_.config;
    out_.from_trace = plan_.from_trace;
    out_.d_model = planner_.d_model();
    out_.d_ff = planner_.d_ff();
    out_.static_factor["qk_unit"] = plan_.qk_lane_fraction;
    if (c_.qk_unit.query_block > 1) out_.static_factor["reuse_buffer"] = c_.qk_unit.query_block;  // Qb rows' segments
    if (out_.layers.size() != static_cast<size_t>(trace_.layers()))
      throw std::logic_error("simulation ended before every layer finished (internal error)");
    return std::move(out_);
  }

 private:
  // The channels and the units, in the order the kernel schedules them.
  void build() {
    const int depth = c_.pipeline.fifo_depth;
    layers_ = std::make_unique<sc_core::sc_fifo<std::shared_ptr<const LayerContext>>>("layers", 1);
    heads_ = std::make_unique<sc_core::sc_fifo<std::shared_ptr<HeadWork>>>("heads", plan_.sram_slots);
    scored_ = std::make_unique<sc_core::sc_fifo<RowToken>>("scored", depth);
    normalized_ = std::make_unique<sc_core::sc_fifo<RowToken>>("normalized", depth);
    outputs_ = std::make_unique<sc_core::sc_fifo<RowToken>>("outputs", depth);
    gemm_jobs_ = std::make_unique<sc_core::sc_fifo<GemmJob>>("gemm_jobs", 1);
    gemm_done_ = std::make_unique<sc_core::sc_fifo<GemmJob>>("gemm_done", 1);
    skim_jobs_ = std::make_unique<sc_core::sc_fifo<SkimJob>>("skim_jobs", 1);
    skim_done_ = std::make_unique<sc_core::sc_fifo<SkimJob>>("skim_done", 1);

    dma_ = std::make_unique<Dma>("dma", c_.qk_unit.bits, dram_, sram_, free_slots_, model_);
    dma_->set_slots(plan_.bank_groups());
    if (!generator_->unit().empty()) {
      loaded_ = std::make_unique<sc_core::sc_fifo<std::shared_ptr<HeadWork>>>("loaded", plan_.sram_slots);
      candidate_unit_ = std::make_unique<CandidateStage>("candidate_unit", *generator_);
    }
    if (lowrank_params_.enabled) {
      summarized_ = std::make_unique<sc_core::sc_fifo<std::shared_ptr<HeadWork>>>("summarized", plan_.sram_slots);
      lowrank_keys_ = std::make_unique<LowRankKeySide>("lowrank_keys", lowrank_params_);
    }
    qk_ = std::make_unique<QkUnit>("qk_unit", slot_setup(c_, plan_.bank_groups()), sram_);
    softmax_ = std::make_unique<SoftmaxUnit>("softmax", c_.softmax);
    av_ = std::make_unique<AvUnit>("av_unit", c_.av_unit, c_.qk_unit.bits, sram_, free_slots_);
    model_.set_av_macs_per_cycle(c_.av_unit.macs_per_cycle);
    if (lowrank_params_.enabled) {
      combined_ = std::make_unique<sc_core::sc_fifo<RowToken>>("combined", c_.pipeline.fifo_depth);
      lowrank_rows_ = std::make_unique<LowRankQuerySide>("lowrank_rows", lowrank_params_);
    }
    writeback_ = std::make_unique<Writeback>("writeback", c_.av_unit.output_bits, dram_, barrier_, sink_);
    gemm_ = std::make_unique<GemmEngine>("gemm_engine", c_.gemm_engine, dram_);
    skim_ = std::make_unique<SkimController>("skim_controller", c_.skim_controller, c_.model.hidden_bits, dram_);
    scheduler_ = std::make_unique<LayerScheduler>(
        "scheduler", trace_.layers(), encoder_, c_.skim_controller.predictor_unit == PredictorUnit::gemm_engine,
        c_.pipeline.overlap_gemm, planner_, barrier_, projected_,
        [this](int l, Cycles start, Cycles end) { record_layer(l, start, end); });
    if (encoder_ && c_.pipeline.overlap_gemm) dma_->set_projection_gate(&projected_);
    if (options_.tracing && options_.tracing->enabled()) attach_recorder(*options_.tracing);
  }

  void wire() {
    scheduler_->layer_out(*layers_);
    dma_->layer_in(*layers_);
    // The head path: DMA -> [candidate unit] -> [low-rank key side] -> QK unit.
    std::vector<sc_core::sc_fifo<std::shared_ptr<HeadWork>>*> head_fifos;
    std::vector<Stage<std::shared_ptr<HeadWork>>*> head_stages;
    if (candidate_unit_) head_fifos.push_back(loaded_.get()), head_stages.push_back(candidate_unit_.get());
    if (lowrank_keys_) head_fifos.push_back(summarized_.get()), head_stages.push_back(lowrank_keys_.get());
    head_fifos.push_back(heads_.get());
    dma_->head_out(*head_fifos.front());
    for (size_t s = 0; s < head_stages.size(); ++s) {
      head_stages[s]->in(*head_fifos[s]);
      head_stages[s]->out(*head_fifos[s + 1]);
    }
    qk_->head_in(*heads_);
    qk_->row_out(*scored_);
    softmax_->in(*scored_);
    softmax_->out(*normalized_);
    av_->in(*normalized_);
    // The row path: AV unit -> [low-rank query side] -> write-back.
    if (lowrank_rows_) {
      av_->out(*combined_);
      lowrank_rows_->in(*combined_);
      lowrank_rows_->out(*outputs_);
    } else {
      av_->out(*outputs_);
    }
    writeback_->row_in(*outputs_);
    scheduler_->gemm_out(*gemm_jobs_);
    gemm_->in(*gemm_jobs_);
    gemm_->out(*gemm_done_);
    scheduler_->gemm_done(*gemm_done_);
    scheduler_->skim_out(*skim_jobs_);
    skim_->in(*skim_jobs_);
    skim_->out(*skim_done_);
    scheduler_->skim_done(*skim_done_);
  }

  void attach_recorder(const TraceOptions& tracing) {
    check_trace_window(tracing, trace_);
    std::vector<TraceUnit> units = {TraceUnit::dma,     TraceUnit::dram,    TraceUnit::qk_unit,
                                    TraceUnit::softmax, TraceUnit::av_unit, TraceUnit::writeback};
    if (gemm_present_) units.push_back(TraceUnit::gemm_engine);
    if (skimming_) units.push_back(TraceUnit::skim_controller);
    if (candidate_unit_) units.push_back(CandidateStage::trace_unit_of(*generator_));
    if (lowrank_params_.enabled) units.push_back(TraceUnit::lowrank_unit);
    recorder_ = std::make_unique<ActivityRecorder>("activity_recorder", tracing, units);
    ActivityRecorder* r = recorder_.get();
    dma_->set_tracer(r);
    if (candidate_unit_) candidate_unit_->set_tracer(r);
    if (lowrank_keys_) lowrank_keys_->set_tracer(r), lowrank_rows_->set_tracer(r);
    qk_->set_tracer(r);
    softmax_->set_tracer(r);
    av_->set_tracer(r);
    writeback_->set_tracer(r);
    gemm_->set_tracer(r);
    skim_->set_tracer(r);
    r->watch_fifo(TraceFifo::heads, *heads_);
    r->watch_fifo(TraceFifo::scored, *scored_);
    r->watch_fifo(TraceFifo::normalized, *normalized_);
    r->watch_fifo(TraceFifo::outputs, *outputs_);
    r->start();
  }

  // Every present module's activity so far, in SEMANTICS §7 order. The GEMM engine's
  // operand traffic is added to the dram and sram counters (its buffer is costed like
  // the Q/K/V buffers' banks). On the shared DRAM path its bursts are already in the
  // channel's busy; on the separate path its channel is its own and adds no dram busy.
  std::vector<ModuleActivity> collect() const {
    ModuleActivity dram = dram_.activity(), sram = sram_.activity();
    if (gemm_present_) {
      dram.add("read_bits", gemm_->dram_read_bits());
      dram.add("write_bits", gemm_->dram_write_bits());
      sram.add("read_words", ceil_div(gemm_->sram_read_bits(), c_.sram.width_bits));
      sram.add("write_words", ceil_div(gemm_->sram_write_bits(), c_.sram.width_bits));
    }
    std::vector<ModuleActivity> m = {dram, sram, qk_->activity()};
    if (qk_->has_comparator()) m.push_back(qk_->comparator_activity());
    if (qk_->has_reuse_buffer()) m.push_back(qk_->reuse_buffer_activity());
    m.push_back(softmax_->activity());
    m.push_back(av_->activity());
    if (skimming_) m.push_back(skim_->activity());
    if (candidate_unit_) m.push_back(candidate_unit_->activity());
    if (lowrank_keys_) m.push_back(lowrank_activity(*lowrank_keys_, *lowrank_rows_));
    if (gemm_present_) m.push_back(gemm_->activity());
    return m;
  }

  void record_layer(int l, Cycles start, Cycles end) {
    const int active = planner_.active_tokens().at(l);
    out_.layers.push_back({start, end, active, collect()});
    const LayerShape& s = trace_.shape(l);
    sink_.skip(static_cast<uint64_t>(s.heads) * (s.n - active));
  }

  const Config& c_;
  const Trace& trace_;
  const SimOptions& options_;
  const RunPlan plan_;
  const bool encoder_, skimming_, gemm_present_;
  std::unique_ptr<CandidateGenerator> generator_;
  LowRankParams lowrank_params_;
  LowRankModel lowrank_;
  ExactAttentionQuality quality_;
  HeadModel model_;
  DramChannel dram_;
  SramBuffers sram_;
  LayerBarrier barrier_;
  ProjectionGate projected_;  // pipeline.overlap_gemm: heads whose QKV projection is done
  sc_core::sc_semaphore free_slots_;
  ProgressSink sink_;
  LayerPlanner planner_;
  SimOutcome out_;

  std::unique_ptr<sc_core::sc_fifo<std::shared_ptr<const LayerContext>>> layers_;
  std::unique_ptr<sc_core::sc_fifo<std::shared_ptr<HeadWork>>> loaded_, summarized_, heads_;
  std::unique_ptr<sc_core::sc_fifo<RowToken>> scored_, normalized_, combined_, outputs_;
  std::unique_ptr<sc_core::sc_fifo<GemmJob>> gemm_jobs_, gemm_done_;
  std::unique_ptr<sc_core::sc_fifo<SkimJob>> skim_jobs_, skim_done_;

  std::unique_ptr<Dma> dma_;
  std::unique_ptr<CandidateStage> candidate_unit_;
  std::unique_ptr<LowRankKeySide> lowrank_keys_;
  std::unique_ptr<QkUnit> qk_;
  std::unique_ptr<SoftmaxUnit> softmax_;
  std::unique_ptr<AvUnit> av_;
  std::unique_ptr<LowRankQuerySide> lowrank_rows_;
  std::unique_ptr<Writeback> writeback_;
  std::unique_ptr<GemmEngine> gemm_;
  std::unique_ptr<SkimController> skim_;
  std::unique_ptr<LayerScheduler> scheduler_;
  std::unique_ptr<ActivityRecorder> recorder_;
};

}  // namespace

SimOutcome simulate(const Config& config, const Trace& trace, Metrics& metrics, const SimOptions& options) {
  init_kernel_time();
  Accelerator accelerator(config, trace, metrics, options);
  return accelerator.run();
}

}  // namespace attnsim

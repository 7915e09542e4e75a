#include "sim/accelerator.h"

#include "arch/activity_trace.h"
#include "arch/av_unit.h"
#include "arch/dma.h"
#include "arch/dram.h"
#include "arch/gemm_engine.h"
#include "arch/kernel_time.h"
#include "arch/qk_unit.h"
#include "arch/skim_controller.h"
#include "arch/softmax_unit.h"
#include "arch/sram.h"
#include "arch/writeback.h"
#include "sim/functional.h"
#include "sim/layer_plan.h"
#include "sim/layer_scheduler.h"

#include <systemc>

#include <sstream>

namespace attnsim {

namespace {

[[noreturn]] void config_error(const Config& c, const std::string& path, const std::string& rule) {
  throw ConfigError(c.origin + ": " + path + ": " + rule);
}

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

void check_skim_fits_trace(const Config& c, const Trace& trace) {
  const std::string& mode = c.skim_controller.mode;
  if (mode == "off") return;
  for (int l = 1; l < trace.layers(); ++l)
    if (trace.shape(l).n != trace.shape(0).n || trace.shape(l).m != trace.shape(l).n)
      config_error(c, "skim_controller.mode",
                   "skimming needs self-attention layers with the same token count (layer " +
                       std::to_string(l) + " differs)");
  if (mode == "fca" && trace.causal())
    config_error(c, "skim_controller.mode", "fca needs a bidirectional trace: coarse tokens have no causal position");
  if (mode != "transkimmer") return;
  for (int l = 0; l < trace.layers(); ++l) {
    const std::string layer = "layers." + std::to_string(l) + ".";
    if (c.skim_controller.source == "trace" && !trace.file().has(layer + "skim_keep"))
      config_error(c, "skim_controller.source",
                   "\"trace\" needs " + layer + "skim_keep in " + trace.path() + ", which has none");
    if (c.skim_controller.source == "predictor" && (!trace.has_predictor(l) || !trace.has_hidden(l)))
      config_error(c, "skim_controller.source",
                   "\"predictor\" needs " + layer + "hidden and " + layer + "skim_predictor.* in " +
                       trace.path());
    // The predictor's cost, the forwarded hidden states and the GEMMs all use D.
    if (c.skim_controller.source == "predictor" && trace.hidden_size(l) != resolve_d_model(c, trace))
      config_error(c, "model.d_model",
                   "is " + std::to_string(resolve_d_model(c, trace)) + ", but " + layer + "hidden in " +
                       trace.path() + " has D = " + std::to_string(trace.hidden_size(l)));
  }
}

// A window that selects nothing is a mistake worth one line, not two empty files.
void check_trace_window(const TraceOptions& t, const Trace& trace) {
  int heads = 0;
  for (int l = 0; l < trace.layers(); ++l) heads = std::max(heads, trace.shape(l).heads);
  if (t.layers.first >= trace.layers())
    throw std::invalid_argument("--trace-layers '" + t.layers.text() + "': " + trace.path() + " has " +
                                std::to_string(trace.layers()) + " layers (0 to " + std::to_string(trace.layers() - 1) +
                                ")");
  if (t.heads.first >= heads)
    throw std::invalid_argument("--trace-heads '" + t.heads.text() + "': " + trace.path() + " has " +
                                std::to_string(heads) + " heads (0 to " + std::to_string(heads - 1) + ")");
}

}  // namespace

void check_config_fits_trace(const Config& c, const Trace& trace) {
  check_skim_fits_trace(c, trace);
  const SramBuffers sram(c.sram);
  for (int l = 0; l < trace.layers(); ++l) {
    const LayerShape& s = trace.shape(l);
    const uint64_t bits = head_bits(s.n, s.m, s.d, c.qk_unit.bits);
    if (sram.slots_for(bits) == 0) {
      std::ostringstream msg;
      msg << "too small for one head's Q, K and V of layer " << l << " (need "
          << ceil_div(bits, 8 * 1024) << " KiB, have " << c.sram.capacity_kib << ")";
      config_error(c, "sram.capacity_kib", msg.str());
    }
    for (int h = 0; h < s.heads; ++h) {
      per_head_value(c.comparator.gamma, l, h, trace.layers(), s.heads, c.origin, "comparator.gamma");
      per_head_value(c.comparator.theta, l, h, trace.layers(), s.heads, c.origin, "comparator.theta");
      if (!c.comparator.margin.is_null())
        per_head_value(c.comparator.margin, l, h, trace.layers(), s.heads, c.origin, "comparator.margin");
    }
  }
  const json& keep = c.skim_controller.keep;
  if (c.skim_controller.mode == "fca" && keep.is_array()) {
    if (static_cast<int>(keep.size()) != trace.layers())
      config_error(c, "skim_controller.keep",
                   "has " + std::to_string(keep.size()) + " values, the trace has " +
                       std::to_string(trace.layers()) + " layers");
    for (size_t l = 0; l < keep.size(); ++l)
      if (!keep[l].is_number_integer())
        config_error(c, "skim_controller.keep[" + std::to_string(l) + "]",
                     "a list gives R_l, a token count: must be an integer, got " + keep[l].dump());
  }
  if (c.skim_controller.mode == "fca" && keep.is_number() && keep.get<double>() > 1.0)
    config_error(c, "skim_controller.keep",
                 "a single number is the fraction of each layer's tokens kept: must be <= 1, got " + keep.dump());
  if (c.model.scope == "encoder") {
    resolve_d_model(c, trace);  // a bad metadata value is an error before the run
    resolve_d_ff(c, trace);
  }
}

SimOutcome simulate(const Config& c, const Trace& trace, Metrics& metrics, int threads,
                    const std::function<void(uint64_t, uint64_t)>& on_progress, const TraceOptions* tracing) {
  check_config_fits_trace(c, trace);
  if (tracing && tracing->enabled()) check_trace_window(*tracing, trace);
  init_kernel_time();

  uint64_t total_rows = 0;
  int slots = 2;
  SramBuffers sram(c.sram);
  for (int l = 0; l < trace.layers(); ++l) {
    const LayerShape& s = trace.shape(l);
    total_rows += static_cast<uint64_t>(s.heads) * s.n;
    slots = std::min(slots, sram.slots_for(head_bits(s.n, s.m, s.d, c.qk_unit.bits)));
  }

  std::exception_ptr error;
  DramChannel dram(c.dram);
  LayerBarrier barrier;
  sc_core::sc_semaphore free_slots("free_slots", slots);
  ProgressSink sink(metrics, total_rows, on_progress);
  LayerPlanner planner(c, trace, metrics);
  const int depth = c.pipeline.fifo_depth;
  const bool encoder = c.model.scope == "encoder";
  const bool skimming = c.skim_controller.mode != "off";
  const bool predictor_on_gemm = c.skim_controller.predictor_unit == "gemm_engine";

  sc_core::sc_fifo<std::shared_ptr<const LayerContext>> layers("layers", 1);
  sc_core::sc_fifo<std::shared_ptr<HeadWork>> heads("heads", slots);
  sc_core::sc_fifo<RowToken> scored("scored", depth), normalized("normalized", depth),
      outputs("outputs", depth);
  sc_core::sc_fifo<GemmJob> gemm_jobs("gemm_jobs", 1), gemm_done("gemm_done", 1);
  sc_core::sc_fifo<SkimJob> skim_jobs("skim_jobs", 1), skim_done("skim_done", 1);

  const FunctionalSetup functional{QkSetup{c.qk_unit, c.comparator, c.reuse_buffer}, c.quality.enabled, threads};
  Dma dma("dma", c.qk_unit.bits, dram, sram, free_slots,
          [&](std::shared_ptr<const LayerContext> layer, int h) {
            auto w = std::make_shared<HeadWork>();
            w->layer = std::move(layer);
            w->head = h;
            compute_head(functional, *w);
            return w;
          });
  QkUnit qk("qk_unit", functional.qk, sram);
  SoftmaxUnit softmax("softmax", c.softmax);
  AvUnit av("av_unit", c.av_unit, c.qk_unit.bits, sram, free_slots);
  Writeback writeback("writeback", c.av_unit.output_bits, dram, barrier, sink);
  GemmEngine gemm("gemm_engine", c.gemm_engine, c.dram);
  SkimController skim("skim_controller", c.skim_controller, c.model.hidden_bits, dram);

  // Every present module's activity so far, in SEMANTICS §7 order. The GEMM engine's
  // operand traffic is added to the dram and sram counters (its buffer is costed like
  // the Q/K/V buffers' banks; its DRAM channel is its own, so it adds no dram busy).
  const auto collect = [&]() {
    std::vector<ModuleActivity> m;
    ModuleActivity d = dram.activity(), s = sram.activity();
    if (encoder) {
      d.counters[0].second += gemm.dram_read_bits();
      d.counters[1].second += gemm.dram_write_bits();
      s.counters[0].second += ceil_div(gemm.sram_read_bits(), c.sram.width_bits);
      s.counters[1].second += ceil_div(gemm.sram_write_bits(), c.sram.width_bits);
    }
    m.push_back(d);
    m.push_back(s);
    m.push_back(qk.activity());
    if (qk.has_comparator()) m.push_back(qk.comparator_activity());
    if (qk.has_reuse_buffer()) m.push_back(qk.reuse_buffer_activity());
    m.push_back(softmax.activity());
    m.push_back(av.activity());
    if (skimming) m.push_back(skim.activity());
    if (encoder || (skimming && predictor_on_gemm)) m.push_back(gemm.activity());
    return m;
  };
  SimOutcome out;
  out.d_model = planner.d_model();
  out.d_ff = planner.d_ff();
  LayerScheduler scheduler("scheduler", trace.layers(), encoder, predictor_on_gemm, planner, barrier,
                           [&](int l, Cycles start, Cycles end) {
                             const int active = planner.active_tokens().at(l);
                             out.layers.push_back({start, end, active, collect()});
                             const LayerShape& s = trace.shape(l);
                             sink.skip(static_cast<uint64_t>(s.heads) * (s.n - active));
                           },
                           error);

  scheduler.layer_out(layers);
  dma.layer_in(layers);
  dma.head_out(heads);
  qk.head_in(heads);
  qk.row_out(scored);
  softmax.row_in(scored);
  softmax.row_out(normalized);
  av.row_in(normalized);
  av.row_out(outputs);
  writeback.row_in(outputs);
  scheduler.gemm_out(gemm_jobs);
  gemm.job_in(gemm_jobs);
  gemm.done(gemm_done);
  scheduler.gemm_done(gemm_done);
  scheduler.skim_out(skim_jobs);
  skim.job_in(skim_jobs);
  skim.done(skim_done);
  scheduler.skim_done(skim_done);

  std::unique_ptr<ActivityRecorder> recorder;
  if (tracing && tracing->enabled()) {
    std::vector<TraceUnit> units = {TraceUnit::dma,     TraceUnit::dram,    TraceUnit::qk_unit,
                                    TraceUnit::softmax, TraceUnit::av_unit, TraceUnit::writeback};
    if (encoder || (skimming && predictor_on_gemm)) units.push_back(TraceUnit::gemm_engine);
    if (skimming) units.push_back(TraceUnit::skim_controller);
    recorder = std::make_unique<ActivityRecorder>("activity_recorder", *tracing, units);
    dma.set_tracer(recorder.get());
    qk.set_tracer(recorder.get());
    softmax.set_tracer(recorder.get());
    av.set_tracer(recorder.get());
    writeback.set_tracer(recorder.get());
    gemm.set_tracer(recorder.get());
    skim.set_tracer(recorder.get());
    recorder->watch_fifo(TraceFifo::heads, heads);
    recorder->watch_fifo(TraceFifo::scored, scored);
    recorder->watch_fifo(TraceFifo::normalized, normalized);
    recorder->watch_fifo(TraceFifo::outputs, outputs);
    recorder->start();
  }

  sc_core::sc_start();  // runs until no event is left: the last layer's last step is done
  if (error) std::rethrow_exception(error);

  out.total = now_cycles();
  if (recorder) recorder->finish();  // after the total: it steps the kernel one cycle on
  out.modules = collect();
  if (out.layers.size() != static_cast<size_t>(trace.layers()))
    throw std::logic_error("simulation ended before every layer finished (internal error)");
  return out;
}

}  // namespace attnsim

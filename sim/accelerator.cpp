#include "sim/accelerator.h"

#include "arch/av_unit.h"
#include "arch/dma.h"
#include "arch/dram.h"
#include "arch/kernel_time.h"
#include "arch/qk_math.h"
#include "arch/qk_unit.h"
#include "arch/softmax_unit.h"
#include "arch/sram.h"
#include "arch/writeback.h"
#include "sim/functional.h"

#include <systemc>

#include <cmath>
#include <sstream>

namespace attnsim {

namespace {

[[noreturn]] void config_error(const Config& c, const std::string& path, const std::string& rule) {
  throw ConfigError(c.origin + ": " + path + ": " + rule);
}

int64_t resolve_margin(const Config& c, const Trace& trace, int l, int h, const HeadData& head, int d) {
  const int layers = trace.layers(), heads = trace.shape(l).heads;
  if (!c.comparator.margin.is_null())
    return static_cast<int64_t>(
        per_head_value(c.comparator.margin, l, h, layers, heads, c.origin, "comparator.margin"));
  const double gamma = per_head_value(c.comparator.gamma, l, h, layers, heads, c.origin, "comparator.gamma");
  return qk::latte_margin(gamma, d, head.scale_q, head.scale_k);
}

std::shared_ptr<const LayerContext> load_layer(const Config& c, const Trace& trace, Metrics& metrics, int l) {
  auto ctx = std::make_shared<LayerContext>();
  ctx->view = trace.layer(l, c.qk_unit.bits);
  ctx->causal = trace.causal();
  const LayerView& v = ctx->view;
  for (int h = 0; h < v.heads; ++h) {
    ctx->margin.push_back(resolve_margin(c, trace, l, h, v.head[h], v.d));
    ctx->theta.push_back(static_cast<int64_t>(per_head_value(
        c.comparator.theta, l, h, trace.layers(), v.heads, c.origin, "comparator.theta")));
  }
  metrics.begin_layer(l, v.heads, v.n, v.m, ctx->causal);
  return ctx;
}

std::shared_ptr<HeadWork> prepare_head(const Config& c, int threads,
                                       std::shared_ptr<const LayerContext> layer, int h) {
  auto w = std::make_shared<HeadWork>();
  w->layer = std::move(layer);
  w->head = h;
  compute_head(FunctionalSetup{QkSetup{c.qk_unit, c.comparator, c.reuse_buffer}, c.quality.enabled, threads}, *w);
  return w;
}

// Progress: a sink wrapper that reports every ~0.5% of the rows.
class ProgressSink : public RowSink {
 public:
  ProgressSink(Metrics& m, uint64_t total, const std::function<void(uint64_t, uint64_t)>& f)
      : metrics_(m), total_(total), report_(f), step_(std::max<uint64_t>(1, total / 200)) {}
  void row_done(const HeadWork& head, int row) override {
    metrics_.row_done(head, row);
    if (report_ && (metrics_.rows_done() % step_ == 0 || metrics_.rows_done() == total_))
      report_(metrics_.rows_done(), total_);
  }

 private:
  Metrics& metrics_;
  uint64_t total_;
  std::function<void(uint64_t, uint64_t)> report_;
  uint64_t step_;
};

}  // namespace

void check_config_fits_trace(const Config& c, const Trace& trace) {
  if (c.skim_controller.mode != "off")
    config_error(c, "skim_controller.mode",
                 "\"" + c.skim_controller.mode + "\" is not implemented in this version (only \"off\")");
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
}

SimOutcome simulate(const Config& c, const Trace& trace, Metrics& metrics, int threads,
                    const std::function<void(uint64_t, uint64_t)>& on_progress) {
  check_config_fits_trace(c, trace);
  init_kernel_time();

  uint64_t total_rows = 0;
  int slots = 2;
  SramBuffers sram(c.sram);
  for (int l = 0; l < trace.layers(); ++l) {
    const LayerShape& s = trace.shape(l);
    total_rows += static_cast<uint64_t>(s.heads) * s.n;
    slots = std::min(slots, sram.slots_for(head_bits(s.n, s.m, s.d, c.qk_unit.bits)));
  }

  DramChannel dram(c.dram);
  LayerBarrier barrier;
  sc_core::sc_semaphore free_slots("free_slots", slots);
  ProgressSink sink(metrics, total_rows, on_progress);
  const int depth = c.pipeline.fifo_depth;

  sc_core::sc_fifo<std::shared_ptr<HeadWork>> heads("heads", slots);
  sc_core::sc_fifo<RowToken> scored("scored", depth), normalized("normalized", depth),
      outputs("outputs", depth);

  Dma dma("dma", trace.layers(), c.qk_unit.bits, dram, sram, free_slots, barrier,
          [&](int l) { return load_layer(c, trace, metrics, l); },
          [&](std::shared_ptr<const LayerContext> layer, int h) { return prepare_head(c, threads, std::move(layer), h); });
  QkUnit qk("qk_unit", QkSetup{c.qk_unit, c.comparator, c.reuse_buffer}, sram);
  SoftmaxUnit softmax("softmax", c.softmax);
  AvUnit av("av_unit", c.av_unit, c.qk_unit.bits, sram, free_slots);
  Writeback writeback("writeback", c.av_unit.output_bits, dram, barrier, sink);

  dma.head_out(heads);
  qk.head_in(heads);
  qk.row_out(scored);
  softmax.row_in(scored);
  softmax.row_out(normalized);
  av.row_in(normalized);
  av.row_out(outputs);
  writeback.row_in(outputs);

  sc_core::sc_start();  // runs until no event is left: the last write has landed

  SimOutcome out;
  out.total = now_cycles();
  out.modules.push_back(dram.activity());
  out.modules.push_back(sram.activity());
  out.modules.push_back(qk.activity());
  if (qk.has_comparator()) out.modules.push_back(qk.comparator_activity());
  if (qk.has_reuse_buffer()) out.modules.push_back(qk.reuse_buffer_activity());
  out.modules.push_back(softmax.activity());
  out.modules.push_back(av.activity());
  if (metrics.rows_done() != total_rows)
    throw std::logic_error("simulation ended with rows in flight (internal error)");
  return out;
}

}  // namespace attnsim

#pragma once
// The functional side of the layer schedule: what the run needs per layer and head, and
// which tokens each layer processes.
//
// RunPlan: everything the config leaves open until a trace fixes the layers and heads,
// resolved once before anything runs (and checked: per-head value shapes, SRAM capacity,
// what skimming needs from the trace, the model widths). A mistake is a ConfigError
// naming the config file and the JSON path.
//
// LayerPlanner: without skimming every layer processes all of its tokens. With
// Transkimmer the keep masks of layer l (from the trace, or from the predictor MLP on the
// layer's hidden states) drop tokens before the layer, cumulatively. With FCA the
// accelerator's own attention probabilities of layer l pick the R_l fine tokens and pool
// the rest into C coarse tokens, which layer l's FFN and the next layers process
// (SEMANTICS §5). The planner loads each layer reduced to its active tokens
// (Trace::layer_mixed) with its per-head thresholds, and reports the skim controller's
// work for the timed units.
#include "arch/pipeline.h"
#include "arch/skim_controller.h"
#include "sim/config.h"
#include "sim/metrics.h"
#include "workloads/skim_types.h"
#include "workloads/trace.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace attnsim {

struct RunPlan {
  // The resolved config with what the trace decides filled in (tree_engine.depth,
  // lsh_unit.rounds, lowrank_unit.features): what the units are built from.
  json config;
  // Of those, the ones the config left out and the trace decided for a unit of the run,
  // with the value the run took ({"tree_engine.depth": 4}): the stats report them as
  // config_from_trace.
  json from_trace = json::object();
  int d_model = 0, d_ff = 0;  // D and d_ff: config, else trace metadata, else H*d and 4*D
  int sram_slots = 2;         // heads the SRAM holds at once (2: double buffering)
  KvTiling tiling;            // K/V tiling (arch/kv_tiling.h): on when a head does not fit, or forced
  // The bank-disjoint parts of the SRAM with sram.ports (arch/sram.h): the head slots, or
  // a tiled run's K/V tile buffers.
  int bank_groups() const { return tiling.on ? tiling.tile_buffers : sram_slots; }
  double qk_lane_fraction = 1;  // qk_unit.lane_width / d x query_block: the QK lanes' static power factor
  uint64_t rows = 0;          // query rows of the unreduced trace (heads x N over layers)
  // comparator thresholds per [layer][head]
  std::vector<std::vector<double>> gamma;
  std::vector<std::vector<int64_t>> margin;  // empty unless comparator.margin is given
  std::vector<std::vector<int64_t>> theta;
  // FCA: R_l per layer as given, or empty with keep_fraction set
  std::vector<int64_t> keep_counts;
  double keep_fraction = 0;
  // Mechanism parameters the layer planner loads from the trace for every head (else the
  // units build or draw their own).
  bool trace_trees = false, trace_lsh = false, trace_performer = false;
};

// Resolves and checks the plan. Throws ConfigError (config path) or TraceError (a bad
// metadata value).
RunPlan plan_run(const Config& config, const Trace& trace);

// The mechanism parameters of layer l that the plan takes from the trace, into `ctx`.
void load_mechanisms(const RunPlan& plan, const Trace& trace, int l, LayerContext& ctx);

struct LayerStart {
  std::shared_ptr<LayerContext> context;
  int active = 0;             // tokens (queries) the layer processes
  bool skim_job = false;      // Transkimmer: the controller works before the layer
  SkimJob job;
  uint64_t predictor_tokens = 0;  // rows of the predictor MLP (for the GEMM engine variant)
};

struct LayerEnd {
  bool skim_job = false;      // FCA: the controller works after the attention
  SkimJob job;
  int tokens_after = 0;       // tokens the FFN and the next layer process
};

class LayerPlanner {
 public:
  // `threads`: up to how many threads load a layer's tensors (the result does not depend on it).
  LayerPlanner(const Config& config, const Trace& trace, const RunPlan& plan, Metrics& metrics, int threads = 1);

  LayerStart begin_layer(int l);
  LayerEnd end_layer(int l);

  int d_model() const { return plan_.d_model; }
  int d_ff() const { return plan_.d_ff; }
  const std::vector<int>& active_tokens() const { return active_; }  // per layer begun

 private:
  std::vector<uint8_t> transkimmer_keep(int l, const LayerView& full);
  int fca_keep_count(int l, int n) const;

  const Config& c_;
  const Trace& trace_;
  const RunPlan& plan_;
  Metrics& metrics_;
  int threads_;
  skim::TokenMap map_;        // active tokens of the next layer to begin
  std::shared_ptr<LayerContext> current_;
  std::vector<int> active_;
};

}  // namespace attnsim

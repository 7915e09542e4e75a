#pragma once
// The functional side of the layer schedule: which tokens each layer processes.
//
// Without skimming every layer processes all of its tokens. With Transkimmer the keep
// masks of layer l (from the trace, or from the predictor MLP on the layer's hidden
// states) drop tokens before the layer, cumulatively. With FCA the accelerator's own
// attention probabilities of layer l pick the R_l fine tokens and pool the rest into C
// coarse tokens, which layer l's FFN and the next layers process (SEMANTICS §5). The
// planner loads each layer reduced to its active tokens (Trace::layer_mixed) and reports
// the controller's work for the timed units.
#include "arch/pipeline.h"
#include "arch/skim_controller.h"
#include "sim/config.h"
#include "sim/metrics.h"
#include "workloads/skim_types.h"
#include "workloads/trace.h"

#include <memory>
#include <vector>

namespace attnsim {

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
  LayerPlanner(const Config& config, const Trace& trace, Metrics& metrics);

  LayerStart begin_layer(int l);
  LayerEnd end_layer(int l);

  int d_model() const { return d_model_; }
  int d_ff() const { return d_ff_; }
  const std::vector<int>& active_tokens() const { return active_; }  // per layer begun

 private:
  std::vector<uint8_t> transkimmer_keep(int l, const LayerView& full);
  int fca_keep_count(int l, int n) const;

  const Config& c_;
  const Trace& trace_;
  Metrics& metrics_;
  int d_model_ = 0, d_ff_ = 0;
  skim::TokenMap map_;        // active tokens of the next layer to begin
  std::shared_ptr<LayerContext> current_;
  std::vector<int> active_;
};

// D and d_ff of the model: config, else trace metadata (d_model, d_ff), else H*d and 4*D.
int resolve_d_model(const Config& c, const Trace& trace);
int resolve_d_ff(const Config& c, const Trace& trace);

}  // namespace attnsim

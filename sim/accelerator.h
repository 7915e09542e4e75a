#pragma once
// The top level: builds the units from a resolved config, wires them with bounded FIFOs,
// runs the SystemC kernel over a whole trace and collects what the units report.
//
//   layer scheduler ─(layers)─► DMA ══(heads)══► [candidate unit] ══► [low-rank key side] ══► QK unit
//     │   ▲    ▲ │                        (tree engine, LSH unit)              [comparator, reuse buffer]
//     │   │    │ │                                        ══(rows)══► softmax ══► AV unit
//     │   │    │ └─(skim jobs)─► skim controller                                 ║
//     │   │    └─(GEMM jobs)──► GEMM engine                                       ║
//     │   └──── layer barrier ◄── write-back ◄══ [low-rank query side] ◄═(rows)═══╝
//   DMA, write-back, skim forwarding and (gemm_engine.dram_path "shared") the GEMM engine's
//   operand and result bursts share the DRAM channel; Q/K/V live in SRAM slots.
//   The candidate unit is there only when the candidate generator has hardware, the
//   low-rank unit's two pipelines only when it is enabled.
//
// One simulation per process (SystemC elaborates one design per process).
#include "arch/candidates.h"
#include "core/activity.h"
#include "core/cycles.h"
#include "sim/config.h"
#include "sim/layer_plan.h"
#include "sim/metrics.h"
#include "workloads/trace.h"

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace attnsim {

struct TraceOptions;       // arch/activity_trace.h
class DecisionRecorder;    // arch/head_model.h

// One layer's span and the modules' cumulative activity when it ended.
struct LayerRecord {
  Cycles start{0}, end{0};
  int active_tokens = 0;   // queries the layer processed
  std::vector<ModuleActivity> modules_at_end;
};

struct SimOutcome {
  json config;      // the resolved config with what the trace decided (RunPlan::config)
  json from_trace;  // the values the run took for keys the config left out (RunPlan::from_trace)
  Cycles total{0};
  std::vector<ModuleActivity> modules;  // in SEMANTICS §7 order, present units only
  std::vector<LayerRecord> layers;
  int d_model = 0, d_ff = 0;
  // Static power factors the run decides beyond the config's sizes (EnergyContext).
  std::map<std::string, double> static_factor;
};

struct SimOptions {
  int threads = 1;  // threads of the head model (results do not depend on it)
  // Called with (rows done, rows total) from time to time; may be empty.
  std::function<void(uint64_t, uint64_t)> on_progress;
  // VCD and / or timeline of a window of the run (docs/tracing.md); null: none. The
  // outcome does not depend on it.
  const TraceOptions* tracing = nullptr;
  // The candidate generator registered under this name (arch/candidates.h) instead of
  // the config's candidates.source; empty: the config's.
  std::string candidates;
  // Receives every row's candidates and survivors (`attnsim run --masks`, sim/masks.h);
  // null: nothing recorded. The outcome does not depend on it.
  const DecisionRecorder* decisions = nullptr;
};

// Simulates the whole trace. `metrics` receives every finished row. Throws ConfigError
// (the config does not fit the trace), TraceError (bad data found mid-run) or
// std::invalid_argument (a tracing window outside the trace).
SimOutcome simulate(const Config& config, const Trace& trace, Metrics& metrics, const SimOptions& options = {});

}  // namespace attnsim

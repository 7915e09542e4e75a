#pragma once
// The top level: builds the units from a resolved config, wires them with bounded FIFOs,
// runs the SystemC kernel over a whole trace and returns what the units report.
//
//   layer scheduler ─(layers)─► DMA ══(heads)══► QK unit [comparator, reuse buffer]
//     │   ▲    ▲ │                                        ══(rows)══► softmax ══► AV unit
//     │   │    │ └─(skim jobs)─► skim controller                                 ║
//     │   │    └─(GEMM jobs)──► GEMM engine                                       ║
//     │   └──── layer barrier ◄── write-back ◄════════════(rows)══════════════════╝
//   DMA, write-back and skim forwarding share the DRAM channel; Q/K/V live in SRAM slots.
//
// One Accelerator per process (SystemC elaborates one design per process).
#include "core/activity.h"
#include "sim/config.h"
#include "core/cycles.h"
#include "sim/metrics.h"
#include "workloads/trace.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace attnsim {

struct TraceOptions;  // arch/activity_trace.h

// One layer's span and the modules' cumulative activity when it ended.
struct LayerRecord {
  Cycles start{0}, end{0};
  int active_tokens = 0;   // queries the layer processed
  std::vector<ModuleActivity> modules_at_end;
};

struct SimOutcome {
  Cycles total{0};
  std::vector<ModuleActivity> modules;  // in SEMANTICS §7 order, present units only
  std::vector<LayerRecord> layers;
  int d_model = 0, d_ff = 0;
};

// Checks the config against the trace before anything runs (per-head value shapes,
// SRAM capacity, modes this version implements). Throws ConfigError naming the config
// file and the JSON path.
void check_config_fits_trace(const Config& config, const Trace& trace);

// Simulates the whole trace. `metrics` receives every finished row; `threads` run the
// functional model (results do not depend on it); `on_progress` (may be empty) is called
// with (rows done, rows total) from time to time. `tracing` (may be null) writes the VCD
// and / or timeline of a window of the run (docs/tracing.md); the outcome does not
// depend on it.
SimOutcome simulate(const Config& config, const Trace& trace, Metrics& metrics, int threads,
                    const std::function<void(uint64_t, uint64_t)>& on_progress = {},
                    const TraceOptions* tracing = nullptr);

}  // namespace attnsim

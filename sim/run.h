#pragma once
// One whole run of `attnsim run`: the trace opened, the accelerator simulated, energy
// computed and the stats assembled (sim/stats.h writes them).
#include "sim/config.h"
#include "sim/masks.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace attnsim {

struct TraceOptions;  // arch/activity_trace.h

// The memory a run may take (sim/memory_estimate.h): a run whose estimate exceeds it is
// refused before anything runs. 0: no cap. `source` says where it came from, for the message.
struct MemoryCap {
  uint64_t bytes = 0;
  std::string source;
};

struct RunReport {
  nlohmann::json stats;  // the whole stats document
  // Every row's candidates and survivors, when asked for (not yet written: see
  // KeepMasks::write).
  std::unique_ptr<KeepMasks> masks;
};

// Opens the trace, simulates, computes energy, assembles the stats. With a skim
// controller, the same config with the controller off runs in a forked child, for
// skim.cycles_without_skim and skim.energy_pj_without_skim. Throws ConfigError,
// TraceError or EnergyError (one-line messages).
// `threads`: threads of the head model (0 = one per core); results do not depend on it.
// `tracing` (may be null): VCD / timeline of a window of the run (docs/tracing.md); the
// stats do not depend on it.
// `masks`: record every row's candidates and survivors into RunReport::masks (`attnsim run
// --masks`); a trace whose masks could exceed KeepMasks::kMaxBytes fails before anything
// runs. The no-skim baseline records nothing. The stats do not depend on it.
// `memory_cap`: a run whose estimated memory exceeds it fails with SimulationError before
// anything runs (the figure in the message).
RunReport run_simulation(const Config& config, const std::string& trace_path, int threads = 0,
                         const std::function<void(uint64_t, uint64_t)>& on_progress = {},
                         const TraceOptions* tracing = nullptr, bool masks = false,
                         const MemoryCap& memory_cap = {});

}  // namespace attnsim

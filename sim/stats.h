#pragma once
// The stats of one run (SEMANTICS §7, schema attnsim.stats/1): one JSON writer and one
// text writer over the same data. Everything but `sim.*` is a pure function of the
// config and the trace, so the same inputs give byte-identical stats apart from `sim.*`.
#include "sim/accelerator.h"
#include "sim/config.h"
#include "sim/energy.h"
#include "core/file_io.h"
#include "sim/metrics.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>

namespace attnsim {

inline constexpr const char* kStatsSchema = "attnsim.stats/1";

struct RunReport {
  nlohmann::json stats;  // the whole stats document
};

// Opens the trace, simulates, computes energy, assembles the stats. Throws ConfigError,
// TraceError or EnergyError (one-line messages).
// `threads`: threads of the functional model (0 = one per core); results do not depend on it.
// `tracing` (may be null): VCD / timeline of a window of the run (docs/tracing.md); the
// stats do not depend on it.
RunReport run_simulation(const Config& config, const std::string& trace_path, int threads = 0,
                         const std::function<void(uint64_t, uint64_t)>& on_progress = {},
                         const TraceOptions* tracing = nullptr);

// Assembles the stats document from the parts (also used by tests).
nlohmann::json make_stats(const Config& config, const nlohmann::json& trace_info,
                          const SimOutcome& outcome, const std::map<std::string, ModuleEnergy>& energy,
                          const Metrics& metrics, double wall_seconds);

// Human summary: cycles, time, energy, filter and quality figures, the top modules.
std::string text_summary(const nlohmann::json& stats);


}  // namespace attnsim

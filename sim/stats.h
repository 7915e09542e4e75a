#pragma once
// The stats of one run (SEMANTICS §7, schema attnsim.stats/1): one JSON writer and one
// text writer over the same data. Everything but `sim.*` is a pure function of the
// config and the trace, so the same inputs give byte-identical stats apart from `sim.*`.
#include "sim/accelerator.h"
#include "sim/config.h"
#include "sim/energy.h"
#include "sim/metrics.h"
#include "workloads/trace.h"

#include <nlohmann/json.hpp>

#include <map>
#include <string>

namespace attnsim {

inline constexpr const char* kStatsSchema = "attnsim.stats/1";

// The energy model's view of a run of `total` cycles on `config` (storage geometry, clock,
// node scale, sizes for static power); `resolved` is the config as the run resolved it
// (SimOutcome::config: with what the trace decided).
// `static_factor`: SimOutcome::static_factor (the QK lanes' width / d).
EnergyContext energy_context(const Config& config, const nlohmann::json& resolved, Cycles total,
                             const std::map<std::string, double>& static_factor = {});
double total_energy(const std::map<std::string, ModuleEnergy>& energy);

// Assembles the stats document from the parts (also used by tests).
nlohmann::json make_stats(const Config& config, const nlohmann::json& trace_info,
                          const SimOutcome& outcome, const std::map<std::string, ModuleEnergy>& energy,
                          const Metrics& metrics, double wall_seconds);

// `layers`: per layer its span, active tokens and the energy of the activity within the
// span (static power over the span), so that the layers' energies add up to the total.
nlohmann::json layers_json(const Config& config, const TechTable& tech, const SimOutcome& outcome);

// `skim`: active tokens per layer, skim ratio, and the no-skim baseline's cycles and energy.
nlohmann::json skim_json(const SimOutcome& outcome, const Trace& trace, const nlohmann::json& baseline);

// What keeps `stats` from being a complete stats document ("" when it is one): a JSON
// object with schema attnsim.stats/1 and every top-level key make_stats always writes
// (schema, config, trace, cycles, time_ns, energy_pj, filter, warnings, quality,
// counters, sim), with cycles.total and energy_pj.total numbers. A sweep point counts as
// done only with such a file (docs/sweeps.md).
std::string stats_problem(const nlohmann::json& stats);

// Human summary: cycles, time, energy, filter and quality figures, the top modules.
std::string text_summary(const nlohmann::json& stats);

}  // namespace attnsim

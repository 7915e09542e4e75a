// The stats writers (SEMANTICS §7): one JSON document assembled from a run's parts, and
// one text summary of it. Running the simulation is sim/run.cpp's job.
#include "sim/stats.h"

#include <algorithm>
#include <iomanip>
#include <sstream>

namespace attnsim {

EnergyContext energy_context(const Config& c, const nlohmann::json& resolved, Cycles total,
                             const std::map<std::string, double>& static_factor) {
  EnergyContext ctx;
  ctx.static_factor = static_factor;
  ctx.sram_bank_kib = static_cast<double>(c.sram.capacity_kib) / c.sram.banks;
  ctx.sram_width_bits = c.sram.width_bits;
  // Two segments' partial sums: the comparator of one overlaps pass 1 of the next.
  // A query block of Qb rows holds Qb rows' segments.
  ctx.reuse_bank_kib = 2.0 * c.reuse_buffer.entries * c.reuse_buffer.bits_per_entry / 8.0 / 1024.0 /
                       c.reuse_buffer.banks * c.qk_unit.query_block;
  ctx.reuse_width_bits = c.reuse_buffer.bits_per_entry;
  ctx.node_scale = c.energy.node_scale;
  ctx.clock = Clock(c.clock_ghz);
  ctx.total = total;
  ctx.config = resolved;  // static power scales with the sizes in it (docs/energy.md)
  return ctx;
}

double total_energy(const std::map<std::string, ModuleEnergy>& e) {
  double t = 0;
  for (const auto& [name, m] : e) t += m.dynamic_pj + m.static_pj;
  return t;
}

namespace {

// Storage units (SRAM, reuse buffer) are assumed to supply what the compute units ask
// each cycle; their busy cycles measure the demand. Demand beyond the run's length means
// the configured banks cannot feed the units: say so rather than hide it.
nlohmann::json capacity_warnings(const SimOutcome& out) {
  nlohmann::json w = nlohmann::json::array();
  for (const ModuleActivity& m : out.modules) {
    // Only storage reports port demand as busy; a compute unit's busy can exceed the run
    // legitimately (the low-rank unit sums its two pipelines).
    if (m.name != "sram" && m.name != "reuse_buffer") continue;
    // With reuse_buffer.ports the buffer's ports are simulated: the lanes wait for them.
    if (m.name == "reuse_buffer" && out.config.contains("reuse_buffer") &&
        !out.config["reuse_buffer"].value("ports", nlohmann::json()).is_null())
      continue;
    if (m.busy <= out.total.count()) continue;
    std::ostringstream msg;
    msg << m.name << ": port demand of " << m.busy << " bank-cycles exceeds the run's " << out.total.count()
        << " cycles (" << std::fixed << std::setprecision(2)
        << static_cast<double>(m.busy) / std::max<uint64_t>(1, out.total.count())
        << "x): the units need more banks or wider ones than configured; timing assumes they are there";
    w.push_back(msg.str());
  }
  return w;
}

// The activity between two snapshots of the same modules.
std::vector<ModuleActivity> difference(const std::vector<ModuleActivity>& now,
                                       const std::vector<ModuleActivity>* before) {
  std::vector<ModuleActivity> d = now;
  if (!before) return d;
  for (size_t i = 0; i < d.size(); ++i) {
    d[i].busy -= (*before)[i].busy;
    d[i].stall -= (*before)[i].stall;
    for (size_t k = 0; k < d[i].counters.size(); ++k) d[i].counters[k].second -= (*before)[i].counters[k].second;
  }
  return d;
}

// Per layer: span, active tokens, and energy of the activity within the span (static
// power over the span), so that the layers' energies add up to the total.
}  // namespace

nlohmann::json make_stats(const Config& c, const nlohmann::json& trace_info, const SimOutcome& out,
                          const std::map<std::string, ModuleEnergy>& energy, const Metrics& metrics,
                          double wall_seconds) {
  nlohmann::json s;
  s["schema"] = kStatsSchema;
  s["config"] = c.resolved;
  if (!out.from_trace.is_null() && !out.from_trace.empty()) s["config_from_trace"] = out.from_trace;
  s["trace"] = trace_info;

  nlohmann::json by_module = nlohmann::json::object();
  nlohmann::json counters = nlohmann::json::object();
  for (const ModuleActivity& m : out.modules) {
    by_module[m.name] = {{"busy", m.busy}, {"stall", m.stall}};
    nlohmann::json mc = nlohmann::json::object();
    for (const auto& [action, count] : m.counters) mc[action] = count;
    counters[m.name] = mc;
  }
  const Clock clock(c.clock_ghz);
  s["cycles"] = {{"total", out.total.count()}, {"by_module", by_module}};
  s["time_ns"] = clock.to_time(out.total).value;

  double total_pj = 0;
  nlohmann::json energy_by_module = nlohmann::json::object();
  for (const ModuleActivity& m : out.modules) {
    const ModuleEnergy& e = energy.at(m.name);
    energy_by_module[m.name] = {{"dynamic", e.dynamic_pj}, {"static", e.static_pj}};
    total_pj += e.dynamic_pj + e.static_pj;
  }
  s["energy_pj"] = {{"total", total_pj}, {"by_module", energy_by_module}};
  s["filter"] = metrics.filter_json();
  s["warnings"] = capacity_warnings(out);
  s["quality"] = metrics.quality_json();
  s["counters"] = counters;
  s["sim"] = {{"wall_seconds", wall_seconds},
              {"cycles_per_second", wall_seconds > 0 ? out.total.count() / wall_seconds : 0.0}};
  return s;
}

std::string stats_problem(const nlohmann::json& s) {
  if (!s.is_object()) return "not a JSON object";
  if (s.value("schema", nlohmann::json()) != kStatsSchema) return std::string("schema is not \"") + kStatsSchema + "\"";
  for (const char* key : {"config", "trace", "cycles", "time_ns", "energy_pj", "filter", "warnings", "quality",
                          "counters", "sim"})
    if (!s.contains(key)) return std::string("no \"") + key + "\"";
  for (const char* total : {"/cycles/total", "/energy_pj/total"}) {
    const nlohmann::json::json_pointer p(total);
    if (!s.contains(p) || !s.at(p).is_number()) return std::string("no number at ") + total;
  }
  return "";
}

nlohmann::json layers_json(const Config& c, const TechTable& tech, const SimOutcome& out) {
  nlohmann::json layers = nlohmann::json::array();
  for (size_t l = 0; l < out.layers.size(); ++l) {
    const LayerRecord& r = out.layers[l];
    const std::vector<ModuleActivity> delta =
        difference(r.modules_at_end, l == 0 ? nullptr : &out.layers[l - 1].modules_at_end);
    const double energy = total_energy(compute_energy(tech, delta, energy_context(c, out.config, r.end - r.start, out.static_factor)));
    layers.push_back({{"active_tokens", r.active_tokens},
                      {"cycles", {{"start", r.start.count()}, {"end", r.end.count()}, {"total", (r.end - r.start).count()}}},
                      {"energy_pj", energy}});
  }
  return layers;
}

nlohmann::json skim_json(const SimOutcome& out, const Trace& trace, const nlohmann::json& baseline) {
  nlohmann::json active = nlohmann::json::array();
  double sum = 0;
  for (const LayerRecord& r : out.layers) {
    active.push_back(r.active_tokens);
    sum += r.active_tokens;
  }
  const double all = static_cast<double>(trace.layers()) * trace.shape(0).n;
  return {{"active_tokens", active},
          {"skim_ratio", all > 0 ? 1.0 - sum / all : 0.0},
          {"cycles_without_skim", baseline.at("cycles")},
          {"energy_pj_without_skim", baseline.at("energy_pj")}};
}

namespace {

std::string fixed(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

std::string engineering_pj(double pj) {
  const char* units[] = {"pJ", "nJ", "uJ", "mJ", "J"};
  int u = 0;
  while (pj >= 1000.0 && u < 4) pj /= 1000.0, ++u;
  return fixed(pj, 3) + " " + units[u];
}

}  // namespace

std::string text_summary(const nlohmann::json& s) {
  std::ostringstream os;
  const uint64_t total = s["cycles"]["total"].get<uint64_t>();
  const double energy = s["energy_pj"]["total"].get<double>();
  os << "trace     " << s["trace"]["path"].get<std::string>();
  const std::string model = s["trace"]["model"].get<std::string>();
  if (!model.empty()) os << "  (" << model << ")";
  os << "\nqk_unit   " << s["config"]["qk_unit"]["type"].get<std::string>() << ", mode "
     << s["config"]["qk_unit"]["mode"].get<std::string>() << ", B="
     << s["config"]["qk_unit"]["bits"] << ", L=" << s["config"]["qk_unit"]["lanes"] << "\n";
  os << "cycles    " << total << "  (" << fixed(s["time_ns"].get<double>() / 1000.0, 3) << " us at "
     << s["config"]["clock_ghz"].get<double>() << " GHz)\n";
  os << "energy    " << engineering_pj(energy) << "\n";
  const auto& f = s["filter"];
  os << "filtered  " << fixed(100.0 * f["filtered_ratio"].get<double>(), 2) << "% of "
     << f["candidate_keys"].get<uint64_t>() << " candidate keys; exact_ratio "
     << fixed(f["exact_ratio"].get<double>(), 4) << "\n";
  const auto& q = s["quality"];
  if (q.contains("rel_error")) {
    os << "quality   rel_error " << q["rel_error"].get<double>() << ", mass_recall "
       << (q["mass_recall"].is_number() ? fixed(q["mass_recall"].get<double>(), 6) : std::string("n/a (TC)"));
    if (q.contains("quant_error")) os << ", quant_error " << q["quant_error"].get<double>();
    os << "\n";
  }
  // Modules by energy, with busy share of the run.
  std::vector<std::pair<double, std::string>> order;
  for (const auto& [name, e] : s["energy_pj"]["by_module"].items())
    order.emplace_back(e["dynamic"].get<double>() + e["static"].get<double>(), name);
  std::sort(order.rbegin(), order.rend());
  os << "\n" << std::left << std::setw(14) << "module" << std::right << std::setw(14) << "busy"
     << std::setw(8) << "busy%" << std::setw(12) << "stall" << std::setw(16) << "energy"
     << std::setw(8) << "en%" << "\n";
  for (const auto& [e, name] : order) {
    const auto& c = s["cycles"]["by_module"][name];
    const uint64_t busy = c["busy"].get<uint64_t>();
    os << std::left << std::setw(14) << name << std::right << std::setw(14) << busy << std::setw(8)
       << fixed(total ? 100.0 * busy / total : 0.0, 1) << std::setw(12) << c["stall"].get<uint64_t>()
       << std::setw(16) << engineering_pj(e) << std::setw(8)
       << fixed(energy > 0 ? 100.0 * e / energy : 0.0, 1) << "\n";
  }
  for (const auto& w : s["warnings"]) os << "\nwarning: " << w.get<std::string>() << "\n";
  os << "\nsimulated in " << fixed(s["sim"]["wall_seconds"].get<double>(), 3) << " s ("
     << fixed(s["sim"]["cycles_per_second"].get<double>() / 1e6, 2) << " M cycles/s)\n";
  return os.str();
}


}  // namespace attnsim

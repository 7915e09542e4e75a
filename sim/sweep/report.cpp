// The results of a sweep: collecting the rows, summary.csv, status counts, the Pareto front.
#include "sim/sweep/report.h"

#include "core/file_io.h"
#include "core/json_input.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>

namespace attnsim {

namespace fs = std::filesystem;

namespace {

double number_at(const json& j, const char* pointer) {
  const json::json_pointer p(pointer);
  if (!j.contains(p) || !j.at(p).is_number()) return std::numeric_limits<double>::quiet_NaN();
  return j.at(p).get<double>();
}

std::map<std::string, double> metrics_of(const json& stats) {
  return {{"cycles", number_at(stats, "/cycles/total")},
          {"energy_pj", number_at(stats, "/energy_pj/total")},
          {"filtered_ratio", number_at(stats, "/filter/filtered_ratio")},
          {"exact_ratio", number_at(stats, "/filter/exact_ratio")},
          {"rel_error", number_at(stats, "/quality/rel_error")},
          {"mass_recall", number_at(stats, "/quality/mass_recall")},
          {"wall_seconds", number_at(stats, "/sim/wall_seconds")}};
}

// A JSON file of the sweep directory; nullopt when it is missing, not a regular file, too
// large or not JSON (the point then has no result of that kind).
std::optional<json> read_json_file(const std::string& path) {
  try {
    return parse_json(read_input_file(path, "sweep result", kMaxStatsBytes));  // bounded depth
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The manifest; a missing or foreign one means DIR is no sweep directory (yet), a FIFO or
// oversized one is reported as such.
json read_manifest(const SweepDir& dir) {
  const std::string none = dir.manifest() + ": no sweep manifest (run attnsim sweep SWEEP.json --out " + dir.root +
                           " or --emit-jobs first)";
  std::error_code ec;
  if (!fs::exists(dir.manifest(), ec)) throw SweepError(none, ErrorClass::io);
  std::string text;
  try {
    text = read_input_file(dir.manifest(), "sweep manifest", kMaxStatsBytes);
  } catch (const InputFileError& e) {
    throw SweepError(e.what(), ErrorClass::io);
  }
  const json manifest = parse_json_or_discarded(text);
  if (!manifest.is_object() || manifest.value("schema", "") != kSweepManifestSchema) throw SweepError(none, ErrorClass::io);
  return manifest;
}

// speedup and energy_reduction of each row over the trace's baseline row.
void add_speedups(SweepResults& r) {
  std::map<std::string, const ResultRow*> baseline;
  for (const ResultRow& row : r.rows)
    if (row.role == "baseline" && row.status == "ok" && !baseline.count(row.trace)) baseline[row.trace] = &row;
  for (ResultRow& row : r.rows) {
    const auto it = baseline.find(row.trace);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const bool known = it != baseline.end() && row.status == "ok";
    row.metrics["speedup"] = known ? it->second->metric("cycles") / row.metric("cycles") : nan;
    row.metrics["energy_reduction"] = known ? it->second->metric("energy_pj") / row.metric("energy_pj") : nan;
  }
}

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string value_cell(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

std::string metric_cell(double x) {
  if (std::isnan(x)) return "";
  if (std::floor(x) == x && std::fabs(x) < 9e15) return std::to_string(static_cast<long long>(x));
  return json(x).dump();  // shortest text that reads back to the same double
}

}  // namespace

const std::vector<std::string>& sweep_metric_names() {
  static const std::vector<std::string> names = {"cycles",      "energy_pj",    "filtered_ratio",
                                                 "exact_ratio", "rel_error",    "mass_recall",
                                                 "wall_seconds", "speedup",     "energy_reduction"};
  return names;
}

bool metric_larger_is_better(const std::string& metric) {
  return metric == "mass_recall" || metric == "speedup" || metric == "energy_reduction" ||
         metric == "filtered_ratio";
}

double ResultRow::metric(const std::string& name) const {
  const auto it = metrics.find(name);
  return it == metrics.end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
}

SweepResults collect_results(const SweepDir& dir) {
  const json manifest = read_manifest(dir);
  SweepResults r;
  r.keys = manifest.at("keys").get<std::vector<std::string>>();
  for (const json& p : manifest.at("points")) {
    ResultRow row;
    row.hash = p.at("hash").get<std::string>();
    row.role = p.at("role").get<std::string>();
    row.trace = p.at("trace").get<std::string>();
    for (const json& kv : p.at("values")) row.values.emplace_back(kv.at(0).get<std::string>(), kv.at(1));
    for (const std::string& m : sweep_metric_names()) row.metrics[m] = std::numeric_limits<double>::quiet_NaN();
    const PointStats result = p.contains("skipped") ? PointStats{} : read_point_stats(dir, row.hash);
    if (p.contains("skipped")) {
      row.status = "skipped";
      row.error = p.at("skipped").get<std::string>();
    } else if (result.stats) {
      row.status = "ok";
      for (const auto& [name, value] : metrics_of(*result.stats)) row.metrics[name] = value;
    } else if (const auto failure = read_json_file(dir.failure(row.hash))) {
      row.status = failure->value("timed_out", false) ? "timeout" : "failed";
      row.error = failure->value("error", "");
    } else {
      row.status = "missing";
      row.error = result.problem;  // an incomplete stats file says why
    }
    r.rows.push_back(std::move(row));
  }
  add_speedups(r);
  return r;
}

std::string summary_csv(const SweepResults& results) {
  std::string out = "hash,role,status,trace";
  for (const std::string& k : results.keys) out += "," + csv_cell(k);
  for (const std::string& m : sweep_metric_names()) out += "," + m;
  out += ",error\n";
  for (const ResultRow& row : results.rows) {
    out += row.hash + "," + row.role + "," + row.status + "," + csv_cell(row.trace);
    for (const std::string& k : results.keys) {
      std::string cell;
      for (const auto& [key, value] : row.values)
        if (key == k) cell = value.is_null() ? "" : value_cell(value);
      out += "," + csv_cell(cell);
    }
    for (const std::string& m : sweep_metric_names()) out += "," + metric_cell(row.metric(m));
    out += "," + csv_cell(row.error) + "\n";
  }
  return out;
}

std::map<std::string, size_t> status_counts(const SweepResults& results) {
  std::map<std::string, size_t> counts;
  for (const ResultRow& row : results.rows) ++counts[row.status];
  return counts;
}

std::vector<size_t> pareto_front(const SweepResults& results, const std::string& x, const std::string& y) {
  const double sx = metric_larger_is_better(x) ? -1 : 1, sy = metric_larger_is_better(y) ? -1 : 1;
  std::vector<size_t> candidates;
  for (size_t i = 0; i < results.rows.size(); ++i) {
    const ResultRow& r = results.rows[i];
    if (r.status == "ok" && std::isfinite(r.metric(x)) && std::isfinite(r.metric(y))) candidates.push_back(i);
  }
  std::vector<size_t> front;
  for (size_t i : candidates) {
    const ResultRow& a = results.rows[i];
    const double ax = sx * a.metric(x), ay = sy * a.metric(y);
    bool dominated = false;
    for (size_t j : candidates) {
      const ResultRow& b = results.rows[j];
      if (j == i || b.trace != a.trace) continue;
      const double bx = sx * b.metric(x), by = sy * b.metric(y);
      if (bx <= ax && by <= ay && (bx < ax || by < ay)) {
        dominated = true;
        break;
      }
    }
    if (!dominated) front.push_back(i);
  }
  std::stable_sort(front.begin(), front.end(), [&](size_t i, size_t j) {
    const ResultRow &a = results.rows[i], &b = results.rows[j];
    if (a.trace != b.trace) return a.trace < b.trace;
    return sx * a.metric(x) < sx * b.metric(x);
  });
  return front;
}

}  // namespace attnsim

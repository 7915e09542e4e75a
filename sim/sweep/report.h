#pragma once
// The results of a sweep: a row per manifest point with its status and metrics, read from
// the sweep directory; summary.csv, status counts and the Pareto front.
#include "sim/sweep/spec.h"
#include "sim/sweep/sweep_dir.h"

#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace attnsim {

// Metric columns of summary.csv, in order.
const std::vector<std::string>& sweep_metric_names();
// True for metrics where larger is better (mass_recall, speedup, ...).
bool metric_larger_is_better(const std::string& metric);

struct ResultRow {
  std::string hash, role, trace, status, error;  // status: ok|failed|timeout|skipped|missing
  KeyValues values;
  std::map<std::string, double> metrics;         // NaN when unknown
  double metric(const std::string& name) const;
};

struct SweepResults {
  std::vector<std::string> keys;  // swept keys
  std::vector<ResultRow> rows;     // one per manifest point, in sweep order
};

// Reads DIR/sweep.json, DIR/points and DIR/failed. Throws SweepError without a manifest.
SweepResults collect_results(const SweepDir& dir);
std::string summary_csv(const SweepResults& results);
// Counts of rows per status.
std::map<std::string, size_t> status_counts(const SweepResults& results);

// Indices of the rows (status ok, both metrics known) that no other row of the same
// trace dominates on (x, y), each minimized or maximized per metric_larger_is_better;
// sorted by trace, then x.
std::vector<size_t> pareto_front(const SweepResults& results, const std::string& x, const std::string& y);

}  // namespace attnsim

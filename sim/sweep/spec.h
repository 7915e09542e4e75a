#pragma once
// The sweep file (docs/sweeps.md, schema attnsim.sweep/1): a base config, traces, and the
// keys it sweeps (grid x zip), parsed and checked; the assignments of the swept keys it
// spans. Each assignment on each trace becomes a point (sim/sweep/points.h).
#include "core/errors.h"
#include "core/params.h"

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace attnsim {

inline constexpr const char* kSweepSchema = "attnsim.sweep/1";

// A bad sweep file, directory or option; one line naming the file and the JSON path.
// Class config by default (the sweep file is a config of configs; core/errors.h).
class SweepError : public Error {
 public:
  explicit SweepError(const std::string& message, ErrorClass c = ErrorClass::config) : Error(c, message) {}
};

// One swept key and its value at a point, in the order the sweep file lists the keys.
using KeyValues = std::vector<std::pair<std::string, json>>;

struct SweepSpec {
  std::string path;               // the sweep file as given
  std::string description;
  json base;                      // the base config JSON, not yet resolved
  std::string base_origin;        // its file, or "<sweep file>: base" when inline
  KeyValues set;                  // fixed overrides applied to every point
  std::optional<json> baseline;   // run once per trace: the reference for speedup
  std::string baseline_origin;
  std::vector<std::string> traces;        // as written in the sweep file
  std::vector<std::string> trace_paths;   // absolute
  std::vector<std::pair<std::string, std::vector<json>>> grid;  // Cartesian product
  std::vector<std::pair<std::string, std::vector<json>>> zip;   // element-wise
  json skip_if = json::array();   // list of conditions (docs/sweeps.md)
};

// Parses a sweep file; relative paths (base, baseline, traces) are taken relative to the
// sweep file's directory. Throws SweepError.
SweepSpec load_sweep(const std::string& path);
// The same from JSON text (the order of grid and zip keys is the text's order).
SweepSpec parse_sweep(const std::string& text, const std::string& path);

// Grid assignments crossed with zip assignments: the last grid key varies fastest, then
// the zip index. An empty grid and zip give one empty assignment.
std::vector<KeyValues> expand_assignments(const SweepSpec& spec);

// The swept key paths: grid keys then zip keys.
std::vector<std::string> swept_keys(const SweepSpec& spec);

}  // namespace attnsim

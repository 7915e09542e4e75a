#pragma once
// The points of a sweep: for each trace, the baseline and every assignment of the swept
// keys, resolved to a config (or skipped with the reason), each named by a content hash
// of its config and trace.
#include "sim/sweep/spec.h"

#include <string>
#include <vector>

namespace attnsim {

// Canonical text a point hash is taken over: compact JSON, keys sorted, integral floats
// written as integers, of {"config": resolved config without "description",
// "trace_sha256": ...}.
std::string canonical_point_text(const json& resolved_config, const std::string& trace_sha256);
// First 16 hex digits of the SHA-256 of canonical_point_text.
std::string point_hash(const json& resolved_config, const std::string& trace_sha256);

struct SweepPoint {
  std::string role = "point";   // "point", or "baseline" (the spec's baseline)
  std::string trace;            // as written in the sweep file
  std::string trace_path;       // absolute
  std::string trace_sha256;
  KeyValues values;             // the swept keys at this point
  json config;                  // resolved config (null when skipped)
  std::string hash;             // "" when skipped
  std::string skipped;          // why the point is not run, "" otherwise
};

// Every point of the sweep: for each trace, the baseline (when given) then the
// assignments. Opens each trace once (its SHA-256). Points whose config fails validation
// or matches skip_if are returned with `skipped` set. Throws SweepError.
std::vector<SweepPoint> expand_sweep(const SweepSpec& spec);

// The runnable points without duplicates (same hash once), in sweep order.
std::vector<const SweepPoint*> unique_runnable(const std::vector<SweepPoint>& points);

}  // namespace attnsim

#pragma once
// The sweep directory DIR: the manifest (sweep.json), each point's resolved config, its
// stats content-addressed under points/<hash>.json (so a rerun skips finished work and
// many machines can share DIR), failure records and logs, and summary.csv.
#include "sim/sweep/points.h"
#include "sim/sweep/spec.h"

#include <optional>
#include <string>
#include <vector>

namespace attnsim {

// Schemas of the JSON files a sweep writes in DIR: the manifest (prepare_sweep_dir) and a
// point's failure record (run_sweep).
inline constexpr const char* kSweepManifestSchema = "attnsim.sweep-manifest/1";
inline constexpr const char* kSweepFailureSchema = "attnsim.sweep-failure/1";

struct SweepDir {
  std::string root;  // absolute
  std::string manifest() const { return root + "/sweep.json"; }
  std::string config(const std::string& hash) const { return root + "/configs/" + hash + ".json"; }
  std::string stats(const std::string& hash) const { return root + "/points/" + hash + ".json"; }
  std::string failure(const std::string& hash) const { return root + "/failed/" + hash + ".json"; }
  std::string log(const std::string& hash) const { return root + "/logs/" + hash + ".log"; }
  std::string claim(const std::string& hash) const { return root + "/claims/" + hash + ".json"; }
  std::string summary() const { return root + "/summary.csv"; }
};
SweepDir sweep_dir(const std::string& path);  // makes the path absolute

// A point's result, DIR/points/<hash>.json. The point is done only when the file is a
// complete stats file (stats_problem in sim/stats.h): an empty or truncated file, as a
// crash or a full disk can leave, is no result.
struct PointStats {
  std::optional<json> stats;  // the stats, when complete
  std::string problem;        // otherwise: "" when there is no file, else "<path>: <why>"
};
PointStats read_point_stats(const SweepDir& dir, const std::string& hash);
bool point_done(const SweepDir& dir, const std::string& hash);

// Creates DIR/{configs,points,failed,logs,claims}, writes each runnable point's resolved
// config to DIR/configs/<hash>.json and the manifest DIR/sweep.json (atomically). Removes
// the temp files in DIR/points and DIR/claims whose writer is a dead process on this host.
void prepare_sweep_dir(const SweepDir& dir, const SweepSpec& spec, const std::vector<SweepPoint>& points);

}  // namespace attnsim

// The sweep directory: its paths, and preparing it (configs and manifest) for a sweep.
#include "sim/sweep/sweep_dir.h"

#include "core/file_io.h"
#include "core/json_input.h"
#include "sim/stats.h"
#include "sim/sweep/claims.h"

#include <filesystem>

namespace attnsim {

namespace fs = std::filesystem;

SweepDir sweep_dir(const std::string& path) {
  if (path.empty()) throw SweepError("the sweep directory is empty (--out DIR)", ErrorClass::usage);
  return {fs::absolute(fs::path(path)).lexically_normal().string()};
}

PointStats read_point_stats(const SweepDir& dir, const std::string& hash) {
  const std::string path = dir.stats(hash);
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(path, ec))) return {};
  std::string text;
  try {
    text = read_input_file(path, "stats file", kMaxStatsBytes);
  } catch (const InputFileError& e) {
    return {std::nullopt, e.what()};
  }
  const std::string incomplete = path + ": incomplete stats file: ";
  if (text.empty()) return {std::nullopt, incomplete + "empty"};
  const json stats = parse_json_or_discarded(text);
  if (stats.is_discarded()) return {std::nullopt, incomplete + "not valid JSON"};
  const std::string problem = stats_problem(stats);
  if (!problem.empty()) return {std::nullopt, incomplete + problem};
  return {stats, ""};
}

bool point_done(const SweepDir& dir, const std::string& hash) { return read_point_stats(dir, hash).stats.has_value(); }

namespace {

// A killed writer leaves <file>.tmp.<host>.<pid>: never a result. Only those of dead
// processes on this host go; a live writer (another runner, a job line) is about to rename
// its file into place, and another host's writers cannot be judged from here.
void remove_dead_temp_files(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::optional<TempOwner> owner = temp_file_owner(entry.path().filename().string());
    std::error_code ignored;
    if (owner && owner->host == this_host() && !local_process_alive(owner->pid)) fs::remove(entry.path(), ignored);
  }
}

// A file's text, or "" when it cannot be read (it is then written anew).
std::string existing_text(const std::string& path) {
  try {
    return read_input_file(path, "config file", kMaxConfigBytes);
  } catch (const InputFileError&) {
    return "";
  }
}

}  // namespace

void prepare_sweep_dir(const SweepDir& dir, const SweepSpec& spec, const std::vector<SweepPoint>& points) {
  for (const char* sub : {"configs", "points", "failed", "logs", "claims"})
    fs::create_directories(fs::path(dir.root) / sub);
  remove_dead_temp_files(fs::path(dir.root) / "points");
  remove_dead_temp_files(fs::path(dir.root) / "claims");
  for (const SweepPoint* p : unique_runnable(points)) {
    const std::string text = p->config.dump(2) + "\n";
    if (existing_text(dir.config(p->hash)) != text) write_file_atomically(dir.config(p->hash), text);
  }
  json manifest = {{"schema", kSweepManifestSchema},
                   {"sweep_file", fs::absolute(spec.path).lexically_normal().string()},
                   {"description", spec.description},
                   {"keys", swept_keys(spec)},
                   {"points", json::array()}};
  for (const SweepPoint& p : points) {
    json values = json::array();
    for (const auto& [key, value] : p.values) values.push_back({key, value});
    json entry = {{"hash", p.hash},       {"role", p.role},
                  {"trace", p.trace},     {"trace_path", p.trace_path},
                  {"trace_sha256", p.trace_sha256}, {"values", values}};
    if (!p.skipped.empty()) entry["skipped"] = p.skipped;
    manifest["points"].push_back(entry);
  }
  write_file_atomically(dir.manifest(), manifest.dump(2) + "\n");
}

}  // namespace attnsim

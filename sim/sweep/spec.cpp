// The sweep file: parsing and checking it (SweepSpec), and the assignments of the swept
// keys it spans.
#include "sim/sweep/spec.h"

#include "sim/sweep/conditions.h"
#include "core/file_io.h"
#include "core/json_input.h"
#include "core/json_text.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>

namespace attnsim {

namespace fs = std::filesystem;

namespace {

// `context` (the sweep file's key naming the file) follows any error.
std::string read_text(const std::string& path, const std::string& what, const std::string& context = "") {
  try {
    return read_input_file(path, what, kMaxConfigBytes);
  } catch (const InputFileError& e) {
    throw SweepError(std::string(e.what()) + (context.empty() ? "" : " (" + context + ")"), ErrorClass::io);
  }
}

std::string absolute_from(const fs::path& dir, const std::string& p) {
  const fs::path path(p);
  return (path.is_absolute() ? path : fs::absolute(dir / path)).lexically_normal().string();
}

using ojson = nlohmann::ordered_json;

const std::vector<std::string>& sweep_top_keys() {
  static const std::vector<std::string> keys = {"schema", "description", "base",    "set",    "baseline",
                                                "traces", "grid",        "zip",     "skip_if"};
  return keys;
}

// A config given in the sweep file: a path (relative to the sweep file) or an object.
json config_json(const ojson& v, const fs::path& dir, const std::string& sweep_path, const std::string& key,
                 std::string& origin) {
  if (v.is_string()) {
    origin = absolute_from(dir, v.get<std::string>());
    const std::string text = read_text(origin, "config file", sweep_path + ": " + key);
    try {
      return parse_json(text);
    } catch (const JsonInputError& e) {
      throw SweepError(json_error_text(origin, e));
    }
  }
  if (v.is_object()) {
    origin = sweep_path + ": " + key;
    return json(v);
  }
  throw SweepError(sweep_path + ": " + key + ": must be a config file path or a config object, got " + shown(v));
}

void check_key_path(const std::string& sweep_path, const std::string& where, const std::string& key) {
  if (!is_config_key(key))
    throw SweepError(sweep_path + ": " + where + "." + key +
                     ": not a config key (section.key or a top-level key; see docs/config.md)");
}

std::vector<std::pair<std::string, std::vector<json>>> value_lists(const ojson& obj, const std::string& sweep_path,
                                                                   const std::string& where) {
  if (!obj.is_object()) throw SweepError(sweep_path + ": " + where + ": must be an object of key path -> list");
  std::vector<std::pair<std::string, std::vector<json>>> out;
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    check_key_path(sweep_path, where, it.key());
    if (!it.value().is_array() || it.value().empty())
      throw SweepError(sweep_path + ": " + where + "." + it.key() + ": must be a non-empty list of values");
    std::vector<json> values;
    for (const ojson& v : it.value()) values.push_back(json(v));
    out.emplace_back(it.key(), std::move(values));
  }
  return out;
}

void check_no_repeated_keys(const SweepSpec& s) {
  std::map<std::string, std::string> seen;
  const auto note = [&](const std::string& key, const std::string& where) {
    const auto it = seen.find(key);
    if (it != seen.end())
      throw SweepError(s.path + ": " + where + "." + key + ": also given in " + it->second);
    seen[key] = where;
  };
  for (const auto& kv : s.set) note(kv.first, "set");
  for (const auto& kv : s.grid) note(kv.first, "grid");
  for (const auto& kv : s.zip) note(kv.first, "zip");
}

void check_zip_lengths(const SweepSpec& s) {
  for (const auto& kv : s.zip)
    if (kv.second.size() != s.zip.front().second.size())
      throw SweepError(s.path + ": zip." + kv.first + ": has " + std::to_string(kv.second.size()) +
                       " values, zip." + s.zip.front().first + " has " +
                       std::to_string(s.zip.front().second.size()) + " (zip lists must have equal lengths)");
}

}  // namespace

SweepSpec parse_sweep(const std::string& text, const std::string& path) {
  ojson j;
  try {
    j = parse_ordered_json(text);
  } catch (const JsonInputError& e) {
    throw SweepError(json_error_text(path, e));
  }
  if (!j.is_object()) throw SweepError(path + ": a sweep file must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find(sweep_top_keys().begin(), sweep_top_keys().end(), it.key()) == sweep_top_keys().end())
      throw SweepError(path + ": " + it.key() +
                       ": unknown key (schema, description, base, set, baseline, traces, grid, zip, skip_if)");
  if (!j.contains("schema") || j["schema"] != kSweepSchema)
    throw SweepError(path + ": schema: must be \"" + std::string(kSweepSchema) + "\"");
  const fs::path dir = fs::absolute(fs::path(path)).parent_path();

  SweepSpec s;
  s.path = path;
  if (j.contains("description")) {
    if (!j["description"].is_string()) throw SweepError(path + ": description: must be a string");
    s.description = j["description"].get<std::string>();
  }
  if (!j.contains("base")) throw SweepError(path + ": base: required (a config file path or a config object)");
  s.base = config_json(j["base"], dir, path, "base", s.base_origin);
  if (j.contains("baseline")) {
    s.baseline = config_json(j["baseline"], dir, path, "baseline", s.baseline_origin);
  }
  if (j.contains("set")) {
    if (!j["set"].is_object()) throw SweepError(path + ": set: must be an object of key path -> value");
    for (auto it = j["set"].begin(); it != j["set"].end(); ++it) {
      check_key_path(path, "set", it.key());
      s.set.emplace_back(it.key(), json(it.value()));
    }
  }
  if (!j.contains("traces") || !j["traces"].is_array() || j["traces"].empty())
    throw SweepError(path + ": traces: must be a non-empty list of trace paths");
  for (size_t i = 0; i < j["traces"].size(); ++i) {
    const ojson& t = j["traces"][i];
    if (!t.is_string()) throw SweepError(path + ": traces[" + std::to_string(i) + "]: must be a path");
    s.traces.push_back(t.get<std::string>());
    s.trace_paths.push_back(absolute_from(dir, t.get<std::string>()));
  }
  if (j.contains("grid")) s.grid = value_lists(j["grid"], path, "grid");
  if (j.contains("zip")) s.zip = value_lists(j["zip"], path, "zip");
  if (j.contains("skip_if")) {
    if (!j["skip_if"].is_array()) throw SweepError(path + ": skip_if: must be a list of conditions");
    s.skip_if = json(j["skip_if"]);
    for (size_t i = 0; i < s.skip_if.size(); ++i) {
      const std::string where = path + ": skip_if[" + std::to_string(i) + "]";
      if (!s.skip_if[i].is_object() || s.skip_if[i].empty())
        throw SweepError(where + ": must be an object of key path -> {operator: operand}");
      for (auto it = s.skip_if[i].begin(); it != s.skip_if[i].end(); ++it)
        if (!is_config_key(it.key())) throw SweepError(where + "." + it.key() + ": not a config key");
    }
  }
  check_no_repeated_keys(s);
  check_zip_lengths(s);
  return s;
}

SweepSpec load_sweep(const std::string& path) { return parse_sweep(read_text(path, "sweep file"), path); }

std::vector<KeyValues> expand_assignments(const SweepSpec& spec) {
  std::vector<KeyValues> grid_points = {KeyValues{}};
  for (const auto& [key, values] : spec.grid) {  // earlier keys outermost
    std::vector<KeyValues> next;
    for (const KeyValues& partial : grid_points)
      for (const json& v : values) {
        KeyValues kv = partial;
        kv.emplace_back(key, v);
        next.push_back(std::move(kv));
      }
    grid_points = std::move(next);
  }
  const size_t zip_length = spec.zip.empty() ? 0 : spec.zip.front().second.size();
  if (zip_length == 0) return grid_points;
  std::vector<KeyValues> out;
  for (const KeyValues& g : grid_points)
    for (size_t i = 0; i < zip_length; ++i) {
      KeyValues kv = g;
      for (const auto& [key, values] : spec.zip) kv.emplace_back(key, values[i]);
      out.push_back(std::move(kv));
    }
  return out;
}

std::vector<std::string> swept_keys(const SweepSpec& spec) {
  std::vector<std::string> keys;
  for (const auto& kv : spec.grid) keys.push_back(kv.first);
  for (const auto& kv : spec.zip) keys.push_back(kv.first);
  return keys;
}

}  // namespace attnsim

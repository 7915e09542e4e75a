// Sweep files, their expansion into points, point hashes, the sweep directory, job lines
// for GNU parallel and Slurm, and the results table. Running is in sim/sweep/runner.cpp.
#include "sim/sweep/sweep.h"

#include "sim/config.h"
#include "sim/stats.h"
#include "workloads/safetensors.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

namespace attnsim {

namespace fs = std::filesystem;

namespace {

// ---- small helpers ---------------------------------------------------------------------

std::string read_text(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SweepError(path + ": cannot open " + what);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string shown(const json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// nlohmann's parse error without its "[json.exception...] " tag.
std::string parse_message(const std::exception& e) {
  std::string m = e.what();
  const size_t tag_end = m.find("] ");
  if (m.rfind("[json.exception", 0) == 0 && tag_end != std::string::npos) m = m.substr(tag_end + 2);
  std::replace(m.begin(), m.end(), '\n', ' ');
  return m;
}

std::string absolute_from(const fs::path& dir, const std::string& p) {
  const fs::path path(p);
  return (path.is_absolute() ? path : fs::absolute(dir / path)).lexically_normal().string();
}

// Sets `value` at a key path of a config tree, making the section when absent.
void set_value_at(json& tree, const std::string& key_path, const json& value) {
  const size_t dot = key_path.find('.');
  if (dot == std::string::npos) {
    tree[key_path] = value;
    return;
  }
  json& section = tree[key_path.substr(0, dot)];
  if (!section.is_object()) section = json::object();
  section[key_path.substr(dot + 1)] = value;
}

// `over`'s sections and top-level keys laid over `tree`, key by key.
void overlay(json& tree, const json& over) {
  if (!over.is_object()) return;
  for (auto it = over.begin(); it != over.end(); ++it) {
    if (it.value().is_object() && tree.contains(it.key()) && tree[it.key()].is_object()) {
      for (auto kv = it.value().begin(); kv != it.value().end(); ++kv) tree[it.key()][kv.key()] = kv.value();
    } else {
      tree[it.key()] = it.value();
    }
  }
}

std::string override_text(const std::string& key, const json& value) { return key + "=" + value.dump(); }

// ---- parsing the sweep file --------------------------------------------------------------

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
    const std::string text = read_text(origin, "config file (" + sweep_path + ": " + key + ")");
    try {
      return json::parse(text);
    } catch (const json::parse_error& e) {
      throw SweepError(origin + ": not valid JSON: " + parse_message(e));
    }
  }
  if (v.is_object()) {
    origin = sweep_path + ": " + key;
    return json::parse(v.dump());
  }
  throw SweepError(sweep_path + ": " + key + ": must be a config file path or a config object, got " +
                   shown(json::parse(v.dump())));
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
    for (const ojson& v : it.value()) values.push_back(json::parse(v.dump()));
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

// ---- conditions --------------------------------------------------------------------------

// x op y for an ordered type; false with `known` cleared for an unknown operator.
template <typename T>
bool compare_ordered(const T& x, const std::string& op, const T& y, bool& known) {
  known = true;
  if (op == "==") return x == y;
  if (op == "!=") return x != y;
  if (op == "<") return x < y;
  if (op == "<=") return x <= y;
  if (op == ">") return x > y;
  if (op == ">=") return x >= y;
  known = false;
  return false;
}

bool compare_values(const json& a, const std::string& op, const json& b, const std::string& where) {
  bool known = false;
  bool result = false;
  if (a.is_number() && b.is_number()) {
    result = compare_ordered(a.get<double>(), op, b.get<double>(), known);
  } else if (a.is_string() && b.is_string()) {
    result = compare_ordered(a.get<std::string>(), op, b.get<std::string>(), known);
  } else if (op == "==" || op == "!=") {
    return (a == b) == (op == "==");
  }
  if (known) return result;
  throw SweepError(where + ": cannot compare " + shown(a) + " " + op + " " + shown(b));
}

// An operand naming a config key stands for that key's value at the point.
json operand_value(const json& operand, const json& tree, std::string& label) {
  if (operand.is_string() && is_config_key(operand.get<std::string>())) {
    const json v = value_at(tree, operand.get<std::string>());
    label = operand.get<std::string>() + " (" + shown(v) + ")";
    return v;
  }
  label = shown(operand);
  return operand;
}

// One key's tests {op: operand, ...}: true when all hold; `why` describes them.
bool key_tests_hold(const std::string& key, const json& tests, const json& tree, const std::string& where,
                    std::string& why) {
  if (!tests.is_object() || tests.empty())
    throw SweepError(where + ": must be an object of operator -> operand, e.g. {\">\": \"qk_unit.bits\"}");
  const json value = value_at(tree, key);
  for (auto t = tests.begin(); t != tests.end(); ++t) {
    const std::string& op = t.key();
    std::string label;
    bool holds;
    if (op == "in") {
      if (!t.value().is_array()) throw SweepError(where + ".in: must be a list of values");
      holds = false;
      for (const json& candidate : t.value())
        if (compare_values(value, "==", candidate, where)) holds = true;
      label = shown(t.value());
    } else if (op == "==" || op == "!=" || op == "<" || op == "<=" || op == ">" || op == ">=") {
      const json other = operand_value(t.value(), tree, label);
      holds = compare_values(value, op, other, where + "." + op);
    } else {
      throw SweepError(where + ": unknown operator '" + op + "' (==, !=, <, <=, >, >=, in)");
    }
    if (!holds) return false;
    why += (why.empty() ? "" : " and ") + key + " (" + shown(value) + ") " + op + " " + label;
  }
  return true;
}

// ---- results -------------------------------------------------------------------------------

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

std::optional<json> read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  try {
    return json::parse(in);
  } catch (const std::exception&) {
    return std::nullopt;
  }
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

// ---- public: keys ------------------------------------------------------------------------

bool is_config_key(const std::string& key_path) {
  const size_t dot = key_path.find('.');
  for (const SectionSpec& s : config_schema()) {
    const std::string section = dot == std::string::npos ? "" : key_path.substr(0, dot);
    const std::string key = dot == std::string::npos ? key_path : key_path.substr(dot + 1);
    if (s.name != section) continue;
    for (const ParamSpec& p : s.params)
      if (p.name == key) return true;
  }
  return false;
}

json value_at(const json& tree, const std::string& key_path) {
  const size_t dot = key_path.find('.');
  if (dot == std::string::npos) return tree.contains(key_path) ? tree.at(key_path) : json();
  const std::string section = key_path.substr(0, dot), key = key_path.substr(dot + 1);
  if (!tree.contains(section) || !tree.at(section).is_object() || !tree.at(section).contains(key)) return json();
  return tree.at(section).at(key);
}

// ---- public: the sweep file -----------------------------------------------------------------

SweepSpec parse_sweep(const std::string& text, const std::string& path) {
  ojson j;
  try {
    j = ojson::parse(text);
  } catch (const ojson::parse_error& e) {
    throw SweepError(path + ": not valid JSON: " + parse_message(e));
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
      s.set.emplace_back(it.key(), json::parse(it.value().dump()));
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
    s.skip_if = json::parse(j["skip_if"].dump());
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

std::string skip_reason(const json& skip_if, const json& tree, const std::string& origin) {
  for (size_t i = 0; i < skip_if.size(); ++i) {
    const std::string where = origin + "[" + std::to_string(i) + "]";
    const json& condition = skip_if[i];
    if (!condition.is_object() || condition.empty())
      throw SweepError(where + ": must be an object of key path -> {operator: operand}");
    std::string why;
    bool all = true;
    for (auto it = condition.begin(); it != condition.end() && all; ++it)
      all = key_tests_hold(it.key(), it.value(), tree, where + "." + it.key(), why);
    if (all) return "skip_if[" + std::to_string(i) + "]: " + why;
  }
  return "";
}

std::vector<std::string> swept_keys(const SweepSpec& spec) {
  std::vector<std::string> keys;
  for (const auto& kv : spec.grid) keys.push_back(kv.first);
  for (const auto& kv : spec.zip) keys.push_back(kv.first);
  return keys;
}

// ---- public: hashes ------------------------------------------------------------------------

namespace {

// Integral floats as integers, so that 1 and 1.0 hash alike.
json canonical(const json& v) {
  if (v.is_object()) {
    json out = json::object();
    for (auto it = v.begin(); it != v.end(); ++it) out[it.key()] = canonical(it.value());
    return out;
  }
  if (v.is_array()) {
    json out = json::array();
    for (const json& e : v) out.push_back(canonical(e));
    return out;
  }
  if (v.is_number_float()) {
    const double x = v.get<double>();
    if (std::floor(x) == x && std::fabs(x) < 9007199254740992.0) return static_cast<int64_t>(x);
  }
  return v;
}

}  // namespace

std::string canonical_point_text(const json& resolved_config, const std::string& trace_sha256) {
  json config = resolved_config;
  config.erase("description");
  return json{{"config", canonical(config)}, {"trace_sha256", trace_sha256}}.dump();
}

std::string point_hash(const json& resolved_config, const std::string& trace_sha256) {
  const std::string text = canonical_point_text(resolved_config, trace_sha256);
  return sha256_hex(reinterpret_cast<const uint8_t*>(text.data()), text.size()).substr(0, 16);
}

// ---- public: expansion ---------------------------------------------------------------------

namespace {

// A point from a config JSON and overrides: skipped (with the reason) or resolved.
SweepPoint make_point(const SweepSpec& spec, const json& config_json, const std::string& origin,
                      const KeyValues& overrides, const json& skip_if) {
  SweepPoint p;
  json tree = default_config().resolved;  // what skip_if sees: defaults, then the given keys
  overlay(tree, config_json);
  std::vector<std::string> texts;
  for (const auto& [key, value] : overrides) {
    set_value_at(tree, key, value);
    texts.push_back(override_text(key, value));
  }
  p.skipped = skip_reason(skip_if, tree, spec.path + ": skip_if");
  if (!p.skipped.empty()) return p;
  try {
    p.config = resolve_config(config_json, origin, texts).resolved;
  } catch (const ConfigError& e) {
    // A swept or set key reaches resolve_config as an override, which it reports as
    // "--set key: ..."; here the key came from the sweep file.
    std::string message = e.what();
    if (message.rfind("--set ", 0) == 0) message = message.substr(6);
    p.skipped = "invalid config: " + message;
  }
  return p;
}

}  // namespace

std::vector<SweepPoint> expand_sweep(const SweepSpec& spec) {
  const std::vector<KeyValues> assignments = expand_assignments(spec);
  const std::vector<std::string> keys = swept_keys(spec);
  std::vector<SweepPoint> points;
  for (size_t t = 0; t < spec.trace_paths.size(); ++t) {
    std::string sha;
    try {
      sha = SafetensorsFile(spec.trace_paths[t]).sha256();
    } catch (const std::exception& e) {
      throw SweepError(spec.path + ": traces[" + std::to_string(t) + "]: " + e.what());
    }
    const auto finish = [&](SweepPoint p) {
      p.trace = spec.traces[t];
      p.trace_path = spec.trace_paths[t];
      p.trace_sha256 = sha;
      if (p.skipped.empty()) p.hash = point_hash(p.config, sha);
      points.push_back(std::move(p));
    };
    if (spec.baseline) {
      SweepPoint b = make_point(spec, *spec.baseline, spec.baseline_origin, {}, json::array());
      b.role = "baseline";
      for (const std::string& key : keys) b.values.emplace_back(key, b.config.is_null() ? json() : value_at(b.config, key));
      finish(std::move(b));
    }
    for (const KeyValues& a : assignments) {
      KeyValues overrides = spec.set;
      overrides.insert(overrides.end(), a.begin(), a.end());
      SweepPoint p = make_point(spec, spec.base, spec.base_origin, overrides, spec.skip_if);
      p.values = a;
      finish(std::move(p));
    }
  }
  return points;
}

std::vector<const SweepPoint*> unique_runnable(const std::vector<SweepPoint>& points) {
  std::set<std::string> seen;
  std::vector<const SweepPoint*> out;
  for (const SweepPoint& p : points)
    if (p.skipped.empty() && seen.insert(p.hash).second) out.push_back(&p);
  return out;
}

// ---- public: the directory ---------------------------------------------------------------------

SweepDir sweep_dir(const std::string& path) {
  if (path.empty()) throw SweepError("the sweep directory is empty (--out DIR)");
  return {fs::absolute(fs::path(path)).lexically_normal().string()};
}

void prepare_sweep_dir(const SweepDir& dir, const SweepSpec& spec, const std::vector<SweepPoint>& points) {
  for (const char* sub : {"configs", "points", "failed", "logs"}) fs::create_directories(fs::path(dir.root) / sub);
  // A killed `attnsim run` leaves <hash>.json.tmp.<pid>: never a result, always removable.
  for (const auto& entry : fs::directory_iterator(fs::path(dir.root) / "points"))
    if (entry.path().filename().string().find(".json.tmp.") != std::string::npos) fs::remove(entry.path());
  for (const SweepPoint* p : unique_runnable(points)) {
    const std::string text = p->config.dump(2) + "\n";
    std::ifstream existing(dir.config(p->hash));
    std::stringstream old;
    if (existing) old << existing.rdbuf();
    if (!existing || old.str() != text) write_file_atomically(dir.config(p->hash), text);
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

// ---- public: job lines ---------------------------------------------------------------------------

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:+,@%") ==
                        std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::vector<std::string> point_run_argv(const std::string& binary, const SweepDir& dir, const SweepPoint& point,
                                        int threads) {
  return {binary, "run", "--config", dir.config(point.hash), "--trace", point.trace_path,
          "--out", dir.stats(point.hash), "--quiet", "--threads", std::to_string(threads)};
}

std::string point_job_line(const std::string& binary, const SweepDir& dir, const SweepPoint& point, int threads) {
  std::string line = "[ -e " + shell_quote(dir.stats(point.hash)) + " ] ||";
  for (const std::string& arg : point_run_argv(binary, dir, point, threads)) line += " " + shell_quote(arg);
  return line;
}

std::string seconds_text(double seconds) {
  std::ostringstream s;
  s << seconds;
  return s.str();
}

std::string slurm_script(const SweepDir& dir, const std::string& jobs_file, const std::string& script_path,
                         size_t job_count, size_t chunk, double timeout_seconds) {
  if (chunk == 0) chunk = 1;
  const size_t tasks = std::max<size_t>(1, (job_count + chunk - 1) / chunk);
  const long long minutes = std::max<long long>(1, static_cast<long long>(std::ceil(timeout_seconds * chunk / 60.0)));
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# attnsim sweep: " << job_count << " points in " << tasks << " array tasks of up to " << chunk
    << " (written by attnsim sweep --emit-slurm).\n"
    << "# Submit: sbatch " << shell_quote(script_path) << "   then: attnsim merge "
    << shell_quote(dir.root) << "\n"
    << "# Each line of the jobs file skips its point when the stats exist, so resubmitting is safe.\n"
    << "#SBATCH --job-name=attnsim-sweep\n"
    << "#SBATCH --array=0-" << tasks - 1 << "\n"
    << "#SBATCH --ntasks=1\n"
    << "#SBATCH --cpus-per-task=1\n"
    << "#SBATCH --time=" << minutes << "\n"
    << "#SBATCH --output=" << dir.root << "/logs/slurm-%A_%a.out\n"
    << "set -u\n"
    << "jobs_file=" << shell_quote(jobs_file) << "\n"
    << "chunk=" << chunk << "\n"
    << "task=${SLURM_ARRAY_TASK_ID:?run with sbatch, or set SLURM_ARRAY_TASK_ID}\n"
    << "first=$((task * chunk + 1))\n"
    << "last=$((first + chunk - 1))\n"
    << "status=0\n"
    << "while IFS= read -r line; do\n"
    << "  bash -c \"$line\" || status=1\n"
    << "done < <(sed -n \"${first},${last}p\" \"$jobs_file\")\n"
    << "exit $status\n";
  return s.str();
}

// ---- public: results ---------------------------------------------------------------------------

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
  const std::optional<json> manifest = read_json_file(dir.manifest());
  if (!manifest || !manifest->is_object() || manifest->value("schema", "") != kSweepManifestSchema)
    throw SweepError(dir.manifest() + ": no sweep manifest (run attnsim sweep SWEEP.json --out " + dir.root +
                     " or --emit-jobs first)");
  SweepResults r;
  r.keys = manifest->at("keys").get<std::vector<std::string>>();
  for (const json& p : manifest->at("points")) {
    ResultRow row;
    row.hash = p.at("hash").get<std::string>();
    row.role = p.at("role").get<std::string>();
    row.trace = p.at("trace").get<std::string>();
    for (const json& kv : p.at("values")) row.values.emplace_back(kv.at(0).get<std::string>(), kv.at(1));
    for (const std::string& m : sweep_metric_names()) row.metrics[m] = std::numeric_limits<double>::quiet_NaN();
    if (p.contains("skipped")) {
      row.status = "skipped";
      row.error = p.at("skipped").get<std::string>();
    } else if (const auto stats = read_json_file(dir.stats(row.hash))) {
      row.status = "ok";
      for (const auto& [name, value] : metrics_of(*stats)) row.metrics[name] = value;
    } else if (const auto failure = read_json_file(dir.failure(row.hash))) {
      row.status = failure->value("timed_out", false) ? "timeout" : "failed";
      row.error = failure->value("error", "");
    } else {
      row.status = "missing";
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

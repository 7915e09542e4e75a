// The points of a sweep: each assignment laid over the base config and resolved (or
// skipped), and the canonical text and hash that name a point.
#include "sim/sweep/points.h"

#include "sim/config.h"
#include "sim/sweep/conditions.h"
#include "workloads/safetensors.h"

#include <cmath>
#include <set>

namespace attnsim {

namespace {

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
    } catch (const TraceError& e) {  // keeps its class: a bad trace, or one that cannot be read
      throw SweepError(spec.path + ": traces[" + std::to_string(t) + "]: " + e.what(), e.error_class());
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

}  // namespace attnsim

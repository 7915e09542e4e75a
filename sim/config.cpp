// Config reader: validates JSON against the units' parameter tables, applies `--set`
// overrides, fills defaults and stores the resolved tree into the per-unit params.
// Every name and default is written once, in the tables beside the units; this file only
// interprets them. docs/config.md is generated from the same tables (sim/config_doc.cpp).
#include "sim/config.h"

#include "core/did_you_mean.h"
#include "core/file_io.h"
#include "core/json_input.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <set>
#include <sstream>

namespace attnsim {

namespace {

// ---- sections ---------------------------------------------------------------------

// The top-level keys, bound to the Config itself.
const ParamTable<Config>& top_level_table() {
  static const ParamTable<Config> t{
      "", "Top-level keys.",
      {field(&Config::schema, "schema", json())  // no default: a config says which schema it follows
           .one_of({kConfigSchema})
           .doc("Config format and version; required."),
       field(&Config::description, "description", "")
           .doc("Free text: what this config models (presets say which parameters are our reading)."),
       field(&Config::clock_ghz, "clock_ghz", 1.0)
           .unit("GHz")
           .doc("Clock frequency: converts cycles to seconds and static power to energy.")
           .min(plausible::kClockGhzMin)
           .max(plausible::kClockGhzMax)}};
  return t;
}

template <class P>
ConfigSection section_of(const ParamTable<P>& table, P Config::*member) {
  return {table.spec(), [&table, member](Config& c, const json& s) { table.load(c.*member, s); }};
}

const SectionSpec* find_section(const std::string& name) {
  for (const SectionSpec& s : config_schema())
    if (s.name == name) return &s;
  return nullptr;
}

const ParamSpec* find_param(const SectionSpec& section, const std::string& key) {
  for (const ParamSpec& p : section.params)
    if (p.name == key) return &p;
  return nullptr;
}

// ---- messages ---------------------------------------------------------------------

std::string unknown_key_rule(const std::string& key, const std::vector<std::string>& candidates) {
  const std::string suggestion = did_you_mean(key, candidates);
  if (suggestion.empty()) return "unknown key";
  return "unknown key (did you mean '" + suggestion + "'?)";
}

std::string quoted_list(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", \"" : "\"") + items[i] + "\"";
  return out;
}

// Names where a value came from: the file ("c.json: qk_unit.lanes") or the command line
// ("--set qk_unit.lanes") for keys given by an override.
class Where {
 public:
  Where(std::string origin, std::set<std::string> overridden)
      : origin_(std::move(origin)), overridden_(std::move(overridden)) {}

  // `key_path` is the section.key the value belongs to; `path` may add [i][j].
  [[noreturn]] void fail(const std::string& key_path, const std::string& path,
                         const std::string& rule) const {
    if (overridden_.count(key_path)) throw ConfigError("--set " + path + ": " + rule);
    throw ConfigError(origin_ + ": " + path + ": " + rule);
  }
  [[noreturn]] void fail(const std::string& key_path, const std::string& rule) const {
    fail(key_path, key_path, rule);
  }
  [[noreturn]] void fail_root(const std::string& rule) const {
    throw ConfigError(origin_ + ": " + rule);
  }

 private:
  std::string origin_;
  std::set<std::string> overridden_;
};

// ---- value checks -------------------------------------------------------------------

// Checks one number against the declared range (and integrality for integer-only kinds).
void check_number(const ParamSpec& p, const json& v, const Where& where, const std::string& key_path,
                  const std::string& path, bool must_be_integer) {
  if (!v.is_number()) where.fail(key_path, path, "must be a number, got " + shown(v));
  const double x = v.get<double>();
  if (must_be_integer && std::floor(x) != x)
    where.fail(key_path, path, "must be an integer, got " + shown(v));
  if (p.min) {
    if (p.min_exclusive && !(x > *p.min))
      where.fail(key_path, path, "must be > " + number_text(*p.min) + ", got " + shown(v));
    if (!p.min_exclusive && !(x >= *p.min))
      where.fail(key_path, path, "must be >= " + number_text(*p.min) + ", got " + shown(v));
  }
  if (p.max && !(x <= *p.max))
    where.fail(key_path, path, "must be <= " + number_text(*p.max) + ", got " + shown(v));
  // The params structs hold int; per-head integers (margin, theta) are score-domain
  // values, held exactly as doubles up to 2^53 (B = 16 scores reach d * 2^30).
  const bool per_head = p.kind == ParamKind::PerHead || p.kind == ParamKind::PerLayer;
  const long long limit = per_head ? (1LL << 53) : INT_MAX;
  const long long low = per_head ? -(1LL << 53) : INT_MIN;
  if (must_be_integer && x > double(limit))
    where.fail(key_path, path, "must be <= " + std::to_string(limit) + ", got " + shown(v));
  if (must_be_integer && x < double(low))
    where.fail(key_path, path, "must be >= " + std::to_string(low) + ", got " + shown(v));
}

// An integral number in canonical integer form (2.0 -> 2), anything else unchanged.
json as_integer(const json& v) {
  if (v.is_number_float()) return (long long)v.get<double>();
  return v;
}

void check_list_of_numbers(const ParamSpec& p, const json& list, const Where& where,
                           const std::string& key_path, const std::string& path) {
  if (list.empty()) where.fail(key_path, path, "must not be an empty list");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string at = path + "[" + std::to_string(i) + "]";
    if (!list[i].is_number()) where.fail(key_path, at, "must be a number, got " + shown(list[i]));
    check_number(p, list[i], where, key_path, at, p.integer_only);
  }
}

// PerHead: a number, a list of H numbers, or a list of L non-empty lists of H numbers.
void check_per_head(const ParamSpec& p, const json& v, const Where& where, const std::string& key_path) {
  if (v.is_number()) return check_number(p, v, where, key_path, key_path, p.integer_only);
  if (!v.is_array())
    where.fail(key_path, "must be a number, a list of numbers or a list of lists of numbers, got " +
                             shown(v));
  if (v.empty()) where.fail(key_path, "must not be an empty list");
  if (!v[0].is_array()) return check_list_of_numbers(p, v, where, key_path, key_path);
  for (size_t l = 0; l < v.size(); ++l) {
    const std::string at = key_path + "[" + std::to_string(l) + "]";
    if (!v[l].is_array()) where.fail(key_path, at, "must be a list of numbers, got " + shown(v[l]));
    check_list_of_numbers(p, v[l], where, key_path, at);
  }
}

// PerLayer: a number or a list of L numbers.
void check_per_layer(const ParamSpec& p, const json& v, const Where& where, const std::string& key_path) {
  if (v.is_number()) return check_number(p, v, where, key_path, key_path, p.integer_only);
  if (!v.is_array()) where.fail(key_path, "must be a number or a list of numbers, got " + shown(v));
  check_list_of_numbers(p, v, where, key_path, key_path);
}

// Validates one given value and returns it in resolved form.
json checked_value(const ParamSpec& p, const json& v, const Where& where, const std::string& key_path) {
  switch (p.kind) {
    case ParamKind::Integer:
      if (!v.is_number()) where.fail(key_path, "must be an integer, got " + shown(v));
      check_number(p, v, where, key_path, key_path, true);
      return as_integer(v);
    case ParamKind::Number:
      check_number(p, v, where, key_path, key_path, false);
      return v;
    case ParamKind::String:
      if (!v.is_string()) where.fail(key_path, "must be a string, got " + shown(v));
      if (!p.choices.empty() &&
          std::find(p.choices.begin(), p.choices.end(), v.get<std::string>()) == p.choices.end())
        where.fail(key_path, (p.choices.size() == 1 ? "must be " : "must be one of ") +
                                 quoted_list(p.choices) + ", got " + shown(v));
      return v;
    case ParamKind::Boolean:
      if (!v.is_boolean()) where.fail(key_path, "must be a boolean, got " + shown(v));
      return v;
    case ParamKind::PerHead:
      check_per_head(p, v, where, key_path);
      return v;
    case ParamKind::PerLayer:
      check_per_layer(p, v, where, key_path);
      return v;
  }
  return v;
}

// ---- structure ----------------------------------------------------------------------

std::vector<std::string> key_names(const SectionSpec& s) {
  std::vector<std::string> names;
  for (const ParamSpec& p : s.params) names.push_back(p.name);
  return names;
}

// Keys allowed at the top: the top-level keys and the section names.
std::vector<std::string> top_level_names() {
  std::vector<std::string> names = key_names(config_schema().front());
  for (const SectionSpec& s : config_schema())
    if (!s.name.empty()) names.push_back(s.name);
  return names;
}

// Root is an object, every section an object, no unknown section or key.
void check_structure(const json& root, const std::string& origin) {
  const Where where(origin, {});
  if (!root.is_object()) where.fail_root("the config must be a JSON object, got " + shown(root));
  const SectionSpec& top = config_schema().front();
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (find_param(top, it.key())) continue;
    const SectionSpec* section = find_section(it.key());
    if (!section) where.fail(it.key(), unknown_key_rule(it.key(), top_level_names()));
    if (!it.value().is_object())
      where.fail(it.key(), "must be an object, got " + shown(it.value()));
    for (auto kv = it.value().begin(); kv != it.value().end(); ++kv)
      if (!find_param(*section, kv.key()))
        where.fail(dotted(it.key(), kv.key()), unknown_key_rule(kv.key(), key_names(*section)));
  }
}

[[noreturn]] void malformed_override(const std::string& text) {
  throw ConfigError("--set " + text + ": malformed override, expected section.key=value");
}

// A byte that is not UTF-8 would make the value unprintable (nlohmann refuses to write
// it), so it is refused here, naming the key when the key itself is readable.
void check_override_utf8(const std::string& text, size_t eq) {
  if (const std::string bad = utf8_problem(text.substr(0, eq)); !bad.empty())
    throw ConfigError("--set: key is not valid UTF-8 (" + bad + ")");
  if (const std::string bad = utf8_problem(text.substr(eq + 1)); !bad.empty())
    throw ConfigError("--set " + text.substr(0, eq) + ": value is not valid UTF-8 (" + bad + ")");
}

// The value of "a.b=value": JSON when it parses, else the text as a string (a bare
// bit_parallel). JSON that breaks a rule (too deep, duplicate key, a number beyond a
// double) is an error naming the key rather than a string.
json override_value(const std::string& path, const std::string& value_text) {
  try {
    return parse_json(value_text);
  } catch (const JsonInputError& e) {
    if (e.path().empty() && e.reason().rfind("not valid JSON", 0) == 0) return value_text;
    const std::string at = e.path().empty() ? path : path + (e.path()[0] == '[' ? "" : ".") + e.path();
    throw ConfigError("--set " + at + ": " + e.reason());
  }
}

// Applies one "a.b=value" to `root`; returns the dotted path it set.
std::string apply_override(json& root, const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) malformed_override(text);
  check_override_utf8(text, eq);
  const std::string path = text.substr(0, eq);
  const std::string value_text = text.substr(eq + 1);

  const size_t dot = path.find('.');
  const SectionSpec& top = config_schema().front();
  if (dot == std::string::npos) {  // a top-level key (clock_ghz)
    if (find_param(top, path)) {
      root[path] = override_value(path, value_text);
      return path;
    }
    if (find_section(path)) malformed_override(text);  // a whole section: no key named
    throw ConfigError("--set " + path + ": " + unknown_key_rule(path, top_level_names()));
  }
  const std::string section_name = path.substr(0, dot);
  const std::string key = path.substr(dot + 1);
  if (section_name.empty() || key.empty() || key.find('.') != std::string::npos)
    malformed_override(text);
  const SectionSpec* section = find_section(section_name);
  if (!section || section_name.empty()) {
    const std::string suggestion = did_you_mean(section_name, top_level_names());
    throw ConfigError("--set " + path + ": unknown section '" + section_name + "'" +
                      (suggestion.empty() ? "" : " (did you mean '" + suggestion + "'?)"));
  }
  if (!find_param(*section, key))
    throw ConfigError("--set " + path + ": " + unknown_key_rule(key, key_names(*section)));
  root[section_name][key] = override_value(path, value_text);
  return path;
}

// The section object of `root` (empty when the config omits it).
json given_section(const json& root, const SectionSpec& s) {
  if (s.name.empty()) return root;
  return root.contains(s.name) ? root.at(s.name) : json::object();
}

// Every key of every section: the given value checked, or the default.
json resolved_tree(const json& root, const Where& where) {
  json out = json::object();
  for (const SectionSpec& s : config_schema()) {
    const json given = given_section(root, s);
    json& target = s.name.empty() ? out : (out[s.name] = json::object());
    for (const ParamSpec& p : s.params) {
      const std::string key_path = dotted(s.name, p.name);
      if (given.contains(p.name))
        target[p.name] = checked_value(p, given.at(p.name), where, key_path);
      else if (!p.default_value.is_null())
        target[p.name] = p.default_value;
    }
  }
  return out;
}

// Its value is checked like any other (one allowed choice); only presence is special.
void check_schema_present(const json& resolved, const Where& where) {
  if (!resolved.contains("schema"))
    where.fail_root(std::string("missing schema (expected \"schema\": \"") + kConfigSchema + "\")");
}

// Rules that involve more than one key (listed by cross_field_rules() for the docs).
void check_cross_field(const json& r, const Where& where) {
  const json& qk = r.at("qk_unit");
  const int bits = qk.at("bits").get<int>();
  const int estimate_bits = qk.at("estimate_bits").get<int>();
  if (estimate_bits > bits)
    where.fail("qk_unit.estimate_bits", "must be <= qk_unit.bits (" + std::to_string(bits) +
                                            "), got " + std::to_string(estimate_bits));
  if (qk.at("type") == "bit_parallel" && qk.at("mode") != "dense")
    where.fail("qk_unit.mode", "bit_parallel supports only \"dense\", got " + shown(qk.at("mode")));
  const json& lowrank = r.at("lowrank_unit");
  if (lowrank.contains("features") && lowrank.at("features").get<int>() % 2 != 0)
    where.fail("lowrank_unit.features", "must be even (m/2 features of each sign), got " + shown(lowrank.at("features")));
  const bool lowrank_on = lowrank.at("enabled").get<bool>();
  const std::string source = r.at("candidates").at("source").get<std::string>();
  if (source == "none" && !lowrank_on)
    where.fail("candidates.source", "\"none\" scores no key: it needs lowrank_unit.enabled = true (pure low-rank attention)");
  const bool tree_tc = source == "tree" && r.at("tree_engine").at("attention") == "tc";
  if (tree_tc && lowrank_on)
    where.fail("lowrank_unit.enabled", "needs the QK unit's survivors; tree_engine.attention \"tc\" attends node aggregates instead");
  if (tree_tc && r.at("skim_controller").at("mode") == "fca")
    where.fail("skim_controller.mode", "fca scores tokens by their attention probabilities; tree_engine.attention \"tc\" has none per key");
}

Config config_from_resolved(json resolved, const std::string& origin) {
  Config c;
  c.origin = origin;
  for (const ConfigSection& section : config_sections())
    section.load(c, section.spec.name.empty() ? resolved : resolved.at(section.spec.name));
  c.resolved = std::move(resolved);
  return c;
}

}  // namespace

// ---- public API -----------------------------------------------------------------------

const std::vector<ConfigSection>& config_sections() {
  static const std::vector<ConfigSection> sections = {
      {top_level_table().spec(), [](Config& c, const json& s) { top_level_table().load(c, s); }},
      section_of(DramParams::table(), &Config::dram),
      section_of(SramParams::table(), &Config::sram),
      section_of(KvTilingParams::table(), &Config::kv_tiling),
      section_of(CandidatesParams::table(), &Config::candidates),
      section_of(TreeEngineParams::table(), &Config::tree_engine),
      section_of(LshUnitParams::table(), &Config::lsh_unit),
      section_of(QkUnitParams::table(), &Config::qk_unit),
      section_of(ComparatorParams::table(), &Config::comparator),
      section_of(ReuseBufferParams::table(), &Config::reuse_buffer),
      section_of(SoftmaxParams::table(), &Config::softmax),
      section_of(AvUnitParams::table(), &Config::av_unit),
      section_of(LowRankParams::table(), &Config::lowrank_unit),
      section_of(SkimControllerParams::table(), &Config::skim_controller),
      section_of(GemmEngineParams::table(), &Config::gemm_engine),
      section_of(ModelParams::table(), &Config::model),
      section_of(PipelineParams::table(), &Config::pipeline),
      section_of(EnergyParams::table(), &Config::energy),
      section_of(QualityParams::table(), &Config::quality)};
  return sections;
}

const std::vector<SectionSpec>& config_schema() {
  static const std::vector<SectionSpec> schema = [] {
    std::vector<SectionSpec> specs;
    for (const ConfigSection& s : config_sections()) specs.push_back(s.spec);
    return specs;
  }();
  return schema;
}

const std::vector<std::string>& cross_field_rules() {
  static const std::vector<std::string> rules = {
      "`qk_unit.estimate_bits` must be <= `qk_unit.bits` (P <= B).",
      "`qk_unit.type: \"bit_parallel\"` supports only `qk_unit.mode: \"dense\"`.",
      "`comparator.margin`, when given, overrides `comparator.gamma`.",
      "`lowrank_unit.features` must be even.",
      "`candidates.source: \"none\"` needs `lowrank_unit.enabled: true`.",
      "`tree_engine.attention: \"tc\"` (with `candidates.source: \"tree\"`) composes with neither the low-rank unit nor FCA.",
      "A K/V-tiled run (`kv_tiling.mode: \"always\"`, or a head that does not fit in `sram.capacity_kib`) needs `candidates.source: \"all\"`, `lowrank_unit.enabled: false` and `skim_controller.mode` other than `\"fca\"`; `kv_tiling.query_tile` must be a multiple of `qk_unit.query_block`; in latte mode `kv_tiling.key_tile` must be a multiple of `reuse_buffer.entries`; one K/V tile and one query row (Q and row state) must fit in `sram.capacity_kib` (checked when the trace is known)."};
  return rules;
}

Config resolve_config(const json& j, const std::string& origin,
                      const std::vector<std::string>& overrides) {
  check_structure(j, origin);
  json root = j;
  std::set<std::string> overridden;
  for (const std::string& text : overrides) overridden.insert(apply_override(root, text));
  const Where where(origin, overridden);
  const json resolved = resolved_tree(root, where);
  check_schema_present(resolved, where);
  check_cross_field(resolved, where);
  Config c = config_from_resolved(resolved, origin);
  c.overridden = overridden;
  return c;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::string text;
  try {
    text = read_input_file(path, "config file", kMaxConfigBytes);
  } catch (const InputFileError& e) {
    throw ConfigError(e.what(), ErrorClass::io);
  }
  json j;
  try {
    j = parse_json(text);
  } catch (const JsonInputError& e) {
    throw ConfigError(json_error_text(path, e));
  }
  return resolve_config(j, path, overrides);
}

Config default_config() { return resolve_config(json{{"schema", kConfigSchema}}, "<defaults>"); }

std::string config_location(const std::string& origin, const std::string& path) {
  return origin == Config::kSetOrigin ? origin + " " + path : origin + ": " + path;
}

void Config::fail(const std::string& key, const std::string& path, const std::string& rule) const {
  throw ConfigError(config_location(origin_of(key), path) + ": " + rule);
}

double per_head_value(const json& value, int layer, int head, int layers, int heads,
                      const std::string& origin, const std::string& path) {
  const auto fail = [&](const std::string& at, const std::string& rule) -> void {
    throw ConfigError(config_location(origin, at) + ": " + rule);
  };
  if (value.is_number()) return value.get<double>();
  if (!value.is_array() || value.empty()) {
    fail(path, "must be a number or a list, got " + shown(value));
  }
  if (!value[0].is_array()) {
    if (int(value.size()) != heads)
      fail(path, "has " + std::to_string(value.size()) + " values, the trace has " +
                     std::to_string(heads) + " heads");
    return value.at(size_t(head)).get<double>();
  }
  if (int(value.size()) != layers)
    fail(path, "has " + std::to_string(value.size()) + " lists, the trace has " +
                   std::to_string(layers) + " layers");
  const json& row = value.at(size_t(layer));
  const std::string row_path = path + "[" + std::to_string(layer) + "]";
  if (!row.is_array()) fail(row_path, "must be a list of numbers, got " + shown(row));
  if (int(row.size()) != heads)
    fail(row_path, "has " + std::to_string(row.size()) + " values, the trace has " +
                       std::to_string(heads) + " heads");
  return row.at(size_t(head)).get<double>();
}

}  // namespace attnsim

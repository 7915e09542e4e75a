// Technology table loading/validation and the Accelergy-style energy model
// (see docs/energy.md for the formula, the table format and every recipe).
#include "sim/energy.h"

#include "core/json_input.h"
#include "sim/config.h"

#include "core/file_io.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <sstream>

namespace attnsim {
namespace {

constexpr const char* kTechSchema = "attnsim.tech/1";

// Primitives whose energy comes from the storage geometry, not from a fixed entry.
constexpr const char* kSramAccess = "sram_access";
constexpr const char* kReuseAccess = "reuse_access";
constexpr const char* kDramBit = "dram_bit";

// "sram_<kib>kib_<bits>b": one access of <bits> bits to an SRAM (bank) of <kib> KiB, from
// the table's SRAM curve (a unit's own buffer of a size the table states).
bool parse_sized_sram(const std::string& name, double* kib, int* bits) {
  const std::string prefix = "sram_";
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  const size_t k = name.find("kib_", prefix.size());
  if (k == std::string::npos || name.back() != 'b') return false;
  const std::string kib_text = name.substr(prefix.size(), k - prefix.size());
  const std::string bits_text = name.substr(k + 4, name.size() - k - 5);
  if (kib_text.empty() || bits_text.empty()) return false;
  for (char ch : kib_text + bits_text)
    if (ch < '0' || ch > '9') return false;
  *kib = std::stod(kib_text);
  *bits = std::stoi(bits_text);
  return *kib > 0 && *bits > 0;
}

bool is_derived_primitive(const std::string& name) {
  double kib;
  int bits;
  return name == kSramAccess || name == kReuseAccess || name == kDramBit || parse_sized_sram(name, &kib, &bits);
}

// Reads one table, remembering its origin so every error is "<origin>: <path>: <rule>".
class TableReader {
 public:
  explicit TableReader(std::string origin) : origin_(std::move(origin)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& rule) const {
    throw EnergyError(origin_ + ": " + (path.empty() ? std::string("(top level)") : path) + ": " + rule);
  }

  const nlohmann::json& object(const nlohmann::json& parent, const std::string& key,
                               const std::string& path) const {
    if (!parent.contains(key)) fail(path, "missing (required)");
    const nlohmann::json& v = parent.at(key);
    if (!v.is_object()) fail(path, "must be an object");
    return v;
  }

  // A finite number >= 0 (or > 0 when `positive`).
  double number(const nlohmann::json& v, const std::string& path, bool positive = false) const {
    if (!v.is_number()) fail(path, "must be a number");
    const double x = v.get<double>();
    if (!std::isfinite(x)) fail(path, "must be finite");
    if (positive && !(x > 0)) fail(path, "must be > 0, got " + format(x));
    if (x < 0) fail(path, "must be >= 0, got " + format(x));
    return x;
  }

  double number_member(const nlohmann::json& obj, const std::string& key, const std::string& path,
                       bool positive = false) const {
    if (!obj.contains(key)) fail(join(path, key), "missing (required)");
    return number(obj.at(key), join(path, key), positive);
  }

  // Every published or estimated number carries a non-empty "source" string beside it.
  void require_source(const nlohmann::json& obj, const std::string& path) const {
    const std::string p = join(path, "source");
    if (!obj.contains("source")) fail(p, "missing: every value needs a source string");
    if (!obj.at("source").is_string() || obj.at("source").get<std::string>().empty())
      fail(p, "must be a non-empty string");
  }

  void only_keys(const nlohmann::json& obj, std::initializer_list<const char*> allowed,
                 const std::string& path) const {
    for (const auto& item : obj.items()) {
      const bool known = std::any_of(allowed.begin(), allowed.end(),
                                     [&](const char* a) { return item.key() == a; });
      if (!known) fail(join(path, item.key()), "unknown key");
    }
  }

  static std::string join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

  static std::string format(double x) {
    std::ostringstream s;
    s << x;
    return s.str();
  }

 private:
  std::string origin_;
};

void parse_primitives(const TableReader& r, const nlohmann::json& j, TechTable& t) {
  const std::string path = "primitives_pj";
  for (const auto& item : r.object(j, "primitives_pj", path).items()) {
    const std::string p = TableReader::join(path, item.key());
    if (is_derived_primitive(item.key()))
      r.fail(p, "reserved name of a derived primitive (sram_access, reuse_access, dram_bit, sram_<kib>kib_<bits>b)");
    if (!item.value().is_object()) r.fail(p, "must be an object {\"pj\": x, \"source\": \"...\"}");
    r.only_keys(item.value(), {"pj", "source"}, p);
    t.primitive_pj[item.key()] = r.number_member(item.value(), "pj", p);
    r.require_source(item.value(), p);
  }
}

// SRAM points must be > 0 (log-log interpolation) and at distinct capacities.
void parse_sram(const TableReader& r, const nlohmann::json& j, TechTable& t) {
  const std::string path = "sram_64bit_access_pj";
  if (!j.contains(path)) r.fail(path, "missing (required)");
  const nlohmann::json& points = j.at(path);
  if (!points.is_array() || points.size() < 2)
    r.fail(path, "must be a list of at least two {\"kib\", \"pj\", \"source\"} points");
  for (size_t i = 0; i < points.size(); ++i) {
    const std::string p = path + "[" + std::to_string(i) + "]";
    if (!points[i].is_object()) r.fail(p, "must be an object {\"kib\": x, \"pj\": y, \"source\": \"...\"}");
    r.only_keys(points[i], {"kib", "pj", "source"}, p);
    const double kib = r.number_member(points[i], "kib", p, true);
    const double pj = r.number_member(points[i], "pj", p, true);
    r.require_source(points[i], p);
    t.sram_64bit_pj.emplace_back(kib, pj);
  }
  std::sort(t.sram_64bit_pj.begin(), t.sram_64bit_pj.end());
  for (size_t i = 1; i < t.sram_64bit_pj.size(); ++i)
    if (t.sram_64bit_pj[i].first == t.sram_64bit_pj[i - 1].first)
      r.fail(path, "two points at " + TableReader::format(t.sram_64bit_pj[i].first) + " KiB");
}

void parse_dram(const TableReader& r, const nlohmann::json& j, TechTable& t) {
  const std::string path = "dram_pj_per_bit";
  const nlohmann::json& d = r.object(j, path, path);
  r.only_keys(d, {"pj", "source"}, path);
  t.dram_pj_per_bit = r.number_member(d, "pj", path);
  r.require_source(d, path);
}

// Recipes: actions.<module>.<action> = {"<primitive>": multiplicity, ..., "source": "..."}.
// Primitives are parsed first so that recipes can be checked against them.
void parse_actions(const TableReader& r, const nlohmann::json& j, TechTable& t) {
  const std::string path = "actions";
  for (const auto& module : r.object(j, path, path).items()) {
    const std::string mp = TableReader::join(path, module.key());
    if (!module.value().is_object()) r.fail(mp, "must be an object of actions");
    auto& actions = t.actions[module.key()];
    for (const auto& action : module.value().items()) {
      const std::string ap = TableReader::join(mp, action.key());
      if (!action.value().is_object())
        r.fail(ap, "must be an object {\"<primitive>\": multiplicity, ..., \"source\": \"...\"}");
      r.require_source(action.value(), ap);
      auto& recipe = actions[action.key()];
      for (const auto& term : action.value().items()) {
        if (term.key() == "source") continue;
        const std::string tp = TableReader::join(ap, term.key());
        if (!is_derived_primitive(term.key()) && !t.primitive_pj.count(term.key()))
          r.fail(tp, "unknown primitive");
        recipe[term.key()] = r.number(term.value(), tp);
      }
      if (recipe.empty()) r.fail(ap, "recipe has no primitive");
    }
  }
}

// The declaration of the config key "section.key" (or a top-level "key"), or nullptr.
const ParamSpec* find_config_param(const std::string& dotted) {
  const size_t dot = dotted.find('.');
  const std::string section = dot == std::string::npos ? "" : dotted.substr(0, dot);
  const std::string key = dot == std::string::npos ? dotted : dotted.substr(dot + 1);
  for (const SectionSpec& s : config_schema()) {
    if (s.name != section) continue;
    for (const ParamSpec& p : s.params)
      if (p.name == key) return &p;
  }
  return nullptr;
}

// static_mw.<m>.at: {"<config key>": reference value > 0, ...}. Keys are checked against
// the config declarations here, so a typo fails when the table loads.
std::map<std::string, double> parse_static_at(const TableReader& r, const nlohmann::json& at,
                                              const std::string& path) {
  if (!at.is_object()) r.fail(path, "must be an object {\"<config key>\": reference value, ...}");
  std::map<std::string, double> refs;
  for (const auto& item : at.items()) {
    const std::string p = TableReader::join(path, item.key());
    const ParamSpec* param = find_config_param(item.key());
    if (!param) r.fail(p, "unknown config key");
    if (param->kind != ParamKind::Integer && param->kind != ParamKind::Number)
      r.fail(p, "config key is not a number parameter");
    refs[item.key()] = r.number(item.value(), p, true);
  }
  return refs;
}

// static_mw.<m>.by_type: {"<value of <m>.type>": {"mw": x, "source": "..."}, ...}.
std::map<std::string, double> parse_static_by_type(const TableReader& r, const std::string& module,
                                                   const nlohmann::json& by_type,
                                                   const std::string& path) {
  const std::string type_key = module + ".type";
  const ParamSpec* type = find_config_param(type_key);
  if (!type || type->choices.empty()) r.fail(path, "the config has no choice " + type_key);
  if (!by_type.is_object()) r.fail(path, "must be an object {\"<type>\": {\"mw\": x, \"source\": \"...\"}}");
  std::map<std::string, double> mw;
  for (const auto& item : by_type.items()) {
    const std::string p = TableReader::join(path, item.key());
    if (std::find(type->choices.begin(), type->choices.end(), item.key()) == type->choices.end())
      r.fail(p, "not a value of " + type_key);
    if (!item.value().is_object()) r.fail(p, "must be an object {\"mw\": x, \"source\": \"...\"}");
    r.only_keys(item.value(), {"mw", "source"}, p);
    mw[item.key()] = r.number_member(item.value(), "mw", p);
    r.require_source(item.value(), p);
  }
  return mw;
}

// static_mw.<m> = {"mw": x, "at": {...}, "by_type": {...}, "source": "..."}; "at" and
// "by_type" are optional (absent: fixed power, one value for every type).
void parse_static(const TableReader& r, const nlohmann::json& j, TechTable& t) {
  const std::string path = "static_mw";
  for (const auto& item : r.object(j, path, path).items()) {
    const std::string p = TableReader::join(path, item.key());
    const nlohmann::json& entry = item.value();
    if (!entry.is_object())
      r.fail(p, "must be an object {\"mw\": x, \"at\": {...}, \"source\": \"...\"}");
    r.only_keys(entry, {"mw", "at", "by_type", "source"}, p);
    t.static_mw[item.key()] = r.number_member(entry, "mw", p);
    r.require_source(entry, p);
    TechTable::StaticScaling scaling;
    if (entry.contains("at")) scaling.at = parse_static_at(r, entry.at("at"), TableReader::join(p, "at"));
    if (entry.contains("by_type"))
      scaling.mw_by_type =
          parse_static_by_type(r, item.key(), entry.at("by_type"), TableReader::join(p, "by_type"));
    if (!scaling.at.empty() || !scaling.mw_by_type.empty()) t.static_scaling[item.key()] = scaling;
  }
}

std::string builtin_names() {
  std::string names;
  for (const auto& entry : builtin_tech_tables()) names += (names.empty() ? "" : ", ") + entry.first;
  return names;
}

bool looks_like_path(const std::string& s) {
  const std::string ext = ".json";
  return s.find('/') != std::string::npos ||
         (s.size() >= ext.size() && s.compare(s.size() - ext.size(), ext.size(), ext) == 0);
}

nlohmann::json parse_json_text(const std::string& text, const std::string& origin) {
  try {
    return parse_json(text);
  } catch (const JsonInputError& e) {
    throw EnergyError(json_error_text(origin, e));
  }
}

const std::map<std::string, double>* find_recipe(const TechTable& t, const std::string& module,
                                                 const std::string& action) {
  const auto m = t.actions.find(module);
  if (m == t.actions.end()) return nullptr;
  const auto a = m->second.find(action);
  return a == m->second.end() ? nullptr : &a->second;
}

// The value at a dotted key ("qk_unit.lanes") of the resolved config, or nullptr.
const nlohmann::json* config_value(const nlohmann::json& config, const std::string& dotted) {
  const nlohmann::json* node = &config;
  size_t start = 0;
  while (true) {
    const size_t dot = dotted.find('.', start);
    const std::string part = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!node->is_object() || !node->contains(part)) return nullptr;
    node = &node->at(part);
    if (dot == std::string::npos) return node;
    start = dot + 1;
  }
}

// Reads one config key for static_mw.<module>; errors name the table path that asked.
class StaticConfigReader {
 public:
  StaticConfigReader(const TechTable& t, const EnergyContext& ctx) : t_(t), ctx_(ctx) {}

  const nlohmann::json& value(const std::string& table_path, const std::string& key) const {
    if (ctx_.config.is_null())
      fail(table_path, "needs " + key + ", but the energy model was given no config");
    const nlohmann::json* v = config_value(ctx_.config, key);
    if (!v) fail(table_path, key + " is not a key of the config");
    return *v;
  }

  double number(const std::string& table_path, const std::string& key) const {
    const nlohmann::json& v = value(table_path, key);
    if (!v.is_number()) fail(table_path, key + " must be a number in the config, got " + v.dump());
    const double x = v.get<double>();
    if (!std::isfinite(x) || x < 0)
      fail(table_path, key + " must be a finite number >= 0 in the config, got " + v.dump());
    return x;
  }

  std::string string(const std::string& table_path, const std::string& key) const {
    const nlohmann::json& v = value(table_path, key);
    if (!v.is_string()) fail(table_path, key + " must be a string in the config, got " + v.dump());
    return v.get<std::string>();
  }

 private:
  [[noreturn]] void fail(const std::string& table_path, const std::string& rule) const {
    throw EnergyError(t_.name + ": " + table_path + ": " + rule);
  }
  const TechTable& t_;
  const EnergyContext& ctx_;
};

}  // namespace

TechTable TechTable::parse(const nlohmann::json& j, const std::string& origin) {
  const TableReader r(origin);
  if (!j.is_object()) r.fail("", "a technology table must be a JSON object");
  r.only_keys(j, {"schema", "name", "node_nm", "description", "primitives_pj", "sram_64bit_access_pj",
                  "dram_pj_per_bit", "actions", "static_mw"},
              "");
  if (!j.contains("schema") || j.at("schema") != kTechSchema)
    r.fail("schema", std::string("must be \"") + kTechSchema + "\"");
  if (!j.contains("name") || !j.at("name").is_string() || j.at("name").get<std::string>().empty())
    r.fail("name", "must be a non-empty string");
  if (j.contains("description") && !j.at("description").is_string())
    r.fail("description", "must be a string");

  TechTable t;
  t.name = j.at("name").get<std::string>();
  t.node_nm = r.number_member(j, "node_nm", "", true);
  parse_primitives(r, j, t);
  parse_sram(r, j, t);
  parse_dram(r, j, t);
  parse_actions(r, j, t);
  parse_static(r, j, t);
  return t;
}

TechTable TechTable::load(const std::string& name_or_path) {
  if (looks_like_path(name_or_path)) {
    std::string text;
    try {
      text = read_input_file(name_or_path, "technology table", kMaxConfigBytes);
    } catch (const InputFileError& e) {
      throw EnergyError(e.what(), ErrorClass::io);
    }
    return parse(parse_json_text(text, name_or_path), name_or_path);
  }
  const auto& builtins = builtin_tech_tables();
  const auto it = builtins.find(name_or_path);
  if (it == builtins.end())
    throw EnergyError("energy.tech: unknown built-in technology table \"" + name_or_path +
                      "\" (built-in: " + builtin_names() + "; or give a path to a .json table)");
  const std::string origin = name_or_path + " (built-in)";
  return parse(parse_json_text(it->second, origin), origin);
}

double sram_access_pj(const TechTable& t, double kib, int width_bits) {
  if (!(kib > 0) || !std::isfinite(kib))
    throw EnergyError(t.name + ": SRAM capacity must be > 0 KiB, got " + TableReader::format(kib));
  if (width_bits <= 0)
    throw EnergyError(t.name + ": SRAM access width must be > 0 bits, got " + std::to_string(width_bits));
  const auto& pts = t.sram_64bit_pj;
  if (pts.size() < 2) throw EnergyError(t.name + ": sram_64bit_access_pj: needs at least two points");
  const double width_factor = width_bits / 64.0;

  // Segment [i, i+1] containing kib; the end segments extend beyond the table.
  size_t i = 0;
  while (i + 2 < pts.size() && kib >= pts[i + 1].first) ++i;
  const auto& [k0, p0] = pts[i];
  const auto& [k1, p1] = pts[i + 1];
  // A table point returns its energy exactly (no exp/log round trip).
  if (kib == k0) return p0 * width_factor;
  if (kib == k1) return p1 * width_factor;
  // Linear in log-log: p = p0 * (kib/k0)^slope, slope = log(p1/p0) / log(k1/k0).
  const double slope = std::log(p1 / p0) / std::log(k1 / k0);
  return p0 * std::pow(kib / k0, slope) * width_factor;
}

double action_pj(const TechTable& t, const EnergyContext& ctx, const std::string& module,
                 const std::string& action) {
  const std::map<std::string, double>* recipe = find_recipe(t, module, action);
  if (!recipe)
    throw EnergyError(t.name + ": actions." + module + "." + action +
                      ": no recipe for this action (the " + module + " unit counts it)");
  double pj = 0;
  for (const auto& [primitive, multiplicity] : *recipe) {
    double unit_pj, kib;
    int bits;
    if (primitive == kSramAccess) {
      unit_pj = sram_access_pj(t, ctx.sram_bank_kib, ctx.sram_width_bits);
    } else if (primitive == kReuseAccess) {
      unit_pj = sram_access_pj(t, ctx.reuse_bank_kib, ctx.reuse_width_bits);
    } else if (primitive == kDramBit) {
      unit_pj = t.dram_pj_per_bit;
    } else if (parse_sized_sram(primitive, &kib, &bits)) {
      unit_pj = sram_access_pj(t, kib, bits);
    } else {
      const auto p = t.primitive_pj.find(primitive);
      if (p == t.primitive_pj.end())  // only reachable for hand-built tables: parse() rejects it
        throw EnergyError(t.name + ": actions." + module + "." + action + "." + primitive +
                          ": unknown primitive");
      unit_pj = p->second;
    }
    pj += multiplicity * unit_pj;
  }
  return pj;
}

double static_power_mw(const TechTable& t, const EnergyContext& ctx, const std::string& module) {
  const std::string path = "static_mw." + module;
  const auto s = t.static_mw.find(module);
  if (s == t.static_mw.end())
    throw EnergyError(t.name + ": " + path + ": missing (the " + module +
                      " module is part of this architecture)");
  const auto factor = ctx.static_factor.find(module);
  const double run_factor = factor == ctx.static_factor.end() ? 1.0 : factor->second;
  const auto scaling = t.static_scaling.find(module);
  if (scaling == t.static_scaling.end()) return s->second * run_factor;  // fixed
  const StaticConfigReader config(t, ctx);
  double mw = s->second;
  const auto& by_type = scaling->second.mw_by_type;
  if (!by_type.empty()) {
    const auto typed = by_type.find(config.string(path + ".by_type", module + ".type"));
    if (typed != by_type.end()) mw = typed->second;
  }
  for (const auto& [key, reference] : scaling->second.at)
    mw *= config.number(path + ".at." + key, key) / reference;
  return mw * run_factor;
}

std::map<std::string, ModuleEnergy> compute_energy(const TechTable& t,
                                                   const std::vector<ModuleActivity>& modules,
                                                   const EnergyContext& ctx) {
  if (!(ctx.node_scale >= 0) || !std::isfinite(ctx.node_scale))
    throw EnergyError("energy.node_scale: must be a finite number >= 0, got " +
                      TableReader::format(ctx.node_scale));
  const double total_ns = ctx.clock.to_time(ctx.total).value;  // 1 mW x 1 ns = 1 pJ
  std::map<std::string, ModuleEnergy> energy;
  for (const ModuleActivity& m : modules) {
    const double static_mw = static_power_mw(t, ctx, m.name);
    ModuleEnergy& e = energy[m.name];
    // Every counter needs a recipe, even at count 0, so a missing recipe shows up on
    // the first run rather than on the first workload that exercises it.
    for (const auto& [action, count] : m.counters)
      e.dynamic_pj += static_cast<double>(count) * action_pj(t, ctx, m.name, action) * ctx.node_scale;
    e.static_pj += static_mw * total_ns * ctx.node_scale;
  }
  return energy;
}

}  // namespace attnsim

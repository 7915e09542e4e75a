// The skip_if condition language: config key paths, their values in a config tree, and
// the conditions (==, !=, <, <=, >, >=, in) that skip a point.
#include "sim/sweep/conditions.h"

#include "sim/config.h"
#include "core/json_text.h"
#include "sim/sweep/spec.h"

namespace attnsim {


namespace {

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

}  // namespace

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

}  // namespace attnsim

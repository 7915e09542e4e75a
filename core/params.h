#pragma once
// Parameter declarations, SST-style: each unit declares its parameters (name, kind,
// default, unit, doc, allowed range) in one block beside its class. The config reader
// (sim/config.h) validates JSON against these declarations and fills the defaults, and
// `attnsim config --doc` prints them as docs/config.md, so every default is written once.
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace attnsim {

using json = nlohmann::json;

enum class ParamKind {
  Integer,  // JSON integer
  Number,   // JSON number (integers accepted)
  String,   // JSON string; `choices`, when non-empty, lists the allowed values
  Boolean,
  PerHead,  // a number, a list of H numbers, or a list of L lists of H numbers
            // (per layer and head); `integer_only` restricts the numbers to integers
  PerLayer, // a number, or a list of L numbers (one per layer)
};

struct ParamSpec {
  std::string name;          // key inside its section, e.g. "bits"
  ParamKind kind = ParamKind::Number;
  json default_value;        // null: absent unless given
  std::string unit;          // "cycles", "bytes/cycle", "" for plain counts
  std::string doc;           // one sentence
  std::vector<std::string> choices;  // allowed strings (ParamKind::String)
  std::optional<double> min;         // inclusive unless min_exclusive
  bool min_exclusive = false;
  std::optional<double> max;         // inclusive
  bool integer_only = false;         // PerHead / PerLayer values must be integers
};

// One section of the config tree; the tree mirrors the module tree. The top-level keys
// (schema, clock_ghz) form the section with an empty name.
struct SectionSpec {
  std::string name;
  std::string doc;
  std::vector<ParamSpec> params;
};

// Builders that keep the declaration blocks short and readable.
inline ParamSpec int_param(std::string name, long long def, std::string unit, std::string doc,
                           std::optional<double> min = std::nullopt,
                           std::optional<double> max = std::nullopt) {
  ParamSpec p;
  p.name = std::move(name);
  p.kind = ParamKind::Integer;
  p.default_value = def;
  p.unit = std::move(unit);
  p.doc = std::move(doc);
  p.min = min;
  p.max = max;
  return p;
}

inline ParamSpec number_param(std::string name, double def, std::string unit, std::string doc,
                              std::optional<double> min = std::nullopt, bool min_exclusive = false,
                              std::optional<double> max = std::nullopt) {
  ParamSpec p;
  p.name = std::move(name);
  p.kind = ParamKind::Number;
  p.default_value = def;
  p.unit = std::move(unit);
  p.doc = std::move(doc);
  p.min = min;
  p.min_exclusive = min_exclusive;
  p.max = max;
  return p;
}

inline ParamSpec choice_param(std::string name, std::string def, std::vector<std::string> choices,
                              std::string doc) {
  ParamSpec p;
  p.name = std::move(name);
  p.kind = ParamKind::String;
  p.default_value = def;
  p.doc = std::move(doc);
  p.choices = std::move(choices);
  return p;
}

inline ParamSpec bool_param(std::string name, bool def, std::string doc) {
  ParamSpec p;
  p.name = std::move(name);
  p.kind = ParamKind::Boolean;
  p.default_value = def;
  p.doc = std::move(doc);
  return p;
}

}  // namespace attnsim

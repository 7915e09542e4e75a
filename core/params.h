#pragma once
// Parameter declarations, SST-style: each unit declares its parameters in one table beside
// its class. A table row binds a member of the unit's params struct to its name, kind,
// default, unit, doc and allowed range. The config reader (sim/config.h) validates JSON
// against the rows and fills the defaults, the same rows store the resolved values into
// the struct (ParamTable::from), and `attnsim config --doc` prints them as
// docs/config.md, so every name and default is written once.
//
//   struct DramParams {
//     int bytes_per_cycle;
//     static const ParamTable<DramParams>& table() {
//       static const ParamTable<DramParams> t{"dram", "Off-chip memory channel.",
//         {field(&DramParams::bytes_per_cycle, "bytes_per_cycle", 64)
//              .unit("bytes/cycle").doc("Sustained channel bandwidth.").min(1)}};
//       return t;
//     }
//   };
#include <nlohmann/json.hpp>

#include <cmath>
#include <functional>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
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

// A bound or value as a person writes it: 1 rather than 1.000000.
inline std::string number_text(double x) {
  if (std::floor(x) == x && std::fabs(x) < 1e15) return std::to_string(static_cast<long long>(x));
  std::ostringstream os;
  os << x;
  return os.str();
}

// "section.key", or "key" for the top-level section "".
inline std::string dotted(const std::string& section, const std::string& key) {
  return section.empty() ? key : section + "." + key;
}

// ---- plausible bounds --------------------------------------------------------------------
//
// Upper bounds of the hardware parameters (docs/config.md shows each key's range): wide
// enough for any design a paper describes, narrow enough that a typo - a unit off by 10^9,
// a count with a sign lost - is refused with the usual one-line error instead of giving
// energies of 1e307 pJ or cycle counts that overflow.
namespace plausible {
inline constexpr double kPerCycle = 1 << 20;     // MACs, keys, elements, tokens or bytes a unit takes per cycle
inline constexpr double kLatencyCycles = 1e6;    // a fixed pipeline or memory latency: 1 ms at 1 GHz
inline constexpr double kPorts = 64;             // accesses one bank serves per cycle
inline constexpr double kBanks = 1 << 16;
inline constexpr double kAccessBits = 1 << 16;   // width of one memory access
inline constexpr double kCapacityKib = 1 << 26;  // 64 GiB of on-chip memory (a wafer-scale chip has 40 GB)
inline constexpr double kArrayDim = 4096;        // rows or columns of a PE array (a TPU's is 128 or 256)
inline constexpr double kLanes = 1 << 16;        // parallel lanes, and elements per lane
inline constexpr double kModelWidth = 1 << 20;   // D and d_ff of a model (GPT-3: 12288 and 49152)
inline constexpr double kClockGhzMin = 1e-3;     // 1 MHz ...
inline constexpr double kClockGhzMax = 100;      // ... to 100 GHz
inline constexpr double kScaleMin = 1e-3;        // a factor on every energy: 1/1000 ...
inline constexpr double kScaleMax = 1e3;         // ... to 1000 times the table's
}  // namespace plausible

// ---- named choices: a config string <-> an enum, declared once per enum ---------------

template <class E>
using Choices = std::vector<std::pair<std::string, E>>;

template <class E>
const std::string& choice_name(const Choices<E>& choices, E value) {
  for (const auto& [name, v] : choices)
    if (v == value) return name;
  throw std::logic_error("choice_name: value without a name");
}

template <class E>
E choice_value(const Choices<E>& choices, const std::string& name) {
  for (const auto& [n, v] : choices)
    if (n == name) return v;
  throw std::logic_error("choice_value: '" + name + "' is not a declared choice");
}

template <class E>
std::vector<std::string> choice_names(const Choices<E>& choices) {
  std::vector<std::string> names;
  for (const auto& c : choices) names.push_back(c.first);
  return names;
}

// ---- tables -----------------------------------------------------------------------------

// One row: the declaration and how a validated value is stored into the struct.
template <class P>
struct ParamField {
  ParamSpec spec;
  std::function<void(P&, const json&)> store;  // null json: the key is absent
};

template <class P>
class ParamTable {
 public:
  ParamTable(std::string section, std::string doc, std::vector<ParamField<P>> fields)
      : fields_(std::move(fields)) {
    spec_.name = std::move(section);
    spec_.doc = std::move(doc);
    for (const ParamField<P>& f : fields_) spec_.params.push_back(f.spec);
  }

  const SectionSpec& spec() const { return spec_; }

  // Stores every row of a resolved section (validated, defaults filled) into `p`.
  void load(P& p, const json& section) const {
    for (const ParamField<P>& f : fields_) {
      const auto it = section.find(f.spec.name);
      f.store(p, it == section.end() ? json() : *it);
    }
  }
  P from(const json& section) const {
    P p{};
    load(p, section);
    return p;
  }
  // The params with every default of the table (for code that needs a section's values
  // without a config, so that no default is written a second time).
  P defaults() const {
    json section = json::object();
    for (const ParamSpec& s : spec_.params) section[s.name] = s.default_value;
    return from(section);
  }

 private:
  SectionSpec spec_;
  std::vector<ParamField<P>> fields_;
};

// A row bound to `member`, filled in by chained calls; converts to ParamField<P>.
// The kind follows the member's type: int -> Integer, double -> Number, bool -> Boolean,
// std::string -> String; std::optional<int> -> Integer that may be absent (default null:
// the run decides, e.g. from the trace); a json member holds a per-head or per-layer value
// as given (per_head() / per_layer()).
template <class P, class T>
class Field {
 public:
  Field(T P::*member, std::string name, json default_value) : member_(member) {
    spec_.name = std::move(name);
    spec_.default_value = std::move(default_value);
    if constexpr (std::is_same_v<T, int> || std::is_same_v<T, std::optional<int>>) spec_.kind = ParamKind::Integer;
    else if constexpr (std::is_same_v<T, double>) spec_.kind = ParamKind::Number;
    else if constexpr (std::is_same_v<T, bool>) spec_.kind = ParamKind::Boolean;
    else if constexpr (std::is_same_v<T, std::string>) spec_.kind = ParamKind::String;
    else static_assert(std::is_same_v<T, json>, "unsupported parameter type");
  }
  Field& unit(std::string u) { spec_.unit = std::move(u); return *this; }
  Field& doc(std::string d) { spec_.doc = std::move(d); return *this; }
  Field& min(double v) { spec_.min = v; spec_.min_exclusive = false; return *this; }
  Field& above(double v) { spec_.min = v; spec_.min_exclusive = true; return *this; }  // x > v
  Field& max(double v) { spec_.max = v; return *this; }
  Field& per_head() { spec_.kind = ParamKind::PerHead; return *this; }
  Field& per_layer() { spec_.kind = ParamKind::PerLayer; return *this; }
  Field& integers() { spec_.integer_only = true; return *this; }
  Field& one_of(std::vector<std::string> choices) { spec_.choices = std::move(choices); return *this; }

  operator ParamField<P>() const {  // NOLINT: the rows of a table are written as Fields
    const auto member = member_;
    return {spec_, [member](P& p, const json& v) {
              if constexpr (std::is_same_v<T, json>) p.*member = v;
              else if constexpr (std::is_same_v<T, std::optional<int>>)
                p.*member = v.is_null() ? std::nullopt : std::optional<int>(v.template get<int>());
              else if (!v.is_null()) p.*member = v.template get<T>();
            }};
  }

 private:
  T P::*member_;
  ParamSpec spec_;
};

template <class P, class T>
Field<P, T> field(T P::*member, std::string name, json default_value) {
  return Field<P, T>(member, std::move(name), std::move(default_value));
}

// A string row whose allowed values name the members of an enum; the struct holds the enum.
template <class P, class E>
class ChoiceField {
 public:
  ChoiceField(E P::*member, std::string name, E default_value, const Choices<E>& choices)
      : member_(member), choices_(choices) {
    spec_.name = std::move(name);
    spec_.kind = ParamKind::String;
    spec_.default_value = choice_name(choices, default_value);
    spec_.choices = choice_names(choices);
  }
  ChoiceField& doc(std::string d) { spec_.doc = std::move(d); return *this; }

  operator ParamField<P>() const {  // NOLINT
    const auto member = member_;
    const Choices<E> choices = choices_;
    return {spec_, [member, choices](P& p, const json& v) {
              p.*member = choice_value(choices, v.template get<std::string>());
            }};
  }

 private:
  E P::*member_;
  Choices<E> choices_;
  ParamSpec spec_;
};

template <class P, class E>
ChoiceField<P, E> choice(E P::*member, std::string name, E default_value, const Choices<E>& choices) {
  return ChoiceField<P, E>(member, std::move(name), default_value, choices);
}

}  // namespace attnsim

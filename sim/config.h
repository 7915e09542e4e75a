#pragma once
// Config in two layers (DRAMSys, gem5): JSON is validated against the units' parameter
// tables (each declared beside its unit, core/params.h) and resolved with every default
// filled in; the same tables then store the resolved tree into immutable per-unit params
// passed to the constructors. config_sections() is the one list of sections, in the
// order of the module tree.
#include "arch/av_unit.h"
#include "arch/candidates.h"
#include "arch/dram.h"
#include "arch/gemm_math.h"
#include "arch/kv_tiling.h"
#include "arch/lowrank_unit.h"
#include "arch/lsh_unit.h"
#include "arch/pipeline.h"
#include "arch/qk_unit.h"
#include "arch/skim_controller.h"
#include "arch/softmax_unit.h"
#include "arch/sram.h"
#include "arch/tree_engine.h"
#include "core/errors.h"
#include "core/json_text.h"
#include "core/params.h"
#include "sim/energy.h"
#include "sim/model.h"
#include "sim/quality.h"

#include <functional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnsim {

inline constexpr const char* kConfigSchema = "attnsim.config/1";

// A one-line error naming the file, the JSON path and the rule, e.g.
// "c.json: qk_unit.lanes: must be >= 1, got 0".
// Class config, or io for a config file that cannot be read (core/errors.h).
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& message, ErrorClass c = ErrorClass::config) : Error(c, message) {}
};

struct Config {
  json resolved;       // the whole tree, defaults filled in (echoed into the stats)
  std::string origin;  // file name used in messages ("<inline>" when not from a file)
  std::set<std::string> overridden;  // the keys given by --set ("section.key")
  // top-level keys
  std::string schema;
  std::string description;
  double clock_ghz;
  // one member per section
  DramParams dram;
  SramParams sram;
  KvTilingParams kv_tiling;
  CandidatesParams candidates;
  TreeEngineParams tree_engine;
  LshUnitParams lsh_unit;
  QkUnitParams qk_unit;
  ComparatorParams comparator;
  ReuseBufferParams reuse_buffer;
  SoftmaxParams softmax;
  AvUnitParams av_unit;
  LowRankParams lowrank_unit;
  SkimControllerParams skim_controller;
  GemmEngineParams gemm_engine;
  ModelParams model;
  PipelineParams pipeline;
  EnergyParams energy;
  QualityParams quality;

  QkSetup qk_setup() const { return {qk_unit, comparator, reuse_buffer, sram}; }
  // Where the value of `key` came from: "--set" for an override, else the file.
  const std::string& origin_of(const std::string& key) const { return overridden.count(key) ? kSetOrigin : origin; }
  // A one-line ConfigError about config key `key` at JSON path `path` (default: the key),
  // naming the file or the --set that gave it.
  [[noreturn]] void fail(const std::string& key, const std::string& rule) const { fail(key, key, rule); }
  [[noreturn]] void fail(const std::string& key, const std::string& path, const std::string& rule) const;

  static inline const std::string kSetOrigin = "--set";
};

// One section of the config tree: its declarations and how it lands in a Config.
struct ConfigSection {
  SectionSpec spec;
  std::function<void(Config&, const json& resolved_section)> load;
};

// Every section, top-level keys first (section name ""), in the order of the module tree.
const std::vector<ConfigSection>& config_sections();
// Their declarations alone.
const std::vector<SectionSpec>& config_schema();

// Validate `j` against the schema, apply `overrides` ("a.b=value", value parsed as JSON
// and, when that fails, taken as a string), fill defaults, check cross-field rules.
// `origin` names the source in error messages. Throws ConfigError.
Config resolve_config(const json& j, const std::string& origin,
                      const std::vector<std::string>& overrides = {});

// Read a JSON file (error if missing or not JSON) and resolve it.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Config with every default: the same as resolving {"schema": "attnsim.config/1"}.
Config default_config();

// Rules that involve more than one key, one line each (docs/config.md lists them).
const std::vector<std::string>& cross_field_rules();

// "c.json: path", or "--set path" when `origin` is Config::kSetOrigin.
std::string config_location(const std::string& origin, const std::string& path);

// A per-head value (gamma, margin, theta): scalar, list of H, or list of L lists of H.
// Throws ConfigError naming the config path when the shape does not fit the trace.
double per_head_value(const json& value, int layer, int head, int layers, int heads,
                      const std::string& origin, const std::string& path);

}  // namespace attnsim

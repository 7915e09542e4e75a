#pragma once
// Config in two layers (DRAMSys, gem5): JSON is validated against the unit declarations
// (arch/unit_params.h) and resolved with every default filled in; the resolved tree is
// then turned into immutable per-unit params passed to the constructors.
#include "arch/unit_params.h"
#include "core/params.h"

#include <stdexcept>
#include <string>
#include <vector>

namespace attnsim {

inline constexpr const char* kConfigSchema = "attnsim.config/1";

// A one-line error naming the file, the JSON path and the rule, e.g.
// "c.json: qk_unit.lanes: must be >= 1, got 0".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Config {
  json resolved;  // the whole tree, defaults filled in (echoed into the stats)
  std::string origin;  // file name used in messages ("<inline>" when not from a file)
  double clock_ghz;
  DramParams dram;
  SramParams sram;
  QkUnitParams qk_unit;
  ComparatorParams comparator;
  ReuseBufferParams reuse_buffer;
  SoftmaxParams softmax;
  AvUnitParams av_unit;
  SkimControllerParams skim_controller;
  GemmEngineParams gemm_engine;
  ModelParams model;
  PipelineParams pipeline;
  EnergyParams energy;
  QualityParams quality;
};

// Every section of the config tree, top-level keys first (section name "").
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

// docs/config.md, generated from the schema (`attnsim config --doc`).
std::string config_reference_markdown();

// A per-head value (gamma, margin, theta): scalar, list of H, or list of L lists of H.
// Throws ConfigError naming the config path when the shape does not fit the trace.
double per_head_value(const json& value, int layer, int head, int layers, int heads,
                      const std::string& origin, const std::string& path);

}  // namespace attnsim

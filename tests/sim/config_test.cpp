// Config layer: defaults, validation messages, overrides, per-head lookup, docs.
#include "sim/cli/commands.h"
#include "sim/config.h"
#include "sim/config_doc.h"

#include <catch2/catch.hpp>

#include <fstream>
#include <functional>
#include <iostream>
#include <set>
#include <sstream>

using namespace attnsim;

namespace {

const json kMinimal = json{{"schema", "attnsim.config/1"}};

// The minimal config with `section.key = value` added.
json with(const std::string& section, const std::string& key, const json& value) {
  json j = kMinimal;
  if (section.empty()) j[key] = value;
  else j[section][key] = value;
  return j;
}

// The ConfigError message thrown by `f`, or "" when it throws nothing.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

std::string resolve_error(const json& j, const std::vector<std::string>& overrides = {}) {
  return error_of([&] { resolve_config(j, "c.json", overrides); });
}

const ParamSpec& spec_of(const std::string& section, const std::string& key) {
  for (const SectionSpec& s : config_schema())
    if (s.name == section)
      for (const ParamSpec& p : s.params)
        if (p.name == key) return p;
  throw std::logic_error("no such param " + section + "." + key);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `attnsim config ARGS`, capturing stdout and stderr.
int run_config_cli(std::vector<std::string> args, std::string& out, std::string& err) {
  args.insert(args.begin(), "config");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  std::ostringstream out_capture, err_capture;
  auto* old_out = std::cout.rdbuf(out_capture.rdbuf());
  auto* old_err = std::cerr.rdbuf(err_capture.rdbuf());
  const int rc = cmd_config(int(argv.size()), argv.data());
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  out = out_capture.str();
  err = err_capture.str();
  return rc;
}

}  // namespace

TEST_CASE("schema lists the top-level keys then the unit sections in order") {
  std::vector<std::string> names;
  for (const SectionSpec& s : config_schema()) names.push_back(s.name);
  CHECK(names == std::vector<std::string>{"", "dram", "sram", "kv_tiling", "candidates", "tree_engine", "lsh_unit",
                                          "qk_unit", "comparator", "reuse_buffer", "softmax", "av_unit",
                                          "lowrank_unit", "skim_controller", "gemm_engine", "model",
                                          "pipeline", "energy", "quality"});
  CHECK(config_schema()[0].params.at(0).name == "schema");
  CHECK(config_schema()[0].params.at(1).name == "description");
  CHECK(config_schema()[0].params.at(2).name == "clock_ghz");
}

TEST_CASE("minimal config resolves with every default filled in") {
  const Config c = resolve_config(kMinimal, "c.json");
  // Every declared default appears in the resolved tree, read from the spec.
  for (const SectionSpec& s : config_schema()) {
    const json& section = s.name.empty() ? c.resolved : c.resolved.at(s.name);
    for (const ParamSpec& p : s.params) {
      INFO(s.name << "." << p.name);
      if (p.name == "schema") continue;
      if (p.default_value.is_null()) CHECK_FALSE(section.contains(p.name));
      else CHECK(section.at(p.name) == p.default_value);
    }
  }
  // A few literally, from SEMANTICS §6.
  CHECK(c.resolved.at("schema") == "attnsim.config/1");
  CHECK(c.clock_ghz == 1.0);
  CHECK(c.qk_unit.lanes == 64);
  CHECK(c.qk_unit.type == QkType::bit_serial);
  CHECK(c.qk_unit.mode == QkMode::latte);
  CHECK(c.qk_unit.bits == 8);
  CHECK(c.qk_unit.estimate_bits == 4);
  CHECK(c.qk_unit.lane_sync == LaneSync::lockstep);
  CHECK(c.comparator.gamma == json(0.01));
  CHECK(c.comparator.theta == json(0));
  CHECK(c.comparator.margin.is_null());
  CHECK_FALSE(c.resolved.at("comparator").contains("margin"));
  CHECK(c.reuse_buffer.entries == 4096);
  CHECK(c.skim_controller.mode == SkimMode::off);
  CHECK(c.skim_controller.groups == 5);
  CHECK(c.gemm_engine.rows == 32);
  CHECK(c.gemm_engine.dataflow == gemm::Dataflow::OutputStationary);
  CHECK(c.gemm_engine.dram_path == gemm::DramPath::shared);
  CHECK_FALSE(c.pipeline.overlap_gemm);
  // The structs agree with the tree.
  CHECK(c.dram.bytes_per_cycle == spec_of("dram", "bytes_per_cycle").default_value.get<int>());
  CHECK(c.sram.banks == spec_of("sram", "banks").default_value.get<int>());
  CHECK(c.softmax.latency_cycles == spec_of("softmax", "latency_cycles").default_value.get<int>());
  CHECK(c.av_unit.output_bits == spec_of("av_unit", "output_bits").default_value.get<int>());
  CHECK(c.pipeline.fifo_depth == spec_of("pipeline", "fifo_depth").default_value.get<int>());
  CHECK(c.energy.tech == spec_of("energy", "tech").default_value.get<std::string>());
  CHECK(c.quality.enabled == spec_of("quality", "enabled").default_value.get<bool>());
  CHECK(c.origin == "c.json");
}

TEST_CASE("default_config equals the resolved minimal config") {
  CHECK(default_config().resolved == resolve_config(kMinimal, "x.json").resolved);
}

TEST_CASE("given values replace defaults, and integral floats become integers") {
  json j = with("qk_unit", "lanes", 16.0);
  j["comparator"]["margin"] = json::array({3, 4});
  j["clock_ghz"] = 2;
  const Config c = resolve_config(j, "c.json");
  CHECK(c.qk_unit.lanes == 16);
  CHECK(c.resolved.at("qk_unit").at("lanes").is_number_integer());
  CHECK(c.resolved.at("comparator").at("margin") == json::array({3, 4}));
  CHECK(c.comparator.margin == json::array({3, 4}));
  CHECK(c.clock_ghz == 2.0);
}

TEST_CASE("schema key is required and must match") {
  CHECK(resolve_error(json::object()) ==
        "c.json: missing schema (expected \"schema\": \"attnsim.config/1\")");
  CHECK(resolve_error(with("", "schema", "attnsim.config/2")) ==
        "c.json: schema: must be \"attnsim.config/1\", got \"attnsim.config/2\"");
  CHECK(resolve_error(with("", "schema", 1)) == "c.json: schema: must be a string, got 1");
}

TEST_CASE("root and sections must be objects") {
  CHECK(resolve_error(json::array({1})) == "c.json: the config must be a JSON object, got [1]");
  CHECK(resolve_error(with("", "qk_unit", 3)) == "c.json: qk_unit: must be an object, got 3");
}

TEST_CASE("unknown keys are rejected with a did-you-mean for near misses") {
  CHECK(resolve_error(with("qk_unit", "lanse", 4)) ==
        "c.json: qk_unit.lanse: unknown key (did you mean 'lanes'?)");
  CHECK(resolve_error(with("qk_unit", "estimate", 4)) ==
        "c.json: qk_unit.estimate: unknown key (did you mean 'estimate_bits'?)");
  CHECK(resolve_error(with("qk_unit", "zzzzzz", 4)) == "c.json: qk_unit.zzzzzz: unknown key");
  CHECK(resolve_error(with("", "qk_unti", json::object())) ==
        "c.json: qk_unti: unknown key (did you mean 'qk_unit'?)");
  CHECK(resolve_error(with("", "clock_gz", 1.0)) ==
        "c.json: clock_gz: unknown key (did you mean 'clock_ghz'?)");
  CHECK(resolve_error(with("", "frobnicator", 1.0)) == "c.json: frobnicator: unknown key");
}

TEST_CASE("type checks name the path and the offending value") {
  CHECK(resolve_error(with("qk_unit", "lanes", 2.5)) ==
        "c.json: qk_unit.lanes: must be an integer, got 2.5");
  CHECK(resolve_error(with("qk_unit", "lanes", "64")) ==
        "c.json: qk_unit.lanes: must be an integer, got \"64\"");
  CHECK(resolve_error(with("qk_unit", "type", 3)) == "c.json: qk_unit.type: must be a string, got 3");
  CHECK(resolve_error(with("quality", "enabled", 1)) ==
        "c.json: quality.enabled: must be a boolean, got 1");
  CHECK(resolve_error(with("pipeline", "overlap_gemm", "yes")) ==
        "c.json: pipeline.overlap_gemm: must be a boolean, got \"yes\"");
  CHECK(resolve_error(with("", "clock_ghz", "fast")) ==
        "c.json: clock_ghz: must be a number, got \"fast\"");
}

TEST_CASE("ranges and choices") {
  CHECK(resolve_error(with("qk_unit", "lanes", 0)) == "c.json: qk_unit.lanes: must be >= 1, got 0");
  CHECK(resolve_error(with("", "clock_ghz", 0)) == "c.json: clock_ghz: must be >= 0.001, got 0");
  CHECK(resolve_error(with("qk_unit", "bits", 17)) == "c.json: qk_unit.bits: must be <= 16, got 17");
  CHECK(resolve_error(with("qk_unit", "bits", 1)) == "c.json: qk_unit.bits: must be >= 2, got 1");
  CHECK(resolve_error(with("qk_unit", "type", "bitserial")) ==
        "c.json: qk_unit.type: must be one of \"bit_serial\", \"bit_parallel\", got \"bitserial\"");
  CHECK(resolve_error(with("gemm_engine", "dram_path", "own")) ==
        "c.json: gemm_engine.dram_path: must be one of \"shared\", \"separate\", got \"own\"");
  CHECK(resolve_error(with("gemm_engine", "dram_path", true)) ==
        "c.json: gemm_engine.dram_path: must be a string, got true");
  CHECK(resolve_error(with("dram", "bytes_per_cycle", 3000000000LL)) ==
        "c.json: dram.bytes_per_cycle: must be <= 1048576, got 3000000000");
  // A key without a plausible bound still has the 32-bit one of its struct member.
  CHECK(resolve_error(with("kv_tiling", "key_tile", 3000000000LL)) ==
        "c.json: kv_tiling.key_tile: must be <= 2147483647, got 3000000000");
  // Edges are inside.
  CHECK(resolve_error(with("qk_unit", "bits", 16)) == "");
  CHECK(resolve_error(with("comparator", "gamma", 1.0)) == "");
}

TEST_CASE("per-head values: shapes, ranges, integers") {
  CHECK(resolve_error(with("comparator", "gamma", json::parse("[0.1, 0.2]"))) == "");
  CHECK(resolve_error(with("comparator", "gamma", json::parse("[[0.1, 0.2], [0.3, 0.4]]"))) == "");
  CHECK(resolve_error(with("comparator", "gamma", json::parse("[[0.1, 0.2, 0.3], [0.1, 0.2, 1.5]]"))) ==
        "c.json: comparator.gamma[1][2]: must be <= 1, got 1.5");
  CHECK(resolve_error(with("comparator", "gamma", 0)) == "c.json: comparator.gamma: must be > 0, got 0");
  CHECK(resolve_error(with("comparator", "gamma", json::parse("[0.1, [0.2]]"))) ==
        "c.json: comparator.gamma[1]: must be a number, got [0.2]");
  CHECK(resolve_error(with("comparator", "gamma", json::parse("[[0.1], 0.2]"))) ==
        "c.json: comparator.gamma[1]: must be a list of numbers, got 0.2");
  CHECK(resolve_error(with("comparator", "gamma", json::parse("[[[0.1]]]"))) ==
        "c.json: comparator.gamma[0][0]: must be a number, got [0.1]");
  CHECK(resolve_error(with("comparator", "gamma", json::array())) ==
        "c.json: comparator.gamma: must not be an empty list");
  CHECK(resolve_error(with("comparator", "margin", json::parse("[[1], []]"))) ==
        "c.json: comparator.margin[1]: must not be an empty list");
  CHECK(resolve_error(with("comparator", "gamma", "high")) ==
        "c.json: comparator.gamma: must be a number, a list of numbers or a list of lists of "
        "numbers, got \"high\"");
  CHECK(resolve_error(with("comparator", "theta", 2.5)) ==
        "c.json: comparator.theta: must be an integer, got 2.5");
  CHECK(resolve_error(with("comparator", "theta", json::parse("[1, 2.5]"))) ==
        "c.json: comparator.theta[1]: must be an integer, got 2.5");
  CHECK(resolve_error(with("comparator", "margin", -1)) ==
        "c.json: comparator.margin: must be >= 0, got -1");
  CHECK(resolve_error(with("comparator", "theta", -7)) == "");  // theta has no bound
}

TEST_CASE("per-layer values") {
  CHECK(resolve_error(with("skim_controller", "keep", json::parse("[128, 96, 64]"))) == "");
  CHECK(resolve_error(with("skim_controller", "keep", 0)) ==
        "c.json: skim_controller.keep: must be > 0, got 0");
  CHECK(resolve_error(with("skim_controller", "keep", json::parse("[[1]]"))) ==
        "c.json: skim_controller.keep[0]: must be a number, got [1]");
  CHECK(resolve_error(with("skim_controller", "keep", true)) ==
        "c.json: skim_controller.keep: must be a number or a list of numbers, got true");
}

TEST_CASE("cross-field rules") {
  CHECK(resolve_error(with("qk_unit", "estimate_bits", 9)) ==
        "c.json: qk_unit.estimate_bits: must be <= qk_unit.bits (8), got 9");
  CHECK(resolve_error(with("qk_unit", "estimate_bits", 8)) == "");
  CHECK(resolve_error(with("qk_unit", "type", "bit_parallel")) ==
        "c.json: qk_unit.mode: bit_parallel supports only \"dense\", got \"latte\"");
  json j = with("qk_unit", "type", "bit_parallel");
  j["qk_unit"]["mode"] = "early_term";
  CHECK(resolve_error(j) ==
        "c.json: qk_unit.mode: bit_parallel supports only \"dense\", got \"early_term\"");
}

TEST_CASE("overrides (--set) on integers, strings, lists and top-level keys") {
  const Config c = resolve_config(with("qk_unit", "lanes", 8), "c.json",
                                  {"qk_unit.lanes=32", "qk_unit.type=bit_parallel",
                                   "qk_unit.mode=\"dense\"", "comparator.gamma=[[0.1,0.2],[0.3,0.4]]",
                                   "clock_ghz=2.5", "energy.tech=7nm"});
  CHECK(c.qk_unit.lanes == 32);
  CHECK(c.qk_unit.type == QkType::bit_parallel);
  CHECK(c.qk_unit.mode == QkMode::dense);
  CHECK(c.comparator.gamma == json::parse("[[0.1,0.2],[0.3,0.4]]"));
  CHECK(c.clock_ghz == 2.5);
  CHECK(c.energy.tech == "7nm");
  CHECK(c.resolved.at("qk_unit").at("lanes") == 32);
  // Applied before validation: the file alone would break the P <= B rule.
  CHECK(resolve_error(with("qk_unit", "estimate_bits", 9), {"qk_unit.bits=10"}) == "");
  // The later override wins.
  CHECK(resolve_config(kMinimal, "c.json", {"qk_unit.lanes=4", "qk_unit.lanes=5"}).qk_unit.lanes == 5);
}

TEST_CASE("override (--set) errors name the override") {
  CHECK(resolve_error(kMinimal, {"qk_unit.lanse=4"}) ==
        "--set qk_unit.lanse: unknown key (did you mean 'lanes'?)");
  CHECK(resolve_error(kMinimal, {"qk_unti.lanes=4"}) ==
        "--set qk_unti.lanes: unknown section 'qk_unti' (did you mean 'qk_unit'?)");
  CHECK(resolve_error(kMinimal, {"clock_gz=4"}) ==
        "--set clock_gz: unknown key (did you mean 'clock_ghz'?)");
  CHECK(resolve_error(kMinimal, {"qk_unit.lanes=0"}) == "--set qk_unit.lanes: must be >= 1, got 0");
  CHECK(resolve_error(kMinimal, {"comparator.gamma=[0.1,2]"}) ==
        "--set comparator.gamma[1]: must be <= 1, got 2");
  CHECK(resolve_error(kMinimal, {"qk_unit.estimate_bits=12"}) ==
        "--set qk_unit.estimate_bits: must be <= qk_unit.bits (8), got 12");
  CHECK(resolve_error(kMinimal, {"qk_unit.lanes"}) ==
        "--set qk_unit.lanes: malformed override, expected section.key=value");
  CHECK(resolve_error(kMinimal, {"qk_unit=3"}) ==
        "--set qk_unit=3: malformed override, expected section.key=value");
  CHECK(resolve_error(kMinimal, {"=3"}) == "--set =3: malformed override, expected section.key=value");
  CHECK(resolve_error(kMinimal, {"qk_unit.lanes.x=3"}) ==
        "--set qk_unit.lanes.x=3: malformed override, expected section.key=value");
  CHECK(resolve_error(kMinimal, {".lanes=3"}) ==
        "--set .lanes=3: malformed override, expected section.key=value");
  // A file error is still reported against the file.
  CHECK(resolve_error(with("qk_unit", "lanes", 0), {"qk_unit.bits=8"}) ==
        "c.json: qk_unit.lanes: must be >= 1, got 0");
}

TEST_CASE("per_head_value: scalar, per head, per layer and head") {
  CHECK(per_head_value(json(0.25), 3, 1, 4, 2, "c.json", "comparator.gamma") == 0.25);
  const json per_head = json::parse("[0.1, 0.2, 0.3]");
  CHECK(per_head_value(per_head, 0, 2, 5, 3, "c.json", "comparator.gamma") == 0.3);
  CHECK(per_head_value(per_head, 4, 1, 5, 3, "c.json", "comparator.gamma") == 0.2);
  const json per_layer = json::parse("[[1, 2], [3, 4], [5, 6]]");
  CHECK(per_head_value(per_layer, 2, 0, 3, 2, "c.json", "comparator.theta") == 5);
  CHECK(per_head_value(per_layer, 1, 1, 3, 2, "c.json", "comparator.theta") == 4);
}

TEST_CASE("per_head_value: shape mismatches with the trace") {
  const auto error = [](const json& v, int layers, int heads) {
    return error_of([&] { per_head_value(v, 0, 0, layers, heads, "c.json", "comparator.gamma"); });
  };
  CHECK(error(json::parse("[0.1, 0.2, 0.3]"), 2, 4) ==
        "c.json: comparator.gamma: has 3 values, the trace has 4 heads");
  CHECK(error(json::parse("[[0.1, 0.2], [0.1, 0.2]]"), 3, 2) ==
        "c.json: comparator.gamma: has 2 lists, the trace has 3 layers");
  CHECK(error(json::parse("[[0.1, 0.2], [0.1, 0.2, 0.3]]"), 2, 2) == "");  // layer 0 fits
  CHECK(error_of([] {
          per_head_value(json::parse("[[0.1, 0.2], [0.1, 0.2, 0.3]]"), 1, 0, 2, 2, "c.json",
                         "comparator.gamma");
        }) == "c.json: comparator.gamma[1]: has 3 values, the trace has 2 heads");
}

TEST_CASE("load_config: file errors") {
  CHECK(error_of([] { load_config("/nonexistent/c.json"); }) ==
        "/nonexistent/c.json: cannot open config file");
  const std::string path = "config_test_bad.json";
  {
    std::ofstream out(path);
    out << "{\"schema\": \"attnsim.config/1\",\n  \"qk_unit\": {lanes: 4}}\n";
  }
  const std::string message = error_of([&] { load_config(path); });
  CHECK(message.rfind(path + ": not valid JSON: parse error at line 2", 0) == 0);
  CHECK(message.find('\n') == std::string::npos);
  {
    std::ofstream out(path);
    out << "{\"schema\": \"attnsim.config/1\", \"qk_unit\": {\"lanes\": 0}}\n";
  }
  CHECK(error_of([&] { load_config(path); }) == path + ": qk_unit.lanes: must be >= 1, got 0");
  std::remove(path.c_str());
}

TEST_CASE("configs/dense-baseline.json resolves to the dense bit-parallel baseline") {
  const Config c = load_config(ATTNSIM_SOURCE_DIR "/configs/dense-baseline.json");
  CHECK(c.qk_unit.type == QkType::bit_parallel);
  CHECK(c.qk_unit.mode == QkMode::dense);
  CHECK(c.skim_controller.mode == SkimMode::off);
  CHECK(c.origin == ATTNSIM_SOURCE_DIR "/configs/dense-baseline.json");
}

TEST_CASE("docs/config.md is generated from the schema and up to date") {
  const std::string md = config_reference_markdown();
  // Every key of every section is documented.
  for (const SectionSpec& s : config_schema())
    for (const ParamSpec& p : s.params) {
      const std::string key = s.name.empty() ? p.name : s.name + "." + p.name;
      INFO(key);
      CHECK(md.find("| `" + key + "` |") != std::string::npos);
    }
  CHECK(md.find("| `qk_unit.lanes` | integer (32-bit), 1 <= x <= 65536 | `64` |  | L: keys scored in parallel. |") !=
        std::string::npos);
  CHECK(md.find("## Cross-field rules") != std::string::npos);
  // Regenerate with: attnsim config --doc > docs/config.md
  CHECK(read_file(ATTNSIM_SOURCE_DIR "/docs/config.md") == md);
}

TEST_CASE("attnsim config --resolve and --doc") {
  std::string out, err;
  CHECK(run_config_cli({"--resolve", ATTNSIM_SOURCE_DIR "/configs/dense-baseline.json", "--set",
                        "qk_unit.lanes=32"},
                       out, err) == 0);
  CHECK(err == "");
  const json printed = json::parse(out);
  CHECK(printed.at("qk_unit").at("lanes") == 32);
  CHECK(printed.at("qk_unit").at("mode") == "dense");
  CHECK(printed.at("schema") == "attnsim.config/1");

  CHECK(run_config_cli({"--doc"}, out, err) == 0);
  CHECK(out == config_reference_markdown());

  CHECK(run_config_cli({"--resolve", ATTNSIM_SOURCE_DIR "/configs/dense-baseline.json", "--set",
                        "qk_unit.lanse=4"},
                       out, err) == 3);  // a config error
  CHECK(err == "attnsim: --set qk_unit.lanse: unknown key (did you mean 'lanes'?)\n");
  CHECK(run_config_cli({}, out, err) == 2);
  CHECK(err.rfind("attnsim: config: give either --doc or --resolve", 0) == 0);
}

TEST_CASE("every hardware quantity has a plausible upper bound") {
  // Keys without one are counts the trace bounds or free choices, listed here on purpose.
  const std::set<std::string> unbounded = {"kv_tiling.key_tile", "kv_tiling.query_tile", "tree_engine.seed",
                                           "lsh_unit.cluster_size", "lsh_unit.seed", "comparator.margin",
                                           "comparator.theta", "lowrank_unit.seed", "skim_controller.keep",
                                           "skim_controller.groups"};
  for (const SectionSpec& s : config_schema())
    for (const ParamSpec& p : s.params) {
      const bool numeric = p.kind == ParamKind::Integer || p.kind == ParamKind::Number ||
                           p.kind == ParamKind::PerHead || p.kind == ParamKind::PerLayer;
      const std::string key = dotted(s.name, p.name);
      INFO(key);
      if (numeric && !unbounded.count(key)) CHECK(p.max.has_value());
    }
  // The review's example: a clock of 1e-300 GHz gave energies of 1e307 pJ.
  CHECK_THROWS_WITH(resolve_config(json{{"schema", kConfigSchema}, {"clock_ghz", 1e-300}}, "c.json"),
                    "c.json: clock_ghz: must be >= 0.001, got 1e-300");
  CHECK_THROWS_WITH(resolve_config(json{{"schema", kConfigSchema}, {"dram", {{"latency_cycles", 2000000}}}}, "c.json"),
                    "c.json: dram.latency_cycles: must be <= 1000000, got 2000000");
  CHECK(resolve_config(json{{"schema", kConfigSchema}, {"clock_ghz", 100}}, "c.json").clock_ghz == 100);
}

// Energy model: the built-in 45 nm table, SRAM interpolation, the energy formula on a
// hand-computed case, static power scaled by the configured sizes, and the table's
// validation errors.
#include "sim/energy.h"

#include "sim/config.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>

#include <unistd.h>

using namespace attnsim;
using nlohmann::json;

namespace {

// A small table with round numbers, so the hand case below is easy to follow.
json tiny_table() {
  return json::parse(R"({
    "schema": "attnsim.tech/1", "name": "tiny", "node_nm": 45,
    "primitives_pj": {
      "int8_add":  {"pj": 0.25, "source": "test"},
      "int32_add": {"pj": 0.5,  "source": "test"},
      "fp32_add":  {"pj": 1.0,  "source": "test"},
      "fp32_mult": {"pj": 2.0,  "source": "test"}
    },
    "sram_64bit_access_pj": [
      {"kib": 8, "pj": 10, "source": "test"}, {"kib": 32, "pj": 20, "source": "test"},
      {"kib": 1024, "pj": 100, "source": "test"}
    ],
    "dram_pj_per_bit": {"pj": 4.0, "source": "test"},
    "actions": {
      "dram": {"read_bits": {"dram_bit": 1, "source": "test"}},
      "sram": {"read_words": {"sram_access": 1, "source": "test"}},
      "qk_unit": {"bitplane_ops": {"int32_add": 1, "source": "test"},
                  "adder_tree_inputs": {"int8_add": 1, "source": "test"}},
      "reuse_buffer": {"reads": {"reuse_access": 1, "source": "test"}},
      "softmax": {"exps": {"fp32_mult": 2, "fp32_add": 3, "source": "test"}}
    },
    "static_mw": {
      "dram": {"mw": 100, "source": "test"}, "sram": {"mw": 10, "source": "test"},
      "qk_unit": {"mw": 2, "source": "test"}, "reuse_buffer": {"mw": 0.5, "source": "test"},
      "softmax": {"mw": 4, "source": "test"}
    }
  })");
}

ModuleActivity activity(const std::string& name,
                        std::vector<std::pair<std::string, uint64_t>> counters) {
  ModuleActivity m;
  m.name = name;
  m.counters = std::move(counters);
  return m;
}

std::vector<ModuleActivity> tiny_activity() {
  return {activity("dram", {{"read_bits", 1000}}),
          activity("sram", {{"read_words", 5}}),
          activity("qk_unit", {{"bitplane_ops", 10}, {"adder_tree_inputs", 640}}),
          activity("reuse_buffer", {{"reads", 4}}),
          activity("softmax", {{"exps", 3}})};
}

EnergyContext tiny_context() {
  EnergyContext ctx;
  ctx.sram_bank_kib = 32;     // 20 pJ per 64 bits
  ctx.sram_width_bits = 128;  // -> 40 pJ per word
  ctx.reuse_bank_kib = 8;     // 10 pJ per 64 bits
  ctx.reuse_width_bits = 32;  // -> 5 pJ per entry
  ctx.clock = Clock(2.0);
  ctx.total = Cycles(1000);   // 500 ns
  return ctx;
}

// The tiny table with static power that follows the config: qk_unit by lanes (and a
// bit-parallel override), reuse_buffer by entries x bits_per_entry.
json tiny_scaled_table() {
  json j = tiny_table();
  j["static_mw"]["qk_unit"]["at"] = {{"qk_unit.lanes", 64}};
  j["static_mw"]["qk_unit"]["by_type"] = {{"bit_parallel", {{"mw", 20}, {"source", "test"}}}};
  j["static_mw"]["reuse_buffer"]["at"] = {{"reuse_buffer.entries", 4096},
                                          {"reuse_buffer.bits_per_entry", 32}};
  return j;
}

// The resolved default config with `overrides` ("section.key=value").
json resolved(const std::vector<std::string>& overrides = {}) {
  return resolve_config(json{{"schema", kConfigSchema}}, "<test>", overrides).resolved;
}

EnergyContext context_with(const std::vector<std::string>& overrides) {
  EnergyContext ctx = tiny_context();
  ctx.config = resolved(overrides);
  return ctx;
}

std::string static_error(const TechTable& t, const EnergyContext& ctx, const std::string& module) {
  try {
    static_power_mw(t, ctx, module);
  } catch (const EnergyError& e) {
    return e.what();
  }
  return "(no error)";
}

std::string parse_error(const json& j) {
  try {
    TechTable::parse(j, "my.json");
  } catch (const EnergyError& e) {
    return e.what();
  }
  return "(no error)";
}

// A per-process temp file name, so parallel test runs do not collide.
std::string temp_path(const std::string& stem) {
  return "/tmp/attnsim_" + stem + "_" + std::to_string(::getpid()) + ".json";
}

}  // namespace

TEST_CASE("built-in 45nm table has the Horowitz ISSCC 2014 numbers") {
  const TechTable t = TechTable::load("45nm");
  CHECK(t.name == "45nm");
  CHECK(t.node_nm == 45);
  CHECK(t.primitive_pj.at("int8_add") == 0.03);
  CHECK(t.primitive_pj.at("int32_add") == 0.1);
  CHECK(t.primitive_pj.at("int8_mult") == 0.2);
  CHECK(t.primitive_pj.at("int32_mult") == 3.1);
  CHECK(t.primitive_pj.at("fp16_add") == 0.4);
  CHECK(t.primitive_pj.at("fp16_mult") == 1.1);
  CHECK(t.primitive_pj.at("fp32_add") == 0.9);
  CHECK(t.primitive_pj.at("fp32_mult") == 3.7);
  REQUIRE(t.sram_64bit_pj.size() == 3);
  CHECK(t.sram_64bit_pj[0] == std::make_pair(8.0, 10.0));
  CHECK(t.sram_64bit_pj[1] == std::make_pair(32.0, 20.0));
  CHECK(t.sram_64bit_pj[2] == std::make_pair(1024.0, 100.0));
  CHECK(t.dram_pj_per_bit == 3.9);
}

TEST_CASE("built-in 45nm table equals configs/tech/45nm.json") {
  const TechTable builtin = TechTable::load("45nm");
  const TechTable file = TechTable::load(std::string(ATTNSIM_SOURCE_DIR) + "/configs/tech/45nm.json");
  CHECK(builtin.primitive_pj == file.primitive_pj);
  CHECK(builtin.sram_64bit_pj == file.sram_64bit_pj);
  CHECK(builtin.dram_pj_per_bit == file.dram_pj_per_bit);
  CHECK(builtin.actions == file.actions);
  CHECK(builtin.static_mw == file.static_mw);
  CHECK(builtin.static_scaling == file.static_scaling);
}

TEST_CASE("45nm table: every module has a static entry and every counted action a recipe") {
  const TechTable t = TechTable::load("45nm");
  const std::vector<std::pair<std::string, std::vector<std::string>>> counted = {
      {"dram", {"read_bits", "write_bits"}},
      {"sram", {"read_words", "write_words"}},
      {"qk_unit", {"bitplane_ops", "adder_tree_inputs", "int8_macs"}},
      {"comparator", {"compares"}},
      {"reuse_buffer", {"reads", "writes"}},
      {"softmax", {"max_compares", "exps", "sum_adds", "reciprocals", "normalizes"}},
      {"av_unit", {"macs"}},
      {"skim_controller", {"macs"}},
      {"tree_engine", {"split_macs", "node_reads", "node_writes", "sort_ops", "accumulate_adds", "score_macs",
                       "divides", "node_sum_reads"}},
      {"lsh_unit", {"projection_macs", "sort_ops", "merge_ops", "direction_writes"}},
      {"lowrank_unit", {"macs", "exps", "divides"}},
      {"gemm_engine", {"macs"}}};
  CHECK(t.static_mw.size() == counted.size());
  CHECK(t.actions.size() == counted.size());
  EnergyContext ctx;
  // tree_engine.depth is absent until a run resolves it from the trace (RunPlan::config).
  ctx.config = resolved({"tree_engine.depth=4"});
  for (const auto& [module, actions] : counted) {
    INFO(module);
    CHECK(t.static_mw.count(module) == 1);
    CHECK(static_power_mw(t, ctx, module) > 0);
    for (const auto& action : actions) {
      INFO(action);
      CHECK(action_pj(t, ctx, module, action) > 0);
    }
  }
}

TEST_CASE("45nm recipes in pJ") {
  const TechTable t = TechTable::load("45nm");
  EnergyContext ctx;
  ctx.sram_bank_kib = 8;
  ctx.sram_width_bits = 64;
  ctx.reuse_bank_kib = 32;
  ctx.reuse_width_bits = 32;
  CHECK(action_pj(t, ctx, "dram", "read_bits") == Approx(3.9).epsilon(1e-12));
  CHECK(action_pj(t, ctx, "sram", "write_words") == Approx(10).epsilon(1e-12));
  CHECK(action_pj(t, ctx, "reuse_buffer", "reads") == Approx(10).epsilon(1e-12));
  CHECK(action_pj(t, ctx, "qk_unit", "bitplane_ops") == Approx(0.1).epsilon(1e-12));
  CHECK(action_pj(t, ctx, "qk_unit", "adder_tree_inputs") == Approx(0.03).epsilon(1e-12));
  CHECK(action_pj(t, ctx, "qk_unit", "int8_macs") == Approx(0.3).epsilon(1e-12));
  CHECK(action_pj(t, ctx, "av_unit", "macs") == Approx(2.0).epsilon(1e-12));
  // exp: 4 fp32 mults, 4 fp32 adds, 2 int32 adds (docs/energy.md)
  CHECK(action_pj(t, ctx, "softmax", "exps") == Approx(4 * 3.7 + 4 * 0.9 + 2 * 0.1).epsilon(1e-12));
  // reciprocal: seed (1 int32 add) + 2 Newton-Raphson steps (2 mults + 1 add each)
  CHECK(action_pj(t, ctx, "softmax", "reciprocals") == Approx(4 * 3.7 + 2 * 0.9 + 0.1).epsilon(1e-12));
}

TEST_CASE("SRAM energy interpolates linearly in log-log") {
  const TechTable t = TechTable::load("45nm");
  SECTION("exact at the table points") {
    CHECK(sram_access_pj(t, 8, 64) == 10.0);
    CHECK(sram_access_pj(t, 32, 64) == 20.0);
    CHECK(sram_access_pj(t, 1024, 64) == 100.0);
  }
  SECTION("16 KiB is the log-log midpoint of 8 and 32 KiB") {
    CHECK(sram_access_pj(t, 16, 64) == Approx(10 * std::sqrt(2.0)).epsilon(1e-12));
  }
  SECTION("between 32 KiB and 1 MiB: slope log(5)/log(32)") {
    const double slope = std::log(5.0) / std::log(32.0);
    CHECK(sram_access_pj(t, 64, 64) == Approx(20 * std::pow(2.0, slope)).epsilon(1e-12));
    CHECK(sram_access_pj(t, 64, 64) == Approx(27.5945932).epsilon(1e-8));
  }
  SECTION("extrapolation uses the end segments' slopes") {
    CHECK(sram_access_pj(t, 2, 64) == Approx(5.0).epsilon(1e-12));     // 10 * (1/4)^0.5
    CHECK(sram_access_pj(t, 32768, 64) == Approx(500.0).epsilon(1e-12));  // 100 * 32^slope = 100 * 5
  }
  SECTION("energy scales with the access width") {
    CHECK(sram_access_pj(t, 8, 128) == 20.0);
    CHECK(sram_access_pj(t, 8, 32) == 5.0);
    CHECK(sram_access_pj(t, 16, 256) == Approx(40 * std::sqrt(2.0)).epsilon(1e-12));
  }
  SECTION("bad geometry is an error") {
    CHECK_THROWS_AS(sram_access_pj(t, 0, 64), EnergyError);
    CHECK_THROWS_AS(sram_access_pj(t, 8, 0), EnergyError);
  }
}

TEST_CASE("energy of a hand-computed case") {
  const TechTable t = TechTable::parse(tiny_table(), "tiny.json");
  const auto e = compute_energy(t, tiny_activity(), tiny_context());
  REQUIRE(e.size() == 5);
  // dynamic: count x recipe
  CHECK(e.at("dram").dynamic_pj == Approx(1000 * 4.0).epsilon(1e-9));
  CHECK(e.at("sram").dynamic_pj == Approx(5 * 40.0).epsilon(1e-9));
  CHECK(e.at("qk_unit").dynamic_pj == Approx(10 * 0.5 + 640 * 0.25).epsilon(1e-9));  // 165
  CHECK(e.at("reuse_buffer").dynamic_pj == Approx(4 * 5.0).epsilon(1e-9));
  CHECK(e.at("softmax").dynamic_pj == Approx(3 * (2 * 2.0 + 3 * 1.0)).epsilon(1e-9));  // 21
  // static: mW x 500 ns
  CHECK(e.at("dram").static_pj == Approx(100 * 500.0).epsilon(1e-9));
  CHECK(e.at("sram").static_pj == Approx(10 * 500.0).epsilon(1e-9));
  CHECK(e.at("qk_unit").static_pj == Approx(2 * 500.0).epsilon(1e-9));
  CHECK(e.at("reuse_buffer").static_pj == Approx(0.5 * 500.0).epsilon(1e-9));
  CHECK(e.at("softmax").static_pj == Approx(4 * 500.0).epsilon(1e-9));
  double total = 0;
  for (const auto& [module, me] : e) total += me.dynamic_pj + me.static_pj;
  // 4000 + 200 + 165 + 20 + 21 = 4406 dynamic; 50000 + 5000 + 1000 + 250 + 2000 = 58250 static
  CHECK(total == Approx(62656.0).epsilon(1e-9));
}

TEST_CASE("node_scale multiplies dynamic and static energy") {
  const TechTable t = TechTable::parse(tiny_table(), "tiny.json");
  EnergyContext ctx = tiny_context();
  const auto base = compute_energy(t, tiny_activity(), ctx);
  ctx.node_scale = 0.37;
  const auto scaled = compute_energy(t, tiny_activity(), ctx);
  REQUIRE(scaled.size() == base.size());
  for (const auto& [module, me] : base) {
    INFO(module);
    CHECK(scaled.at(module).dynamic_pj == Approx(0.37 * me.dynamic_pj).epsilon(1e-12));
    CHECK(scaled.at(module).static_pj == Approx(0.37 * me.static_pj).epsilon(1e-12));
  }
}

TEST_CASE("a run with zero cycles has no static energy") {
  const TechTable t = TechTable::parse(tiny_table(), "tiny.json");
  EnergyContext ctx = tiny_context();
  ctx.total = Cycles(0);
  const auto e = compute_energy(t, {activity("qk_unit", {{"bitplane_ops", 3}})}, ctx);
  CHECK(e.at("qk_unit").static_pj == 0.0);
  CHECK(e.at("qk_unit").dynamic_pj == Approx(1.5).epsilon(1e-12));
}

TEST_CASE("table errors name the file, the JSON path and the rule") {
  SECTION("the tiny table itself is valid") { CHECK(parse_error(tiny_table()) == "(no error)"); }
  SECTION("unknown primitive in a recipe") {
    json j = tiny_table();
    j["actions"]["qk_unit"]["bitplane_ops"]["int9_add"] = 1;
    CHECK(parse_error(j) == "my.json: actions.qk_unit.bitplane_ops.int9_add: unknown primitive");
  }
  SECTION("missing source on a primitive") {
    json j = tiny_table();
    j["primitives_pj"]["int8_add"].erase("source");
    CHECK(parse_error(j) ==
          "my.json: primitives_pj.int8_add.source: missing: every value needs a source string");
  }
  SECTION("missing source on an SRAM point, DRAM, static entry and recipe") {
    json j = tiny_table();
    j["sram_64bit_access_pj"][1].erase("source");
    CHECK(parse_error(j).rfind("my.json: sram_64bit_access_pj[1].source: missing", 0) == 0);
    j = tiny_table();
    j["dram_pj_per_bit"].erase("source");
    CHECK(parse_error(j).rfind("my.json: dram_pj_per_bit.source: missing", 0) == 0);
    j = tiny_table();
    j["static_mw"]["sram"].erase("source");
    CHECK(parse_error(j).rfind("my.json: static_mw.sram.source: missing", 0) == 0);
    j = tiny_table();
    j["actions"]["softmax"]["exps"].erase("source");
    CHECK(parse_error(j).rfind("my.json: actions.softmax.exps.source: missing", 0) == 0);
  }
  SECTION("negative values") {
    json j = tiny_table();
    j["primitives_pj"]["fp32_add"]["pj"] = -1;
    CHECK(parse_error(j) == "my.json: primitives_pj.fp32_add.pj: must be >= 0, got -1");
    j = tiny_table();
    j["actions"]["softmax"]["exps"]["fp32_mult"] = -2;
    CHECK(parse_error(j) == "my.json: actions.softmax.exps.fp32_mult: must be >= 0, got -2");
    j = tiny_table();
    j["static_mw"]["dram"]["mw"] = -0.5;
    CHECK(parse_error(j) == "my.json: static_mw.dram.mw: must be >= 0, got -0.5");
    j = tiny_table();
    j["dram_pj_per_bit"]["pj"] = -3.9;
    CHECK(parse_error(j) == "my.json: dram_pj_per_bit.pj: must be >= 0, got -3.9");
  }
  SECTION("SRAM points must be positive and distinct") {
    json j = tiny_table();
    j["sram_64bit_access_pj"][0]["kib"] = 0;
    CHECK(parse_error(j) == "my.json: sram_64bit_access_pj[0].kib: must be > 0, got 0");
    j = tiny_table();
    j["sram_64bit_access_pj"][2]["kib"] = 8;
    CHECK(parse_error(j) == "my.json: sram_64bit_access_pj: two points at 8 KiB");
  }
  SECTION("non-finite value (programmatic JSON)") {
    json j = tiny_table();
    j["primitives_pj"]["int8_add"]["pj"] = std::nan("");
    CHECK(parse_error(j) == "my.json: primitives_pj.int8_add.pj: must be finite");
  }
  SECTION("wrong schema and unknown keys") {
    json j = tiny_table();
    j["schema"] = "attnsim.tech/2";
    CHECK(parse_error(j) == "my.json: schema: must be \"attnsim.tech/1\"");
    j = tiny_table();
    j["primitives_pj"]["int8_add"]["pJ"] = 1;
    CHECK(parse_error(j) == "my.json: primitives_pj.int8_add.pJ: unknown key");
    j = tiny_table();
    j["static_power"] = json::object();
    CHECK(parse_error(j) == "my.json: static_power: unknown key");
  }
  SECTION("a derived primitive name cannot be redefined") {
    json j = tiny_table();
    j["primitives_pj"]["dram_bit"] = {{"pj", 1}, {"source", "x"}};
    CHECK(parse_error(j).rfind("my.json: primitives_pj.dram_bit: reserved name", 0) == 0);
  }
}

TEST_CASE("energy errors: missing recipe, missing static entry") {
  const TechTable t = TechTable::parse(tiny_table(), "tiny.json");
  const EnergyContext ctx = tiny_context();
  SECTION("a counter without a recipe names module.action") {
    CHECK_THROWS_WITH(compute_energy(t, {activity("qk_unit", {{"int8_macs", 0}})}, ctx),
                      Catch::Contains("actions.qk_unit.int8_macs: no recipe"));
    CHECK_THROWS_AS(action_pj(t, ctx, "gemm_engine", "macs"), EnergyError);
  }
  SECTION("a module without a static entry") {
    CHECK_THROWS_WITH(compute_energy(t, {activity("comparator", {})}, ctx),
                      Catch::Contains("static_mw.comparator: missing"));
  }
}

TEST_CASE("load: built-in names and paths") {
  SECTION("unknown built-in name lists the built-ins") {
    CHECK_THROWS_WITH(TechTable::load("7nm"),
                      Catch::Contains("unknown built-in technology table \"7nm\"") &&
                          Catch::Contains("45nm"));
  }
  SECTION("a path is read from disk, errors name the file") {
    const std::string path = temp_path("energy_test_table");
    json j = tiny_table();
    j["primitives_pj"]["int8_add"]["pj"] = "cheap";
    std::ofstream(path) << j.dump();
    CHECK_THROWS_WITH(TechTable::load(path),
                      path + ": primitives_pj.int8_add.pj: must be a number");
    std::ofstream(path) << tiny_table().dump();
    CHECK(TechTable::load(path).name == "tiny");
    std::remove(path.c_str());
    CHECK_THROWS_WITH(TechTable::load(path), Catch::Contains("cannot open"));
  }
  SECTION("invalid JSON") {
    const std::string path = temp_path("energy_test_bad");
    std::ofstream(path) << "{ \"schema\": ";
    CHECK_THROWS_WITH(TechTable::load(path), Catch::StartsWith(path + ": not valid JSON"));
    std::remove(path.c_str());
  }
}

TEST_CASE("static power scales with the configured sizes (hand-computed)") {
  const TechTable t = TechTable::parse(tiny_scaled_table(), "tiny.json");
  SECTION("at the reference sizes: the table's mW") {
    const EnergyContext ctx = context_with({});
    CHECK(static_power_mw(t, ctx, "qk_unit") == 2.0);
    CHECK(static_power_mw(t, ctx, "reuse_buffer") == 0.5);
  }
  SECTION("qk_unit: 128 lanes double it, 16 lanes quarter it") {
    CHECK(static_power_mw(t, context_with({"qk_unit.lanes=128"}), "qk_unit") == 4.0);
    CHECK(static_power_mw(t, context_with({"qk_unit.lanes=16"}), "qk_unit") == 0.5);
  }
  SECTION("reuse_buffer: product over both keys") {
    // 0.5 mW x (8192/4096) x (8/32) = 0.25 mW
    const EnergyContext ctx =
        context_with({"reuse_buffer.entries=8192", "reuse_buffer.bits_per_entry=8"});
    CHECK(static_power_mw(t, ctx, "reuse_buffer") == Approx(0.25).epsilon(1e-12));
    // banks are not a size key: 16 banks leak as 4
    CHECK(static_power_mw(t, context_with({"reuse_buffer.banks=16"}), "reuse_buffer") == 0.5);
  }
  SECTION("modules without \"at\" are fixed") {
    const EnergyContext ctx = context_with({"sram.capacity_kib=4096", "dram.bytes_per_cycle=256"});
    CHECK(static_power_mw(t, ctx, "sram") == 10.0);
    CHECK(static_power_mw(t, ctx, "dram") == 100.0);
  }
  SECTION("compute_energy charges the scaled power over the run") {
    const EnergyContext ctx = context_with({"qk_unit.lanes=128"});
    const auto e = compute_energy(t, tiny_activity(), ctx);
    CHECK(e.at("qk_unit").static_pj == Approx(4.0 * 500).epsilon(1e-12));  // 4 mW x 500 ns
    CHECK(e.at("reuse_buffer").static_pj == Approx(0.5 * 500).epsilon(1e-12));
    CHECK(e.at("dram").static_pj == Approx(100.0 * 500).epsilon(1e-12));
    // dynamic energy does not depend on the lane count
    CHECK(e.at("qk_unit").dynamic_pj == Approx(165.0).epsilon(1e-12));
  }
  SECTION("the static energy of a hand-built table follows the same rule") {
    TechTable hand = t;
    hand.static_scaling["softmax"].at["softmax.elements_per_cycle"] = 16;
    // 4 mW x 64/16 = 16 mW
    CHECK(static_power_mw(hand, context_with({"softmax.elements_per_cycle=64"}), "softmax") == 16.0);
  }
}

TEST_CASE("static power: by_type overrides the mW for the configured qk_unit.type") {
  const TechTable t = TechTable::parse(tiny_scaled_table(), "tiny.json");
  REQUIRE(t.static_scaling.at("qk_unit").mw_by_type.at("bit_parallel") == 20.0);
  const EnergyContext serial = context_with({"qk_unit.type=bit_serial"});
  const EnergyContext parallel = context_with({"qk_unit.type=bit_parallel", "qk_unit.mode=dense"});
  const EnergyContext parallel_wide =
      context_with({"qk_unit.type=bit_parallel", "qk_unit.mode=dense", "qk_unit.lanes=256"});
  CHECK(static_power_mw(t, serial, "qk_unit") == 2.0);    // no override for bit_serial
  CHECK(static_power_mw(t, parallel, "qk_unit") == 20.0);
  CHECK(static_power_mw(t, parallel_wide, "qk_unit") == 80.0);  // 20 x 256/64
}

TEST_CASE("EnergyContext defaults are the default config's storage geometry") {
  const Config c = default_config();
  const EnergyContext ctx;
  CHECK(ctx.sram_bank_kib == static_cast<double>(c.sram.capacity_kib) / c.sram.banks);
  CHECK(ctx.sram_width_bits == c.sram.width_bits);
  // The reuse buffer holds two segments of `entries` partial sums (arch/qk_unit.h).
  CHECK(ctx.reuse_bank_kib ==
        2.0 * c.reuse_buffer.entries * c.reuse_buffer.bits_per_entry / 8192 / c.reuse_buffer.banks);
  CHECK(ctx.reuse_width_bits == c.reuse_buffer.bits_per_entry);
  CHECK(ctx.config.is_null());
}

TEST_CASE("45nm static power: scaled values at sizes other than the reference") {
  const TechTable t = TechTable::load("45nm");
  const auto mw = [&](const std::string& module, const std::vector<std::string>& overrides) {
    EnergyContext ctx;
    ctx.config = resolved(overrides);
    return static_power_mw(t, ctx, module);
  };
  CHECK(mw("qk_unit", {"qk_unit.lanes=128"}) == Approx(25.8).epsilon(1e-12));
  CHECK(mw("qk_unit", {"qk_unit.type=bit_parallel", "qk_unit.mode=dense"}) == 123.0);
  CHECK(mw("qk_unit", {"qk_unit.type=bit_parallel", "qk_unit.mode=dense", "qk_unit.lanes=32"}) ==
        Approx(61.5).epsilon(1e-12));
  CHECK(mw("comparator", {"comparator.keys_per_cycle=16"}) == Approx(0.16).epsilon(1e-12));
  CHECK(mw("reuse_buffer", {"reuse_buffer.entries=8192"}) == Approx(8.0).epsilon(1e-12));
  CHECK(mw("reuse_buffer", {"reuse_buffer.bits_per_entry=16"}) == Approx(2.0).epsilon(1e-12));
  CHECK(mw("reuse_buffer", {"reuse_buffer.banks=4"}) == 4.0);  // capacity unchanged
  CHECK(mw("softmax", {"softmax.elements_per_cycle=128"}) == Approx(298).epsilon(1e-12));
  CHECK(mw("av_unit", {"av_unit.macs_per_cycle=1024"}) == Approx(204.75).epsilon(1e-12));
  CHECK(mw("sram", {"sram.capacity_kib=256"}) == Approx(32.0).epsilon(1e-12));
  CHECK(mw("sram", {"sram.banks=4", "sram.width_bits=64"}) == 128.0);  // capacity unchanged
  CHECK(mw("gemm_engine", {"gemm_engine.rows=64", "gemm_engine.cols=16"}) == Approx(30.7).epsilon(1e-12));
  CHECK(mw("gemm_engine", {"gemm_engine.rows=64"}) == Approx(61.4).epsilon(1e-12));
  CHECK(mw("dram", {"dram.bytes_per_cycle=256"}) == 200.0);  // fixed controller/PHY
}

TEST_CASE("a run's static factor scales a module's static power (QK lanes narrower than d)") {
  // qk_unit.lane_width = 16 on a d = 64 trace: the run's factor W / d = 0.25 multiplies the
  // table's 12.9 mW (64 lanes); with 128 lanes 25.8 x 0.25; modules without a factor keep
  // theirs, fixed ones too (dram 200 mW).
  const TechTable t = TechTable::load("45nm");
  EnergyContext ctx;
  ctx.config = resolved({});
  ctx.static_factor = {{"qk_unit", 0.25}, {"dram", 0.5}};
  CHECK(static_power_mw(t, ctx, "qk_unit") == Approx(12.9 * 0.25).epsilon(1e-12));
  CHECK(static_power_mw(t, ctx, "dram") == Approx(100.0).epsilon(1e-12));
  EnergyContext plain;
  plain.config = ctx.config;
  CHECK(static_power_mw(t, ctx, "softmax") == static_power_mw(t, plain, "softmax"));
  ctx.config = resolved({"qk_unit.lanes=128"});
  CHECK(static_power_mw(t, ctx, "qk_unit") == Approx(25.8 * 0.25).epsilon(1e-12));
}

TEST_CASE("45nm static power is 10% of peak dynamic power at its reference sizes") {
  // Recomputed from the table's own recipes at the sizes in each "at" block, so a static
  // entry cannot drift from the recipes or from its reference size (values are rounded
  // to 3 significant digits in the table: 0.5% tolerance).
  const TechTable t = TechTable::load("45nm");
  const auto at = [&](const std::string& module, const std::string& key) {
    return t.static_scaling.at(module).at.at(key);
  };
  const double d = 64;  // head dimension the QK lanes are sized for
  EnergyContext ctx;
  const auto pj = [&](const std::string& m, const std::string& a) { return action_pj(t, ctx, m, a); };
  const auto ten_percent = [](double pj_per_cycle) { return Approx(0.1 * pj_per_cycle).epsilon(0.005); };

  // SRAM: the reference capacity as 32 banks of 128-bit accesses, one per bank per cycle.
  const int sram_banks = 32;
  ctx.sram_bank_kib = at("sram", "sram.capacity_kib") / sram_banks;
  ctx.sram_width_bits = 128;
  CHECK(t.static_mw.at("sram") == ten_percent(sram_banks * pj("sram", "read_words")));
  // Reuse buffer: the reference entries x bits as 16 banks, one access per bank per cycle.
  const int reuse_banks = 16;
  const double entry_bits = at("reuse_buffer", "reuse_buffer.bits_per_entry");
  // two segments of `entries` partial sums (arch/qk_unit.h)
  ctx.reuse_bank_kib = 2 * at("reuse_buffer", "reuse_buffer.entries") * entry_bits / 8192 / reuse_banks;
  ctx.reuse_width_bits = static_cast<int>(entry_bits);
  CHECK(t.static_mw.at("reuse_buffer") == ten_percent(reuse_banks * pj("reuse_buffer", "reads")));

  const double lanes = at("qk_unit", "qk_unit.lanes");
  CHECK(t.static_mw.at("qk_unit") ==
        ten_percent(lanes * (d * pj("qk_unit", "adder_tree_inputs") + pj("qk_unit", "bitplane_ops"))));
  CHECK(t.static_scaling.at("qk_unit").mw_by_type.at("bit_parallel") ==
        ten_percent(lanes * d * pj("qk_unit", "int8_macs")));
  CHECK(t.static_mw.at("comparator") ==
        ten_percent(at("comparator", "comparator.keys_per_cycle") * pj("comparator", "compares")));
  CHECK(t.static_mw.at("softmax") ==
        ten_percent(at("softmax", "softmax.elements_per_cycle") *
                    (pj("softmax", "max_compares") + pj("softmax", "exps") + pj("softmax", "sum_adds") +
                     pj("softmax", "normalizes"))));
  CHECK(t.static_mw.at("av_unit") ==
        ten_percent(at("av_unit", "av_unit.macs_per_cycle") * pj("av_unit", "macs")));
  CHECK(t.static_mw.at("gemm_engine") ==
        ten_percent(at("gemm_engine", "gemm_engine.rows") * at("gemm_engine", "gemm_engine.cols") *
                    pj("gemm_engine", "macs")));
  // Fixed entry: DRAM at 64 bytes/cycle.
  CHECK(t.static_scaling.count("dram") == 0);
  CHECK(t.static_mw.at("dram") == ten_percent(64 * 8 * pj("dram", "read_bits")));
  // The skim controller scales with its MAC array (skim_controller.macs_per_cycle).
  CHECK(t.static_mw.at("skim_controller") ==
        ten_percent(at("skim_controller", "skim_controller.macs_per_cycle") * pj("skim_controller", "macs")));
  // Tree engine: every routing stage's MACs, each with a node-parameter read.
  CHECK(t.static_mw.at("tree_engine") ==
        ten_percent(at("tree_engine", "tree_engine.depth") * at("tree_engine", "tree_engine.macs_per_stage") *
                    (pj("tree_engine", "split_macs") + pj("tree_engine", "node_reads"))));
  // LSH unit: its projection MACs and its 8-wide sorter (the default sorter_width).
  CHECK(t.static_mw.at("lsh_unit") ==
        ten_percent(at("lsh_unit", "lsh_unit.macs_per_cycle") * pj("lsh_unit", "projection_macs") +
                    8 * pj("lsh_unit", "sort_ops")));
  // Low-rank unit: two pipelines of MACs and 16 exps (the default exps_per_cycle) each.
  CHECK(t.static_mw.at("lowrank_unit") ==
        ten_percent(2 * (at("lowrank_unit", "lowrank_unit.macs_per_cycle") * pj("lowrank_unit", "macs") +
                         16 * pj("lowrank_unit", "exps"))));
}

TEST_CASE("static scaling errors name the table path") {
  SECTION("the scaled tiny table is valid") { CHECK(parse_error(tiny_scaled_table()) == "(no error)"); }
  SECTION("unknown config key in \"at\"") {
    json j = tiny_scaled_table();
    j["static_mw"]["qk_unit"]["at"] = {{"qk_unit.lane", 64}};
    CHECK(parse_error(j) == "my.json: static_mw.qk_unit.at.qk_unit.lane: unknown config key");
    j["static_mw"]["qk_unit"]["at"] = {{"qk.lanes", 64}};
    CHECK(parse_error(j) == "my.json: static_mw.qk_unit.at.qk.lanes: unknown config key");
  }
  SECTION("a config key that is not a number parameter") {
    json j = tiny_scaled_table();
    j["static_mw"]["qk_unit"]["at"] = {{"qk_unit.type", 1}};
    CHECK(parse_error(j) ==
          "my.json: static_mw.qk_unit.at.qk_unit.type: config key is not a number parameter");
  }
  SECTION("reference values are numbers > 0") {
    json j = tiny_scaled_table();
    j["static_mw"]["qk_unit"]["at"]["qk_unit.lanes"] = 0;
    CHECK(parse_error(j) == "my.json: static_mw.qk_unit.at.qk_unit.lanes: must be > 0, got 0");
    j["static_mw"]["qk_unit"]["at"]["qk_unit.lanes"] = "64";
    CHECK(parse_error(j) == "my.json: static_mw.qk_unit.at.qk_unit.lanes: must be a number");
    j["static_mw"]["qk_unit"]["at"] = json::array({64});
    CHECK(parse_error(j).rfind("my.json: static_mw.qk_unit.at: must be an object", 0) == 0);
  }
  SECTION("by_type: known types of <module>.type, each with mw and source") {
    json j = tiny_scaled_table();
    j["static_mw"]["qk_unit"]["by_type"]["bit_paralel"] = {{"mw", 1}, {"source", "x"}};
    CHECK(parse_error(j) ==
          "my.json: static_mw.qk_unit.by_type.bit_paralel: not a value of qk_unit.type");
    j = tiny_scaled_table();
    j["static_mw"]["qk_unit"]["by_type"]["bit_parallel"].erase("source");
    CHECK(parse_error(j).rfind("my.json: static_mw.qk_unit.by_type.bit_parallel.source: missing", 0) == 0);
    j = tiny_scaled_table();
    j["static_mw"]["sram"]["by_type"] = {{"x", {{"mw", 1}, {"source", "x"}}}};
    CHECK(parse_error(j) == "my.json: static_mw.sram.by_type: the config has no choice sram.type");
  }
  SECTION("a key that is not a number in the resolved config") {
    const TechTable t = TechTable::parse(tiny_scaled_table(), "tiny.json");
    EnergyContext ctx = tiny_context();
    ctx.config = resolved();
    ctx.config["qk_unit"]["lanes"] = "wide";
    CHECK(static_error(t, ctx, "qk_unit") ==
          "tiny: static_mw.qk_unit.at.qk_unit.lanes: qk_unit.lanes must be a number in the config, "
          "got \"wide\"");
    CHECK_THROWS_WITH(compute_energy(t, tiny_activity(), ctx),
                      Catch::Contains("static_mw.qk_unit.at.qk_unit.lanes"));
    ctx.config["qk_unit"]["lanes"] = json::array({64});
    CHECK(static_error(t, ctx, "qk_unit") ==
          "tiny: static_mw.qk_unit.at.qk_unit.lanes: qk_unit.lanes must be a number in the config, "
          "got [64]");
  }
  SECTION("a key missing from the config (hand-built table or config)") {
    TechTable t = TechTable::parse(tiny_scaled_table(), "tiny.json");
    t.static_scaling["sram"].at["sram.size"] = 1;
    EnergyContext ctx = tiny_context();
    ctx.config = resolved();
    CHECK(static_error(t, ctx, "sram") ==
          "tiny: static_mw.sram.at.sram.size: sram.size is not a key of the config");
    ctx.config.erase("qk_unit");
    CHECK(static_error(t, ctx, "qk_unit") ==
          "tiny: static_mw.qk_unit.by_type: qk_unit.type is not a key of the config");
  }
  SECTION("a scaled entry without a config") {
    const TechTable t = TechTable::parse(tiny_scaled_table(), "tiny.json");
    const EnergyContext ctx = tiny_context();  // config left null
    CHECK(static_error(t, ctx, "qk_unit") ==
          "tiny: static_mw.qk_unit.by_type: needs qk_unit.type, but the energy model was given no config");
    CHECK(static_error(t, ctx, "reuse_buffer").find("needs reuse_buffer.bits_per_entry") != std::string::npos);
    CHECK(static_error(t, ctx, "dram") == "(no error)");  // fixed entries need no config
  }
}

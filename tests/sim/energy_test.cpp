// Energy model: the built-in 45 nm table, SRAM interpolation, the energy formula on a
// hand-computed case, and the table's validation errors.
#include "sim/energy.h"

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
      {"tree_engine", {"node_macs"}},
      {"lsh_unit", {"projection_macs"}},
      {"lowrank_unit", {"feature_macs", "exps"}},
      {"gemm_engine", {"macs"}}};
  CHECK(t.static_mw.size() == counted.size());
  CHECK(t.actions.size() == counted.size());
  EnergyContext ctx;
  for (const auto& [module, actions] : counted) {
    INFO(module);
    CHECK(t.static_mw.count(module) == 1);
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
    CHECK_THROWS_WITH(TechTable::load(path), Catch::StartsWith(path + ": invalid JSON"));
    std::remove(path.c_str());
  }
}

// `attnsim kernel` (sim/cli/kernel.cpp): the floors scripts/bench.sh measures attnsim
// against must do the arithmetic attnsim does, so their counts are checked against runs.
#include "tests/support/cli.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <regex>
#include <string>

namespace {

double checksum(const std::string& out) {
  std::smatch m;
  REQUIRE(std::regex_search(out, m, std::regex("checksum ([-0-9.e+]+)")));
  return std::stod(m[1]);
}

}  // namespace

TEST_CASE("the filter floor keeps exactly the keys attnsim's LATTE run keeps") {
  const std::string demo = std::string(ATTNSIM_SOURCE_DIR) + "/workloads/demo.safetensors";
  const attnsim::test::CliResult k = attnsim::test::run_attnsim("kernel --trace " + demo + " --floor filter");
  REQUIRE(k.code == 0);
  const auto dir = attnsim::test::scratch_dir("kernel_cli");
  const std::string out = (dir / "latte.json").string();
  const attnsim::test::CliResult r = attnsim::test::run_attnsim(
      "run -q --config " + std::string(ATTNSIM_SOURCE_DIR) + "/configs/latte.json --trace " + demo + " --out " + out);
  REQUIRE(r.code == 0);
  std::ifstream f(out);
  const nlohmann::json filter = nlohmann::json::parse(f)["filter"];
  const double kept = filter["candidate_keys"].get<double>() - filter["filtered_keys"].get<double>();
  CHECK(checksum(k.out) == kept);  // the floor's checksum is its survivors' count (84349)
  CHECK(kept == 84349);
}

TEST_CASE("attnsim kernel: an unknown floor is one line and a non-zero exit") {
  const attnsim::test::CliResult k = attnsim::test::run_attnsim(
      "kernel --trace " + std::string(ATTNSIM_SOURCE_DIR) + "/workloads/demo.safetensors --floor sparse");
  CHECK(k.code != 0);
  CHECK(k.out == "attnsim: kernel: --floor must be dense, filter or filter+exact, got 'sparse'\n");
}

// `attnsim gemm` as a user drives it: the JSON fields, the text summary, config overrides,
// and one-line errors with a non-zero exit.
#include "tests/support/cli.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using Result = attnsim::test::CliResult;
using attnsim::test::count_lines;



}  // namespace

TEST_CASE("gemm --json prints one object with the engine's cycles for the issue's example") {
  const Result r = attnsim::test::run_attnsim("gemm --m 512 --n 512 --k 64 --json");
  REQUIRE(r.code == 0);
  CHECK(count_lines(r.out) == 1);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  CHECK(j.at("cycles") == 32256);
  CHECK(j.at("compute_cycles") == 32256);
  CHECK(j.at("scalesim_total_cycles") == 32255);
  CHECK(j.at("stall_cycles") == 0);
  CHECK(j.at("macs") == 16777216);
  CHECK(j.at("utilization").get<double>() == Approx(32.0 / 63.0).epsilon(1e-12));
  CHECK(j.at("folds") == 256);
  CHECK(j.at("cycles_per_fold") == 126);
  CHECK(j.at("dataflow") == "os");
  CHECK(j.at("dram_read_bytes") == 557056);
  CHECK(j.at("dram_write_bytes") == 1048576);
  CHECK(j.at("fits_in_buffer") == false);
}

TEST_CASE("gemm --set and --config change the engine and the DRAM") {
  // ws, 32 B/cycle: compute 32 x 606 = 19392; DRAM 1605632 / 32 + 100 = 50276; stall 30884.
  const Result r = attnsim::test::run_attnsim("gemm --m 512 --n 512 --k 64 --set gemm_engine.dataflow=ws --set dram.bytes_per_cycle=32 --json");
  REQUIRE(r.code == 0);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  CHECK(j.at("compute_cycles") == 19392);
  CHECK(j.at("stall_cycles") == 50276 - 19392);
  CHECK(j.at("cycles") == 50276);

  const auto dir = std::filesystem::temp_directory_path() / ("attnsim_gemm_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string cfg = (dir / "g.json").string();
  std::ofstream(cfg) << R"({"schema": "attnsim.config/1", "gemm_engine": {"rows": 1, "cols": 1}})";
  const Result c = attnsim::test::run_attnsim("gemm --m 3 --n 5 --k 7 --config " + cfg + " --json");
  REQUIRE(c.code == 0);
  CHECK(nlohmann::json::parse(c.out).at("compute_cycles") == 105);
}

TEST_CASE("gemm without --json prints a text summary") {
  const Result r = attnsim::test::run_attnsim("gemm --m 512 --n 512 --k 64");
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("compute     32256 cycles (SCALE-Sim Total Cycles 32255)"));
  CHECK_THAT(r.out, Catch::Contains("utilization 0.507937"));
}

TEST_CASE("gemm bad arguments exit non-zero with one line") {
  const auto check = [](const std::string& args, const std::string& message) {
    const Result r = attnsim::test::run_attnsim(args);
    CHECK(r.code != 0);
    CHECK(r.out == message + "\n");
  };
  check("gemm --n 4 --k 4", "attnsim: gemm: --m is required");
  check("gemm --m 0 --n 4 --k 4", "attnsim: gemm: --m: must be an integer from 1 to 1048576, got '0'");
  check("gemm --m 4 --n -3 --k 4", "attnsim: gemm: --n: must be an integer from 1 to 1048576, got '-3'");
  check("gemm --m 4 --n 4 --k 1048577", "attnsim: gemm: --k: must be an integer from 1 to 1048576, got '1048577'");
  check("gemm --m 4 --n 4 --k 4x", "attnsim: gemm: --k: must be an integer from 1 to 1048576, got '4x'");
  check("gemm --m 4 --n 4 --k 4 --set gemm_engine.dataflow=rs",
        "attnsim: --set gemm_engine.dataflow: must be one of \"os\", \"ws\", \"is\", got \"rs\"");
  check("gemm --m 4 --n 4 --k 4 --set gemm_engine.rows=0", "attnsim: --set gemm_engine.rows: must be >= 1, got 0");
}

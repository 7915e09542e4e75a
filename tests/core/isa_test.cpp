// core/isa.h: the kernels' instruction-set path. Every path giving the golden stats bit for
// bit is checked by the ctest golden_runs_<isa> (scripts/golden.py --isa).
#include "core/isa.h"
#include "tests/support/cli.h"

#include <catch2/catch.hpp>

#include <string>

using namespace attnsim;

TEST_CASE("attnsim --isa names the path in use, then every path the CPU can run, baseline first") {
  const test::CliResult r = test::run_attnsim("--isa");
  REQUIRE(r.code == 0);
  const std::string best = isa_name(active_isa());
  CHECK(r.out.rfind(best + " baseline", 0) == 0);
  CHECK(isa_supported(Isa::baseline));
  const test::CliResult forced = test::shell("ATTNSIM_ISA=baseline " + std::string(ATTNSIM_BINARY) + " --isa");
  CHECK(forced.out.rfind("baseline baseline", 0) == 0);
}

TEST_CASE("an unknown ATTNSIM_ISA is one line and exit 2, before any work") {
  const test::CliResult r = test::shell("ATTNSIM_ISA=sse9 " + std::string(ATTNSIM_BINARY) + " run --help");
  CHECK(r.code == 2);
  CHECK(r.out == "attnsim: ATTNSIM_ISA=sse9: unknown path (baseline, avx2, avx512)\n");
}

TEST_CASE("pick_isa returns the build of the active path") {
  const int picked = pick_isa(0, 1, 2);
  CHECK(picked == static_cast<int>(active_isa()));
}

// The GEMM engine's SystemC module on short job sequences whose times are derived by hand
// from the rules in arch/gemm_math.h. Each TEST_CASE elaborates one design: ctest runs
// each in its own process (SystemC allows one simulation per process).
#include "arch/gemm_engine.h"
#include "arch/kernel_time.h"

#include <catch2/catch.hpp>

#include <systemc>

#include <string>
#include <vector>

using namespace attnsim;

namespace {

GemmEngineParams engine_params(const std::string& dataflow = "os") {
  GemmEngineParams p{32, 32, gemm::parse_dataflow(dataflow)};
  p.sram_kib = 512;
  p.input_bits = 8;
  p.output_bits = 32;
  return p;
}

// Feeds `jobs` at cycle 0 and records when each comes out of `done`; the sink starts
// reading at `sink_start`.
struct Harness : sc_core::sc_module {
  sc_core::sc_fifo<GemmJob> jobs_fifo;
  sc_core::sc_fifo<GemmJob> done_fifo;
  GemmEngine engine;
  std::vector<GemmJob> jobs;
  Cycles sink_start;
  std::vector<std::pair<std::string, uint64_t>> finished;  // name, cycle it left `done`

  Harness(sc_core::sc_module_name name, std::vector<GemmJob> j, int done_depth, Cycles start,
          const DramParams& dram)
      : sc_module(name),
        jobs_fifo("jobs", 8),
        done_fifo("done", done_depth),
        engine("gemm_engine", engine_params(), dram),
        jobs(std::move(j)),
        sink_start(start) {
    engine.in(jobs_fifo);
    engine.out(done_fifo);
    SC_HAS_PROCESS(Harness);
    SC_THREAD(source);
    SC_THREAD(sink);
  }
  void source() {
    for (const GemmJob& j : jobs) jobs_fifo.write(j);
  }
  void sink() {
    wait_until(sink_start);
    for (size_t i = 0; i < jobs.size(); ++i) {
      const GemmJob j = done_fifo.read();
      finished.emplace_back(j.name, now_cycles().count());
    }
  }
};

// Two jobs at the default DRAM (64 B/cycle, latency 100):
//  "qkv" 512 x 512 x 64, os: compute 256 x 126 = 32256; DRAM 25188 (see gemm_math_test):
//    no stall.
//  "out" 512 x 512 x 1: compute 16 x 16 folds x (32 + 32 + 1 - 2 = 63) = 16128;
//    A = B = 512 B, C = 1 MiB: does not fit, reads 16 x 512 + 512 = 8704 B, writes
//    1048576 B; 1057280 / 64 = 16520 + 100 = 16620 DRAM cycles: stall 16620 - 16128 = 492.
const std::vector<GemmJob> kTwoJobs = {{"qkv", 512, 512, 64}, {"out", 512, 512, 1}};
const DramParams kDram{64, 100, 2048};

}  // namespace

TEST_CASE("two jobs back to back: busy is compute and stall is the memory excess") {
  init_kernel_time();
  Harness h("h", kTwoJobs, 4, Cycles(0), kDram);
  sc_core::sc_start();
  REQUIRE(h.finished.size() == 2);
  CHECK(h.finished[0] == std::make_pair(std::string("qkv"), uint64_t{32256}));
  CHECK(h.finished[1] == std::make_pair(std::string("out"), uint64_t{32256 + 16128 + 492}));
  const ModuleActivity a = h.engine.activity();
  CHECK(a.name == "gemm_engine");
  CHECK(a.busy == 32256 + 16128);
  CHECK(a.stall == 492);
  CHECK(h.engine.memory_stall_cycles() == 492);
  REQUIRE(a.counters.size() == 1);
  CHECK(a.counter("macs") == 512 * 512 * 64 + 512 * 512);
  CHECK(h.engine.jobs_done() == 2);
  // DRAM: reads 557056 + 8704 B, writes 2 x 1048576 B.
  CHECK(h.engine.dram_read_bits() == 8 * (557056 + 8704));
  CHECK(h.engine.dram_write_bits() == 8 * 2 * 1048576);
  // Array edge (os): qkv reads 16 x 262144 + 16 x 262144 bits, writes 8388608;
  // out reads 16 x (512 x 8) + 16 x (512 x 8) = 131072 bits, writes 8388608.
  CHECK(h.engine.sram_read_bits() == 8388608 + 131072);
  CHECK(h.engine.sram_write_bits() == 2 * 8388608);
}

TEST_CASE("a full done FIFO stalls the engine until the consumer reads") {
  // done holds one job; the consumer starts reading at cycle 100000. "qkv" enters the FIFO
  // at 32256; "out" is ready at 48876 and waits until the consumer frees the slot at
  // 100000: back-pressure 100000 - 48876 = 51124 on top of the 492 memory stall.
  init_kernel_time();
  Harness h("h", kTwoJobs, 1, Cycles(100000), kDram);
  sc_core::sc_start();
  REQUIRE(h.finished.size() == 2);
  CHECK(h.finished[0].second == 100000);
  CHECK(h.finished[1].second == 100000);
  const ModuleActivity a = h.engine.activity();
  CHECK(a.busy == 48384);
  CHECK(a.stall == 492 + 51124);
  CHECK(h.engine.memory_stall_cycles() == 492);
}

TEST_CASE("a job with a zero dimension stops the simulation with an error naming it") {
  init_kernel_time();
  Harness h("h", {{"ffn1", 8, 0, 8}}, 1, Cycles(0), kDram);
  try {
    sc_core::sc_start();
    FAIL("sc_start did not throw");
  } catch (const std::exception& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("gemm job 'ffn1': gemm: M, N and K must be >= 1"));
  }
}

TEST_CASE("an unknown dataflow never reaches the engine: its name is rejected when parsed") {
  CHECK_THROWS_WITH(engine_params("rs"), "gemm_engine.dataflow: must be one of \"os\", \"ws\", \"is\", got \"rs\"");
}

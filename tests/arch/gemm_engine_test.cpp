// The GEMM engine's SystemC module on short job sequences whose times are derived by hand
// from the rules in arch/gemm_math.h and arch/gemm_engine.h, on its own DRAM channel
// ("separate") and on the channel it shares with the DMA ("shared"). Each TEST_CASE
// elaborates one design: ctest runs each in its own process (SystemC allows one simulation
// per process).
#include "arch/candidates.h"
#include "arch/dma.h"
#include "arch/gemm_engine.h"
#include "arch/head_model.h"
#include "arch/kernel_time.h"
#include "arch/sc_threads.h"
#include "arch/sram.h"
#include "tests/support/head_fixtures.h"

#include <catch2/catch.hpp>

#include <systemc>

#include <string>
#include <vector>

using namespace attnsim;

namespace {

GemmEngineParams engine_params(const std::string& dataflow = "os", gemm::DramPath path = gemm::DramPath::shared) {
  GemmEngineParams p{32, 32, gemm::parse_dataflow(dataflow)};
  p.sram_kib = 512;
  p.input_bits = 8;
  p.output_bits = 32;
  p.dram_path = path;
  return p;
}

// Feeds `jobs` at cycle 0 and records when each comes out of `done`; the sink starts
// reading at `sink_start`.
struct Harness : sc_core::sc_module {
  sc_core::sc_fifo<GemmJob> jobs_fifo;
  sc_core::sc_fifo<GemmJob> done_fifo;
  DramChannel dram;
  GemmEngine engine;
  std::vector<GemmJob> jobs;
  Cycles sink_start;
  std::vector<std::pair<std::string, uint64_t>> finished;  // name, cycle it left `done`

  Harness(sc_core::sc_module_name name, std::vector<GemmJob> j, int done_depth, Cycles start,
          const DramParams& dram_params, gemm::DramPath path)
      : sc_module(name),
        jobs_fifo("jobs", 8),
        done_fifo("done", done_depth),
        dram(dram_params),
        engine("gemm_engine", engine_params("os", path), dram),
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
// On the shared path each job's bytes go in bursts of 2048 bytes (32 cycles) back to back
// on the otherwise idle channel: qkv's 1605632 bytes take 784 bursts = 25088 cycles, out's
// 1057280 bytes 516 full bursts and one of 512 bytes = 16512 + 8 = 16520 cycles; the
// numbers are the separate path's.
const std::vector<GemmJob> kTwoJobs = {{"qkv", 512, 512, 64}, {"out", 512, 512, 1}};
const DramParams kDram{64, 100, 2048};

void two_jobs_back_to_back(gemm::DramPath path) {
  init_kernel_time();
  Harness h("h", kTwoJobs, 4, Cycles(0), kDram, path);
  run_kernel();
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
  // The shared channel carried the bursts (busy 25088 + 16520); the separate path's channel
  // is not the dram module, which saw nothing.
  const uint64_t dram_busy = path == gemm::DramPath::shared ? 25088 + 16520 : 0;
  CHECK(h.dram.activity().busy == dram_busy);
  CHECK(h.dram.activity().stall == 0);
}

// done holds one job; the consumer starts reading at cycle 100000. "qkv" enters the FIFO
// at 32256; "out" is ready at 48876 and waits until the consumer frees the slot at
// 100000: back-pressure 100000 - 48876 = 51124 on top of the 492 memory stall.
void full_done_fifo(gemm::DramPath path) {
  init_kernel_time();
  Harness h("h", kTwoJobs, 1, Cycles(100000), kDram, path);
  run_kernel();
  REQUIRE(h.finished.size() == 2);
  CHECK(h.finished[0].second == 100000);
  CHECK(h.finished[1].second == 100000);
  const ModuleActivity a = h.engine.activity();
  CHECK(a.busy == 48384);
  CHECK(a.stall == 492 + 51124);
  CHECK(h.engine.memory_stall_cycles() == 492);
}

}  // namespace

TEST_CASE("two jobs back to back: busy is compute and stall is the memory excess (separate DRAM path)") {
  two_jobs_back_to_back(gemm::DramPath::separate);
}

TEST_CASE("two jobs back to back on an otherwise idle shared channel: the separate path's numbers") {
  two_jobs_back_to_back(gemm::DramPath::shared);
}

TEST_CASE("a full done FIFO stalls the engine until the consumer reads (separate DRAM path)") {
  full_done_fifo(gemm::DramPath::separate);
}

TEST_CASE("a full done FIFO stalls the engine until the consumer reads (shared DRAM path)") {
  full_done_fifo(gemm::DramPath::shared);
}

TEST_CASE("a job with a zero dimension stops the simulation with an error naming it") {
  init_kernel_time();
  Harness h("h", {{"ffn1", 8, 0, 8}}, 1, Cycles(0), kDram, gemm::DramPath::shared);
  // The engine's thread keeps the error and stops the kernel; run_kernel rethrows it as it was.
  CHECK_THROWS_WITH(run_kernel(), "gemm job 'ffn1': gemm: M, N and K must be >= 1, got M=8 N=0 K=8");
}

TEST_CASE("an unknown dataflow never reaches the engine: its name is rejected when parsed") {
  CHECK_THROWS_WITH(engine_params("rs"), "gemm_engine.dataflow: must be one of \"os\", \"ws\", \"is\", got \"rs\"");
}

namespace {

// One GEMM job and one DMA head load on one shared channel: DRAM 4 bytes/cycle, latency
// 10, bursts of 8 bytes (2 cycles).
//  - The GEMM engine is 2 x 2, os, 8-bit inputs and outputs: the job M = 2, N = 2, K = 8
//    is one fold of 2 + 2 + 8 - 2 = 10 compute cycles; A = 2 x 8 = 16 B and B = 8 x 2 =
//    16 B are read, C = 2 x 2 = 4 B written (they fit in the 1 KiB buffer): 36 bytes, in
//    bursts of 8, 8, 8, 8 and 4 bytes = 2, 2, 2, 2 and 1 cycles.
//  - The DMA loads one head of B = 5 bits, N = 3, M = 2, d = 3: (3 + 2*2) * 3 * 5 = 105
//    bits = 14 bytes, in bursts of 8 and 6 bytes = 2 and 2 cycles.
constexpr int kHeadBits = 5;
const DramParams kSharedDram{4, 10, 8};

GemmEngineParams small_engine(gemm::DramPath path) {
  GemmEngineParams p{2, 2, gemm::Dataflow::OutputStationary};
  p.sram_kib = 1;
  p.input_bits = 8;
  p.output_bits = 8;
  p.dram_path = path;
  return p;
}

// The GEMM job enters the engine at cycle 0, the layer reaches the DMA at `layer_at`.
struct CompetitionHarness : sc_core::sc_module {
  sc_core::sc_fifo<GemmJob> jobs_fifo{"jobs", 1}, done_fifo{"done", 1};
  sc_core::sc_fifo<std::shared_ptr<const LayerContext>> layers_fifo{"layers", 1};
  sc_core::sc_fifo<std::shared_ptr<HeadWork>> heads_fifo{"heads", 2};
  DramChannel dram{kSharedDram};
  SramBuffers sram{SramParams{1, 2, 32}};
  sc_core::sc_semaphore slots{"slots", 2};
  std::unique_ptr<CandidateGenerator> all = make_candidate_generator("all", json::object());
  HeadModel model{test::dense_qk_setup(kHeadBits), *all, nullptr, nullptr, 1};
  GemmEngine engine;
  Dma dma;
  uint64_t layer_at;
  uint64_t job_done = 0, head_ready = 0;

  CompetitionHarness(sc_core::sc_module_name name, gemm::DramPath path, uint64_t layer_cycle)
      : sc_module(name),
        engine("gemm_engine", small_engine(path), dram),
        dma("dma", kHeadBits, dram, sram, slots, model),
        layer_at(layer_cycle) {
    engine.in(jobs_fifo);
    engine.out(done_fifo);
    dma.layer_in(layers_fifo);
    dma.head_out(heads_fifo);
    SC_HAS_PROCESS(CompetitionHarness);
    SC_THREAD(scheduler);
    SC_THREAD(attention);
  }
  void scheduler() {
    jobs_fifo.write(GemmJob{"L0.qkv", 2, 2, 8});
    done_fifo.read();
    job_done = now_cycles().count();
  }
  void attention() {
    wait_until(Cycles(layer_at));
    layers_fifo.write(test::tiny_layer(1));
    heads_fifo.read();
    head_ready = now_cycles().count();
  }
};

}  // namespace

TEST_CASE("a GEMM job and a DMA head load compete for the shared channel, first come first served by burst") {
  init_kernel_time();
  // The job starts at 0: compute [0, 10). The layer reaches the DMA at 1.
  //   0  engine burst g1 (8 B) [0, 2)
  //   1  DMA burst d1 (8 B): the channel is busy until 2 -> [2, 4)
  //   2  engine g2 (8 B): behind d1 -> [4, 6)
  //   4  DMA d2 (6 B): behind g2 -> [6, 8); the head is ready at 8 + 10 = 18 (alone: 1 + 4 + 10 = 15)
  //   6  engine g3 (8 B) [8, 10)
  //  10  engine g4 (8 B) [10, 12), then g5 (4 B) [12, 13): E = 13; the compute ended at 10.
  // The job's data is complete at 13 + 10 = 23: memory stall 23 - 10 = 13 (alone: 9 + 10 - 10 = 9).
  CompetitionHarness h("h", gemm::DramPath::shared, 1);
  run_kernel();
  CHECK(h.job_done == 23);
  CHECK(h.head_ready == 18);
  const ModuleActivity g = h.engine.activity();
  CHECK(g.busy == 10);  // compute cycles: the channel never changes them
  CHECK(g.stall == 13);
  CHECK(h.engine.memory_stall_cycles() == 13);
  // dram busy: the engine's 2 + 2 + 2 + 2 + 1 and the DMA's 2 + 2 cycles. No dram stall:
  // neither the DMA's nor the engine's bursts count their waits behind the other's.
  const ModuleActivity d = h.dram.activity();
  CHECK(d.busy == 9 + 4);
  CHECK(d.stall == 0);
  CHECK(d.counter("read_bits") == 14 * 8);  // the DMA's; the engine's bits are its own getters
  CHECK(h.engine.dram_read_bits() == 32 * 8);
  CHECK(h.engine.dram_write_bits() == 4 * 8);
}

TEST_CASE("with the separate DRAM path the same GEMM job and head load do not meet") {
  init_kernel_time();
  // The engine's own channel: stall max(0, ceil(36 / 4) + 10 - 10) = 9, done at 19. The DMA
  // has the shared channel to itself: bursts [1, 3), [3, 5), the head ready at 15.
  CompetitionHarness h("h", gemm::DramPath::separate, 1);
  run_kernel();
  CHECK(h.job_done == 19);
  CHECK(h.head_ready == 15);
  CHECK(h.engine.activity().busy == 10);
  CHECK(h.engine.activity().stall == 9);
  CHECK(h.dram.activity().busy == 4);
}

TEST_CASE("shared and alone: the GEMM job takes the separate path's cycles") {
  init_kernel_time();
  // The layer comes long after the job (at 100): the job's bursts run back to back
  // [0, 9), E = 9, done at max(10, 9 + 10) = 19 with stall 9, as on the separate path;
  // the head loads alone: [100, 102), [102, 104), ready at 114.
  CompetitionHarness h("h", gemm::DramPath::shared, 100);
  run_kernel();
  CHECK(h.job_done == 19);
  CHECK(h.head_ready == 114);
  CHECK(h.engine.activity().stall == 9);
  CHECK(h.dram.activity().busy == 9 + 4);
}

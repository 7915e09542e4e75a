// Hand-computed checks of the GEMM engine's timing and traffic rules (arch/gemm_math.h,
// docs/gemm_engine.md). Compute cycles are SCALE-Sim v2's, +1 (SCALE-Sim prints the
// 0-based index of the last cycle); the SCALE-Sim golden numbers cited below come from its
// repository's regression outputs, test/general/golden_trace_user_{os,ws,is}/COMPUTE_REPORT.csv
// (M=256, N=128, K=256 on 32 x 32; no-stall cycles = Total Cycles - Stall Cycles).
#include "arch/gemm_math.h"

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

using namespace attnsim;
using namespace attnsim::gemm;

namespace {

constexpr Dataflow OS = Dataflow::OutputStationary;
constexpr Dataflow WS = Dataflow::WeightStationary;
constexpr Dataflow IS = Dataflow::InputStationary;

GemmEngineParams engine(const std::string& dataflow, int rows = 32, int cols = 32, int sram_kib = 512) {
  GemmEngineParams p{rows, cols, parse_dataflow(dataflow)};
  p.sram_kib = sram_kib;
  p.input_bits = 8;
  p.output_bits = 32;
  return p;
}

DramParams dram(int bytes_per_cycle, int latency = 100) { return {bytes_per_cycle, latency, 2048}; }

}  // namespace

// ---- compute cycles (SCALE-Sim v2) ----------------------------------------------------------

TEST_CASE("the issue's example: M=512 N=512 K=64 on 32 x 32 os is 256 folds x 126 = 32256 cycles") {
  const Mapping m = map_gemm({512, 512, 64}, OS, 32, 32);
  CHECK(m.sr == 512);
  CHECK(m.sc == 512);
  CHECK(m.t == 64);
  CHECK(m.row_folds == 16);
  CHECK(m.col_folds == 16);
  CHECK(m.folds() == 256);
  CHECK(cycles_per_fold(OS, 32, 32, 64) == 126);  // 32 + 32 + 64 - 2
  CHECK(compute_cycles({512, 512, 64}, OS, 32, 32) == 32256);
}

TEST_CASE("the same GEMM in ws and is: 2 x 16 folds x (64 + 32 + 512 - 2) = 19392") {
  // ws: S_R = K = 64, S_C = N = 512, T = M = 512; is: S_R = K = 64, S_C = M = 512, T = N = 512.
  CHECK(compute_cycles({512, 512, 64}, WS, 32, 32) == 32 * 606);
  CHECK(compute_cycles({512, 512, 64}, IS, 32, 32) == 32 * 606);
  CHECK(32 * 606 == 19392);
}

TEST_CASE("SCALE-Sim v2 golden reports M=256 N=128 K=256 on 32 x 32: ours = theirs + 1") {
  // os: 8 x 4 folds x (32 + 32 + 256 - 2 = 318) = 10176; golden 52447 - 42272 = 10175.
  CHECK(compute_cycles({256, 128, 256}, OS, 32, 32) == 10176);
  CHECK(compute_cycles({256, 128, 256}, OS, 32, 32) == (52447 - 42272) + 1);
  // ws: S_R = K = 256, S_C = N = 128, T = M = 256: 8 x 4 folds x (64 + 32 + 256 - 2 = 350)
  //   = 11200; golden 52447 - 41248 = 11199.
  CHECK(compute_cycles({256, 128, 256}, WS, 32, 32) == (52447 - 41248) + 1);
  // is: S_R = K = 256, S_C = M = 256, T = N = 128: 8 x 8 folds x (64 + 32 + 128 - 2 = 222)
  //   = 14208; golden 19984 - 5777 = 14207.
  CHECK(compute_cycles({256, 128, 256}, IS, 32, 32) == (19984 - 5777) + 1);
}

TEST_CASE("edge folds cost a whole fold when S_R and S_C are not multiples of R and C") {
  // M=100 N=40 K=10 on 32 x 32.
  // os: S_R = 100 -> 4 folds, S_C = 40 -> 2; 8 x (32 + 32 + 10 - 2 = 72) = 576.
  CHECK(map_gemm({100, 40, 10}, OS, 32, 32).row_folds == 4);
  CHECK(map_gemm({100, 40, 10}, OS, 32, 32).col_folds == 2);
  CHECK(compute_cycles({100, 40, 10}, OS, 32, 32) == 576);
  // ws: S_R = K = 10 -> 1, S_C = N = 40 -> 2, T = M = 100: 2 x (64 + 32 + 100 - 2 = 194) = 388.
  CHECK(compute_cycles({100, 40, 10}, WS, 32, 32) == 388);
  // is: S_R = K = 10 -> 1, S_C = M = 100 -> 4, T = N = 40: 4 x (64 + 32 + 40 - 2 = 134) = 536.
  CHECK(compute_cycles({100, 40, 10}, IS, 32, 32) == 536);
}

TEST_CASE("a 1 x 1 array: os takes exactly M N K cycles at full utilization") {
  // os: M N folds of T = K cycles (1 + 1 + K - 2).
  CHECK(compute_cycles({3, 5, 7}, OS, 1, 1) == 105);
  CHECK(utilization(macs({3, 5, 7}), 105, 1, 1) == 1.0);
  // ws: K N = 35 folds of 2 + 1 + M - 2 = M + 1 = 4 cycles.
  CHECK(compute_cycles({3, 5, 7}, WS, 1, 1) == 140);
  // is: K M = 21 folds of N + 1 = 6 cycles.
  CHECK(compute_cycles({3, 5, 7}, IS, 1, 1) == 126);
}

TEST_CASE("T = 1: a fold is just the fill of the array") {
  // os K = 1: 2 x 2 folds x (32 + 32 + 1 - 2 = 63).
  CHECK(compute_cycles({64, 64, 1}, OS, 32, 32) == 252);
  // ws M = 1: S_R = K = 64, S_C = N = 64: 4 folds x (64 + 32 + 1 - 2 = 95).
  CHECK(compute_cycles({1, 64, 64}, WS, 32, 32) == 380);
  // is N = 1: S_R = K = 64, S_C = M = 64: 4 folds x 95.
  CHECK(compute_cycles({64, 1, 64}, IS, 32, 32) == 380);
}

TEST_CASE("a non-square array: the preload costs 2R (rows), not 2C") {
  // ws M=20 N=20 K=5 on 8 x 16: S_R = 5 -> 1, S_C = 20 -> 2: 2 x (16 + 16 + 20 - 2 = 50) = 100.
  CHECK(compute_cycles({20, 20, 5}, WS, 8, 16) == 100);
  // on 16 x 8: S_R = 5 -> 1, S_C = 20 -> 3: 3 x (32 + 8 + 20 - 2 = 58) = 174.
  CHECK(compute_cycles({20, 20, 5}, WS, 16, 8) == 174);
  // os M=20 N=20 K=5 on 8 x 16: 3 x 2 folds x (8 + 16 + 5 - 2 = 27) = 162.
  CHECK(compute_cycles({20, 20, 5}, OS, 8, 16) == 162);
}

TEST_CASE("utilization is macs over cycles times R C") {
  // 512 x 512 x 64 = 16777216 MACs in 32256 cycles on 1024 PEs: 16384 / 32256 = 32 / 63.
  CHECK(macs({512, 512, 64}) == 16777216);
  CHECK(utilization(16777216, 32256, 32, 32) == Approx(32.0 / 63.0).epsilon(1e-15));
  CHECK(utilization(5, 0, 32, 32) == 0.0);
}

TEST_CASE("bad dataflow names and empty shapes are rejected with one line") {
  CHECK(parse_dataflow("ws") == WS);
  CHECK(std::string(dataflow_name(IS)) == "is");
  CHECK_THROWS_WITH(parse_dataflow("rs"), "gemm_engine.dataflow: must be one of \"os\", \"ws\", \"is\", got \"rs\"");
  CHECK_THROWS_WITH(check_shape({0, 4, 4}), "gemm: M, N and K must be >= 1, got M=0 N=4 K=4");
  CHECK_THROWS_WITH(check_shape({4, 1048577, 4}), "gemm: M, N and K must be <= 1048576, got M=4 N=1048577 K=4");
  CHECK_NOTHROW(check_shape({1048576, 1048576, 1024}));
  CHECK_THROWS_WITH(check_shape({1048576, 1048576, 1025}), "gemm: M*N*K must be <= 2^50, got M=1048576 N=1048576 K=1025");
  CHECK_THROWS_AS(gemm_timing({4, 4, 0}, engine("os"), dram(64)), std::invalid_argument);
}

// ---- memory traffic and stalls ---------------------------------------------------------------

TEST_CASE("fits and compute-bound: every operand moves once and nothing stalls") {
  // M=N=K=64: A = B = 4096 B (8 bits), C = 64*64*4 = 16384 B; 24576 B <= 512 KiB.
  const GemmTiming t = gemm_timing({64, 64, 64}, engine("os"), dram(64));
  CHECK(t.traffic.fits);
  CHECK(t.traffic.footprint_bytes == 24576);
  CHECK(t.traffic.dram_read_bytes == 8192);
  CHECK(t.traffic.dram_write_bytes == 16384);
  // DRAM: 24576 / 64 = 384 + 100 latency = 484 cycles < compute 4 x 126 = 504.
  CHECK(t.compute_cycles == 504);
  CHECK(t.dram_cycles == 484);
  CHECK(t.stall_cycles == 0);
  CHECK(t.cycles == 504);
}

TEST_CASE("fits but bandwidth-bound: the stall is the DRAM time beyond compute") {
  // Same GEMM at 16 B/cycle: 24576 / 16 = 1536 + 100 = 1636; stall 1636 - 504 = 1132.
  const GemmTiming t = gemm_timing({64, 64, 64}, engine("os"), dram(16));
  CHECK(t.dram_cycles == 1636);
  CHECK(t.stall_cycles == 1132);
  CHECK(t.cycles == 1636);
  CHECK(t.utilization == Approx(262144.0 / (1636.0 * 1024.0)).epsilon(1e-15));
}

TEST_CASE("does not fit (os): A is re-read once per fold column, compute-bound at 64 B/cycle") {
  // 512 x 512 x 64: A = B = 32768 B, C = 1 MiB; 1114112 B > 524288 B.
  // col_folds = 16: reads 16 x 32768 + 32768 = 557056 B; writes 1048576 B.
  // DRAM: 1605632 / 64 = 25088 + 100 = 25188 < 32256: no stall.
  const GemmTiming t = gemm_timing({512, 512, 64}, engine("os"), dram(64));
  CHECK_FALSE(t.traffic.fits);
  CHECK(t.traffic.footprint_bytes == 1114112);
  CHECK(t.traffic.dram_read_bytes == 557056);
  CHECK(t.traffic.dram_write_bytes == 1048576);
  CHECK(t.dram_cycles == 25188);
  CHECK(t.stall_cycles == 0);
  CHECK(t.cycles == 32256);
  // One fold: A tile 32 x 64 B + B block 64 x 32 B + C tile 32 x 32 x 4 B.
  CHECK(t.traffic.fold_working_set_bytes == 2048 + 2048 + 4096);
}

TEST_CASE("does not fit (os) at 32 B/cycle: bandwidth-bound") {
  // 1605632 / 32 = 50176 + 100 = 50276; stall 50276 - 32256 = 18020.
  const GemmTiming t = gemm_timing({512, 512, 64}, engine("os"), dram(32));
  CHECK(t.dram_cycles == 50276);
  CHECK(t.stall_cycles == 18020);
  CHECK(t.cycles == 50276);
}

TEST_CASE("a larger buffer makes the same GEMM fit: A and B are read once") {
  // 1114112 B <= 2 MiB: reads 65536 B, writes 1048576 B; 1114112 / 64 = 17408 + 100.
  const GemmTiming t = gemm_timing({512, 512, 64}, engine("os", 32, 32, 2048), dram(64));
  CHECK(t.traffic.fits);
  CHECK(t.traffic.dram_read_bytes == 65536);
  CHECK(t.dram_cycles == 17508);
}

TEST_CASE("does not fit: os and ws re-read A per fold column and is re-reads B") {
  // M=1024 N=256 K=64: A = 65536 B, B = 16384 B, C = 1 MiB (does not fit 512 KiB).
  // os: col_folds = N/32 = 8 -> 8 x 65536 + 16384 = 540672.
  CHECK(traffic({1024, 256, 64}, engine("os")).dram_read_bytes == 540672);
  // ws: S_C = N -> 8 fold columns, A re-read: 540672.
  CHECK(traffic({1024, 256, 64}, engine("ws")).dram_read_bytes == 540672);
  // is: S_C = M -> 32 fold columns, B re-read: 65536 + 32 x 16384 = 589824.
  CHECK(traffic({1024, 256, 64}, engine("is")).dram_read_bytes == 589824);
  for (const char* d : {"os", "ws", "is"}) CHECK(traffic({1024, 256, 64}, engine(d)).dram_write_bytes == 1048576);
}

TEST_CASE("bit widths that are not whole bytes round each transfer up") {
  // M=N=K=3 at 4-bit inputs and 12-bit outputs: A = B = 36 bits -> 5 B; C = 108 bits -> 14 B.
  GemmEngineParams p = engine("os");
  p.input_bits = 4;
  p.output_bits = 12;
  const GemmTraffic t = traffic({3, 3, 3}, p);
  CHECK(t.fits);
  CHECK(t.dram_read_bytes == 10);
  CHECK(t.dram_write_bytes == 14);
}

TEST_CASE("dram_cycles and stall_cycles") {
  CHECK(dram_cycles(0, dram(64)) == 0);
  CHECK(dram_cycles(1, dram(64)) == 101);
  CHECK(dram_cycles(65, dram(64, 0)) == 2);
  CHECK(stall_cycles(10, 20) == 0);
  CHECK(stall_cycles(20, 20) == 0);
  CHECK(stall_cycles(25, 20) == 5);
}

TEST_CASE("the engine's bursts on a shared channel are dram.burst_bytes rounded down to whole cycles") {
  CHECK(burst_bytes(DramParams{64, 100, 2048}) == 2048);
  CHECK(burst_bytes(DramParams{64, 100, 2100}) == 2048);  // 32 whole cycles
  CHECK(burst_bytes(DramParams{64, 100, 100}) == 64);
  CHECK(burst_bytes(DramParams{64, 100, 30}) == 64);      // at least one cycle's worth
  CHECK(burst_bytes(DramParams{3, 0, 8}) == 6);
  CHECK(burst_bytes(DramParams{1, 0, 1}) == 1);
}

// ---- SRAM traffic at the array edge ----------------------------------------------------------

TEST_CASE("os array-edge traffic on a 1 x 1 array: every fold reads K of A and K of B, writes one C") {
  // M=N=2, K=3: 4 folds x (3 + 3) reads of 8 bits = 192 bits; 4 outputs x 32 bits = 128.
  const GemmTraffic t = traffic({2, 2, 3}, engine("os", 1, 1));
  CHECK(t.sram_read_bits == 192);
  CHECK(t.sram_write_bits == 128);
}

TEST_CASE("os array-edge traffic: A per fold column, B per fold row, C once") {
  // 512 x 512 x 64 on 32 x 32: 16 x 262144 + 16 x 262144 bits read; 512 x 512 x 32 written.
  const GemmTraffic t = traffic({512, 512, 64}, engine("os"));
  CHECK(t.sram_read_bits == 8388608);
  CHECK(t.sram_write_bits == 8388608);
}

TEST_CASE("ws array-edge traffic: B preloaded once, A per fold column, partial sums per fold row") {
  // 512 x 512 x 64: row_folds = K/32 = 2, col_folds = N/32 = 16.
  // reads |B| 262144 + 16 |A| 4194304 + (2-1) |C| 8388608 = 12845056 bits;
  // writes 2 |C| = 16777216 bits.
  const GemmTraffic t = traffic({512, 512, 64}, engine("ws"));
  CHECK(t.sram_read_bits == 12845056);
  CHECK(t.sram_write_bits == 16777216);
}

TEST_CASE("is array-edge traffic on a 1 x 1 array: A preloaded once, B per M, C per K") {
  // M=2 N=3 K=2: folds = K x M = 4, each reads N = 3 of B; A read once (4 x 8 bits);
  // reads 4 x 8 + 2 x 6 x 8 + (2-1) x 6 x 32 = 32 + 96 + 192 = 320 bits;
  // writes 2 x 6 x 32 = 384 bits (each of the K = 2 fold rows writes all of C).
  const GemmTraffic t = traffic({2, 3, 2}, engine("is", 1, 1));
  CHECK(t.sram_read_bits == 320);
  CHECK(t.sram_write_bits == 384);
}

#pragma once
// Pure timing and traffic rules of the GEMM engine (arch/gemm_engine.h), no SystemC.
// docs/gemm_engine.md states every rule with worked examples.
//
// GEMM convention: C[M x N] = A[M x K] * B[K x N]; A holds activations, B weights.
//
// Compute (SCALE-Sim v2, Samajdar et al.): the GEMM maps onto an R x C array as an
// S_R x S_C stationary matrix and a temporal dimension T:
//   os: S_R = M, S_C = N, T = K   (C stays in the PEs)
//   ws: S_R = K, S_C = N, T = M   (B stays in the PEs)
//   is: S_R = K, S_C = M, T = N   (A stays in the PEs)
// folds = ceil(S_R / R) * ceil(S_C / C); cycles per fold = R + C + T - 2 (os: the drain
// of one fold's outputs overlaps the next fold's stream) or 2R + C + T - 2 (ws, is: the
// stationary operand is preloaded through the R rows first). Edge folds cost a full fold.
// SCALE-Sim's "Total Cycles" is the 0-based index of the last cycle: ours = theirs + 1.
//
// Memory: see GemmTraffic below. Stall = max(0, DRAM cycles - compute cycles): with
// double buffering the DRAM traffic overlaps compute and only its excess stalls the array.
#include "arch/dram.h"
#include "core/params.h"

#include <cstdint>
#include <string>

namespace attnsim {

namespace gemm {

enum class Dataflow { OutputStationary, WeightStationary, InputStationary };

inline const Choices<Dataflow>& dataflows() {
  static const Choices<Dataflow> c{
      {"os", Dataflow::OutputStationary}, {"ws", Dataflow::WeightStationary}, {"is", Dataflow::InputStationary}};
  return c;
}

// "os" | "ws" | "is"; throws std::invalid_argument otherwise.
Dataflow parse_dataflow(const std::string& name);
const char* dataflow_name(Dataflow d);

// Where the engine's operand and result traffic goes (arch/gemm_engine.h states both rules):
// through the DRAM channel it shares with the DMA, the write-back and the skim controller,
// or through a channel of its own (the model before issue 12: no contention, the numbers
// to compare with SCALE-Sim).
enum class DramPath { shared, separate };

inline const Choices<DramPath>& dram_paths() {
  static const Choices<DramPath> c{{"shared", DramPath::shared}, {"separate", DramPath::separate}};
  return c;
}

}  // namespace gemm

// The GEMM engine's parameters (the unit is arch/gemm_engine.h; its rules below need them).
struct GemmEngineParams {
  int rows;
  int cols;
  gemm::Dataflow dataflow;
  int sram_kib = 512;    // operand buffer capacity
  int input_bits = 8;    // width of an A or B element
  int output_bits = 32;  // width of a C element (and of a partial sum)
  gemm::DramPath dram_path = gemm::DramPath::shared;

  static const ParamTable<GemmEngineParams>& table() {
    static const ParamTable<GemmEngineParams> t{
        "gemm_engine", "Systolic MAC array for projections and FFN.",
        {field(&GemmEngineParams::rows, "rows", 32).doc("R: PE rows.").min(1).max(plausible::kArrayDim),
         field(&GemmEngineParams::cols, "cols", 32).doc("C: PE columns.").min(1).max(plausible::kArrayDim),
         choice(&GemmEngineParams::dataflow, "dataflow", gemm::Dataflow::OutputStationary, gemm::dataflows())
             .doc("Output-, weight- or input-stationary."),
         field(&GemmEngineParams::sram_kib, "sram_kib", 512)
             .unit("KiB")
             .doc("Operand buffer: when A, B and C fit, each moves once to or from DRAM; otherwise the row-edge operand is re-read once per fold column.")
             .min(1).max(plausible::kCapacityKib),
         field(&GemmEngineParams::input_bits, "input_bits", 8)
             .unit("bits").doc("Width of an element of A (activations) and B (weights).").min(1).max(32),
         field(&GemmEngineParams::output_bits, "output_bits", 32)
             .unit("bits").doc("Width of an element of C and of a partial sum.").min(1).max(64),
         choice(&GemmEngineParams::dram_path, "dram_path", gemm::DramPath::shared, gemm::dram_paths())
             .doc("shared: the engine's operand and result bursts go through the one DRAM channel, first come first served with the DMA, the write-back and the skim controller (docs/gemm_engine.md); separate: a channel of the engine's own, no contention (the numbers to compare with SCALE-Sim).")}};
    return t;
  }
};

namespace gemm {

struct GemmShape {
  uint64_t m = 0, n = 0, k = 0;
};

// Largest M, N or K, and largest M*N*K: with these, every bit count (at most
// 64 x M*N*K) and cycle count stays inside 64 bits.
inline constexpr uint64_t kMaxDimension = uint64_t{1} << 20;
inline constexpr uint64_t kMaxMacs = uint64_t{1} << 50;

// Throws std::invalid_argument unless 1 <= m, n, k <= kMaxDimension and m*n*k <= kMaxMacs.
void check_shape(const GemmShape& s);

// The GEMM as SCALE-Sim maps it onto the array.
struct Mapping {
  uint64_t sr = 0, sc = 0, t = 0;           // S_R, S_C, T
  uint64_t row_folds = 0, col_folds = 0;    // ceil(S_R / R), ceil(S_C / C)
  uint64_t folds() const { return row_folds * col_folds; }
};

Mapping map_gemm(const GemmShape& s, Dataflow d, uint64_t rows, uint64_t cols);

// R + C + T - 2 (os) or 2R + C + T - 2 (ws, is).
uint64_t cycles_per_fold(Dataflow d, uint64_t rows, uint64_t cols, uint64_t t);

// folds * cycles_per_fold: the cycles with no memory stall.
uint64_t compute_cycles(const GemmShape& s, Dataflow d, uint64_t rows, uint64_t cols);

// M * N * K.
uint64_t macs(const GemmShape& s);

// macs / (cycles * R * C); 0 when cycles is 0.
double utilization(uint64_t macs, uint64_t cycles, uint64_t rows, uint64_t cols);

// Traffic of one GEMM. Element widths: A and B at input_bits, C at output_bits.
//
// DRAM <-> operand buffer (gemm_engine.sram_kib):
//  - fits (A + B + C bytes <= buffer): A and B read once, C written once;
//  - otherwise the fold loop runs fold columns outer, fold rows inner: the column-edge
//    block (os: B's N-block; ws: C's N-block of partial sums; is: C's M-block) and the
//    stationary tiles stay in the buffer, and the row-edge operand (os, ws: A; is: B) is
//    re-read from DRAM once per fold column. C is still written once.
// Operand buffer <-> array edge (SCALE-Sim's SRAM reads and writes), summed over folds:
//  - os: reads col_folds*|A| + row_folds*|B|, writes |C|;
//  - ws: reads |B| + col_folds*|A| + (row_folds-1)*|C| (partial sums read back to
//    accumulate over K-folds), writes row_folds*|C|;
//  - is: reads |A| + col_folds*|B| + (row_folds-1)*|C|, writes row_folds*|C|.
struct GemmTraffic {
  bool fits = false;                  // A, B and C fit in the operand buffer together
  uint64_t footprint_bytes = 0;       // bytes of A + B + C
  uint64_t buffer_bytes = 0;          // sram_kib * 1024
  uint64_t fold_working_set_bytes = 0;  // one fold's row-edge tile + column-edge block +
                                        // stationary tile (assumed to fit; not checked)
  uint64_t dram_read_bytes = 0;
  uint64_t dram_write_bytes = 0;
  uint64_t sram_read_bits = 0;
  uint64_t sram_write_bits = 0;
};

GemmTraffic traffic(const GemmShape& s, const GemmEngineParams& p);

// dram_transfer_cycles(bytes) + dram.latency_cycles (0 when bytes is 0).
uint64_t dram_cycles(uint64_t bytes, const DramParams& dram);

// max(0, dram - compute).
uint64_t stall_cycles(uint64_t dram, uint64_t compute);

// The size of the GEMM engine's bursts on a shared channel: dram.burst_bytes rounded down
// to a multiple of dram.bytes_per_cycle, and at least bytes_per_cycle. Every burst but a
// job's last then fills whole cycles, so a job's bursts hold the channel exactly
// ceil(bytes / bytes_per_cycle) cycles in all, as one transfer would.
uint64_t burst_bytes(const DramParams& dram);

// Everything about one GEMM on the engine.
struct GemmTiming {
  Mapping mapping;
  uint64_t cycles_per_fold = 0;
  uint64_t compute_cycles = 0;
  uint64_t dram_cycles = 0;
  uint64_t stall_cycles = 0;
  uint64_t cycles = 0;  // compute + stall
  uint64_t macs = 0;
  double utilization = 0;  // macs / (cycles * R * C), stalls included
  GemmTraffic traffic;
};

// Throws std::invalid_argument for a bad shape or dataflow.
GemmTiming gemm_timing(const GemmShape& s, const GemmEngineParams& p, const DramParams& dram);

}  // namespace gemm
}  // namespace attnsim

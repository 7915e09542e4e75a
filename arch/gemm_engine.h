#pragma once
// gemm_engine: systolic R x C MAC array for the QKV projections, the attention output
// projection and the FFN (issue 4).
//
// What it does: takes GEMM jobs C[M x N] = A[M x K] * B[K x N] (A activations, B weights)
// one at a time from `job_in`, and passes each to `done` when it has finished.
//
// Timing rule (arch/gemm_math.h, docs/gemm_engine.md): a job is busy for SCALE-Sim v2's
// compute cycles, folds * (R + C + T - 2) for os or folds * (2R + C + T - 2) for ws and
// is, then stalls max(0, DRAM cycles - compute cycles) for its operand traffic (double
// buffering overlaps the traffic with compute; only the excess stalls). The DRAM cycles
// use dram.bytes_per_cycle and dram.latency_cycles on a channel of the engine's own: the
// engine does not contend with the attention datapath's DMA.
//
// Params: GemmEngineParams (arch/gemm_math.h, beside the rules that use them): rows,
// cols, dataflow, sram_kib, input_bits, output_bits; DramParams: bytes_per_cycle,
// latency_cycles.
// Stats: busy = compute cycles; stall = memory stall cycles plus cycles blocked on a
// full `done` FIFO (memory_stall_cycles() gives the memory part alone).
// Counters: macs (M*N*K per job). SRAM and DRAM bits it moves are separate getters, for
// the sram and dram modules' counters.
#include "arch/gemm_math.h"
#include "arch/stage.h"
#include "core/activity.h"

#include <systemc>

#include <cstdint>
#include <ostream>
#include <string>

namespace attnsim {

struct GemmJob {
  std::string name;  // "L0.qkv", "L3.ffn1", ...: names the job in errors
  uint64_t m = 0, n = 0, k = 0;
  bool operator==(const GemmJob& o) const { return name == o.name && m == o.m && n == o.n && k == o.k; }
};

inline std::ostream& operator<<(std::ostream& os, const GemmJob& j) {
  return os << j.name << " (M=" << j.m << " N=" << j.n << " K=" << j.k << ")";
}

class GemmEngine : public Stage<GemmJob> {
 public:
  GemmEngine(sc_core::sc_module_name name, const GemmEngineParams& p, const DramParams& dram);

  // "gemm_engine": busy, stall, {"macs"}.
  ModuleActivity activity() const;
  uint64_t memory_stall_cycles() const { return memory_stall_; }
  uint64_t jobs_done() const { return jobs_; }
  uint64_t sram_read_bits() const { return sram_read_bits_; }
  uint64_t sram_write_bits() const { return sram_write_bits_; }
  uint64_t dram_read_bits() const { return dram_read_bits_; }
  uint64_t dram_write_bits() const { return dram_write_bits_; }

 private:
  StageWork begin(GemmJob& job) override;
  void end(GemmJob& job, const StageWork& work, bool traced) override;
  gemm::GemmTiming time_job(const GemmJob& job) const;

  GemmEngineParams p_;
  DramParams dram_;
  gemm::GemmTiming current_;  // the job being worked on
  uint64_t memory_stall_ = 0, macs_ = 0, jobs_ = 0;
  uint64_t sram_read_bits_ = 0, sram_write_bits_ = 0, dram_read_bits_ = 0, dram_write_bits_ = 0;
};

}  // namespace attnsim

#pragma once
// gemm_engine: systolic R x C MAC array for the QKV projections, the attention output
// projection and the FFN (issue 4).
//
// What it does: takes GEMM jobs C[M x N] = A[M x K] * B[K x N] (A activations, B weights)
// one at a time from `job_in`, moves each job's operands and results between DRAM and its
// operand buffer, and passes the job to `done` when it has finished.
//
// Timing rule (arch/gemm_math.h, docs/gemm_engine.md). A job taken at cycle t0 is busy for
// SCALE-Sim v2's compute cycles C = folds * (R + C + T - 2) (os) or folds * (2R + C + T - 2)
// (ws, is), from t0 to t0 + C, whatever the memory does. Its DRAM traffic (gemm::traffic:
// X = read bytes + write bytes, double-buffered with the compute, so only what is left of
// it when the compute ends stalls the array) goes by gemm_engine.dram_path:
//  - "shared" (default): through the DRAM channel the DMA, the write-back and the skim
//    controller use (arch/dram.h). At t0 the engine's memory port requests the job's first
//    burst; each further burst is requested when the previous one ends. The job's X bytes
//    (its reads, then its writes) go in bursts of gemm::burst_bytes(dram) bytes
//    (dram.burst_bytes rounded down to a multiple of dram.bytes_per_cycle, at least one
//    cycle's worth), each reserved with DramChannel::reserve: first come first served in
//    request order at burst granularity, so whatever another unit requests while a burst
//    holds the channel goes before the engine's next burst. With E the end of the job's
//    last burst, its data is complete at E + dram.latency_cycles, and the job ends at
//    max(t0 + C, E + latency): memory stall = max(0, E + latency - (t0 + C)).
//    On an otherwise idle channel the bursts run back to back, E = t0 + ceil(X /
//    bytes_per_cycle), and the job takes max(C, ceil(X / bytes_per_cycle) + latency)
//    cycles: exactly the separate path's numbers.
//  - "separate": a channel of the engine's own that nothing else uses: memory stall =
//    max(0, ceil(X / bytes_per_cycle) + latency - C), known when the job starts (the
//    model before issue 12, for comparison with SCALE-Sim).
//
// Params: GemmEngineParams (arch/gemm_math.h, beside the rules that use them): rows,
// cols, dataflow, sram_kib, input_bits, output_bits, dram_path; DramParams:
// bytes_per_cycle, latency_cycles, burst_bytes.
// Stats: busy = compute cycles; stall = memory stall cycles plus cycles blocked on a
// full `done` FIFO (memory_stall_cycles() gives the memory part alone). On the shared
// path the engine's bursts are `dram` busy (the channel counts them); the engine's waits
// behind other units' transfers are not `dram` stall (as for the DMA's bursts, they delay
// its data: they show as gemm_engine memory stall when they push E + latency past the
// compute); a write-back that waits behind an engine burst is `dram` stall as usual.
// Counters: macs (M*N*K per job). SRAM and DRAM bits it moves are separate getters, for
// the sram and dram modules' counters.
#include "arch/dram.h"
#include "arch/gemm_math.h"
#include "arch/stage.h"
#include "core/activity.h"

#include <systemc>

#include <cstdint>
#include <ostream>
#include <string>

namespace attnsim {

struct GemmJob {
  std::string name;  // "L0.qkv", "L3.ffn1", "L0.qkv.h2", ...: names the job in errors
  uint64_t m = 0, n = 0, k = 0;
  bool operator==(const GemmJob& o) const { return name == o.name && m == o.m && n == o.n && k == o.k; }
};

inline std::ostream& operator<<(std::ostream& os, const GemmJob& j) {
  return os << j.name << " (M=" << j.m << " N=" << j.n << " K=" << j.k << ")";
}

class GemmEngine : public Stage<GemmJob> {
 public:
  // `dram`: the shared channel (used when p.dram_path is "shared"; with "separate" only
  // its parameters are).
  GemmEngine(sc_core::sc_module_name name, const GemmEngineParams& p, DramChannel& dram);

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
  bool shared() const { return p_.dram_path == gemm::DramPath::shared; }
  // The memory port (shared path): moves a job's bytes burst by burst through the channel.
  void port();

  GemmEngineParams p_;
  DramChannel& dram_;
  gemm::GemmTiming current_;  // the job being worked on
  // The port's current job: set by begin(), cleared by the port when its last burst ends.
  uint64_t port_bytes_ = 0;
  TraceTag port_tag_;
  bool port_traced_ = false, port_busy_ = false;
  Cycles data_done_{0};  // end of the job's last burst + dram.latency_cycles
  sc_core::sc_event port_start_, port_done_;
  uint64_t memory_stall_ = 0, macs_ = 0, jobs_ = 0;
  uint64_t sram_read_bits_ = 0, sram_write_bits_ = 0, dram_read_bits_ = 0, dram_write_bits_ = 0;
};

}  // namespace attnsim

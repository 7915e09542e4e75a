#include "arch/gemm_engine.h"

#include <stdexcept>

namespace attnsim {

GemmEngine::GemmEngine(sc_core::sc_module_name name, const GemmEngineParams& p, const DramParams& dram)
    : Stage(name, TraceUnit::gemm_engine, Cycles(0), "stall: done FIFO full"), p_(p), dram_(dram) {}

gemm::GemmTiming GemmEngine::time_job(const GemmJob& job) const {
  try {
    return gemm::gemm_timing({job.m, job.n, job.k}, p_, dram_);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("gemm job '" + job.name + "': " + e.what());
  }
}

StageWork GemmEngine::begin(GemmJob& job) {
  current_ = time_job(job);
  return {Cycles(current_.compute_cycles), job.name, {gemm_job_layer(job.name), -1, -1}};
}

// The overlapped operand traffic's excess follows the compute as a memory stall.
void GemmEngine::end(GemmJob&, const StageWork& work, bool traced) {
  const gemm::GemmTiming& t = current_;
  if (traced)
    tracer()->interval(TraceUnit::gemm_engine, kStall, now_cycles(), now_cycles() + Cycles(t.stall_cycles),
                       "stall: DRAM traffic", work.tag);
  wait_cycles(Cycles(t.stall_cycles));
  add_stall(Cycles(t.stall_cycles));
  memory_stall_ += t.stall_cycles;
  macs_ += t.macs;
  sram_read_bits_ += t.traffic.sram_read_bits;
  sram_write_bits_ += t.traffic.sram_write_bits;
  dram_read_bits_ += 8 * t.traffic.dram_read_bytes;
  dram_write_bits_ += 8 * t.traffic.dram_write_bytes;
  ++jobs_;
}

ModuleActivity GemmEngine::activity() const {
  return {"gemm_engine", busy_cycles(), stall_cycles(), {{"macs", macs_}}};
}

}  // namespace attnsim

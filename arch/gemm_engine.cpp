#include "arch/gemm_engine.h"

#include "arch/kernel_time.h"

#include <stdexcept>

namespace attnsim {

GemmEngine::GemmEngine(sc_core::sc_module_name name, const GemmEngineParams& p, const DramParams& dram)
    : sc_module(name), p_(p), dram_(dram) {
  gemm::parse_dataflow(p_.dataflow);  // fail at construction, not mid-simulation
  SC_HAS_PROCESS(GemmEngine);
  SC_THREAD(run);
}

gemm::GemmTiming GemmEngine::time_job(const GemmJob& job) const {
  try {
    return gemm::gemm_timing({job.m, job.n, job.k}, p_, dram_);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("gemm job '" + job.name + "': " + e.what());
  }
}

void GemmEngine::run() {
  while (true) {
    const GemmJob job = job_in->read();
    const gemm::GemmTiming t = time_job(job);
    // Compute and the overlapped traffic's excess, back to back.
    wait_cycles(Cycles(t.compute_cycles + t.stall_cycles));
    busy_ += t.compute_cycles;
    stall_ += t.stall_cycles;
    memory_stall_ += t.stall_cycles;
    macs_ += t.macs;
    sram_read_bits_ += t.traffic.sram_read_bits;
    sram_write_bits_ += t.traffic.sram_write_bits;
    dram_read_bits_ += 8 * t.traffic.dram_read_bytes;
    dram_write_bits_ += 8 * t.traffic.dram_write_bytes;
    ++jobs_;
    const Cycles before = now_cycles();
    done->write(job);
    stall_ += (now_cycles() - before).count();  // back-pressure from the consumer
  }
}

ModuleActivity GemmEngine::activity() const { return {"gemm_engine", busy_, stall_, {{"macs", macs_}}}; }

}  // namespace attnsim

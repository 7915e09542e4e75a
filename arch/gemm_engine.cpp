#include "arch/gemm_engine.h"

#include "arch/activity_trace.h"
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
    const int layer = trace_ ? gemm_job_layer(job.name) : -1;
    const bool traced = trace_ && (layer < 0 || trace_->layer_in_window(layer));
    if (traced) {
      const Cycles now = now_cycles(), compute_end = now + Cycles(t.compute_cycles);
      trace_->interval(TraceUnit::gemm_engine, kBusy, now, compute_end, job.name, {layer, -1, -1});
      trace_->interval(TraceUnit::gemm_engine, kStall, compute_end, compute_end + Cycles(t.stall_cycles),
                       "stall: DRAM traffic", {layer, -1, -1});
    }
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
    if (traced) trace_->open(TraceUnit::gemm_engine, kStall, "stall: done FIFO full", {layer, -1, -1});
    const Cycles before = now_cycles();
    done->write(job);
    stall_ += (now_cycles() - before).count();  // back-pressure from the consumer
    if (traced) trace_->close(TraceUnit::gemm_engine);
  }
}

ModuleActivity GemmEngine::activity() const { return {"gemm_engine", busy_, stall_, {{"macs", macs_}}}; }

}  // namespace attnsim

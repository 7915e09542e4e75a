#include "arch/gemm_engine.h"

#include "arch/sc_threads.h"

#include <algorithm>
#include <stdexcept>

namespace attnsim {

GemmEngine::GemmEngine(sc_core::sc_module_name name, const GemmEngineParams& p, DramChannel& dram)
    : Stage(name, TraceUnit::gemm_engine, Cycles(0), "stall: done FIFO full"), p_(p), dram_(dram) {
  if (shared()) {
    SC_HAS_PROCESS(GemmEngine);
    SC_THREAD(port);
  }
}

gemm::GemmTiming GemmEngine::time_job(const GemmJob& job) const {
  try {
    return gemm::gemm_timing({job.m, job.n, job.k}, p_, dram_.params());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("gemm job '" + job.name + "': " + e.what());
  }
}

StageWork GemmEngine::begin(GemmJob& job) {
  current_ = time_job(job);
  StageWork work{Cycles(current_.compute_cycles), job.name, {gemm_job_layer(job.name), -1, -1}};
  if (shared()) {
    // The memory port starts on the job's traffic as the compute starts (double buffering).
    port_bytes_ = current_.traffic.dram_read_bytes + current_.traffic.dram_write_bytes;
    port_tag_ = work.tag;
    port_traced_ = tracer() && tracer()->covers(work.tag);
    port_busy_ = true;
    port_start_.notify(sc_core::SC_ZERO_TIME);
  }
  return work;
}

// Shared path: the job's bytes, burst by burst, each requested when the previous one ends
// (first come first served with the other units' requests).
void GemmEngine::port() {
  run_thread_body([this] {
    const uint64_t burst = gemm::burst_bytes(dram_.params());
    while (true) {
      sc_core::wait(port_start_);
      Cycles last_end = now_cycles();
      for (uint64_t remaining = port_bytes_; remaining > 0;) {
        const uint64_t bytes = std::min(burst, remaining);
        const DramChannel::Transfer t = dram_.reserve(now_cycles(), bytes);
        if (port_traced_) tracer()->interval(TraceUnit::dram, kBusy, t.start, t.end, "GEMM operands and results", port_tag_);
        wait_until(t.end);
        last_end = t.end;
        remaining -= bytes;
      }
      data_done_ = last_end + dram_.latency();
      port_busy_ = false;
      port_done_.notify(sc_core::SC_ZERO_TIME);
    }
  });
}

// What is left of the (overlapped) operand traffic when the compute ends follows it as a
// memory stall.
void GemmEngine::end(GemmJob&, const StageWork& work, bool traced) {
  const gemm::GemmTiming& t = current_;
  const Cycles compute_end = now_cycles();
  Cycles stall(t.stall_cycles);  // separate path: known from the start
  if (shared()) {
    // Until the port's last burst has ended and its data arrived.
    if (traced) tracer()->open(trace_unit(), kStall, "stall: DRAM traffic", work.tag);
    while (port_busy_) sc_core::wait(port_done_);
    stall = data_done_ > compute_end ? data_done_ - compute_end : Cycles(0);
    wait_until(compute_end + stall);
    if (traced) tracer()->close(trace_unit());
  } else {
    if (traced)
      tracer()->interval(trace_unit(), kStall, compute_end, compute_end + stall, "stall: DRAM traffic", work.tag);
    wait_cycles(stall);
  }
  add_stall(stall);
  memory_stall_ += stall.count();
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

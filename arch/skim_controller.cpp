#include "arch/skim_controller.h"

#include "arch/activity_trace.h"
#include "arch/kernel_time.h"

namespace attnsim {

SkimController::SkimController(sc_core::sc_module_name name, const SkimControllerParams& p,
                               int hidden_bits, DramChannel& dram)
    : sc_module(name), p_(p), hidden_bits_(hidden_bits), dram_(dram) {
  SC_HAS_PROCESS(SkimController);
  SC_THREAD(run);
}

void SkimController::run() {
  const uint64_t mpc = p_.macs_per_cycle, tpc = p_.tokens_per_cycle;
  while (true) {
    const SkimJob job = job_in->read();
    const Cycles busy(ceil_div(job.predictor_macs, mpc) + ceil_div(job.tokens_scanned, tpc) +
                      ceil_div(job.rank_ops, tpc) + ceil_div(job.pool_macs, mpc));
    const bool traced = trace_ && trace_->layer_in_window(job.layer);
    const TraceTag tag{job.layer, -1, -1};
    if (traced)
      trace_->interval(TraceUnit::skim_controller, kBusy, now_cycles(), now_cycles() + busy, "skim job", tag);
    wait_cycles(busy);
    busy_ += busy.count();
    macs_ += job.predictor_macs + job.pool_macs;
    token_ops_ += job.tokens_scanned + job.rank_ops + job.tokens_forwarded;
    score_adds_ += job.score_adds;
    const uint64_t bytes = ceil_div(job.tokens_forwarded * job.d_model * hidden_bits_, 8);
    if (bytes > 0) {
      dram_.count_write(bytes);
      const Cycles requested = now_cycles();
      const Cycles end = dram_.reserve(requested, bytes);
      const Cycles transfer(ceil_div(bytes, static_cast<uint64_t>(dram_.params().bytes_per_cycle)));
      stall_ += (end - requested - transfer).count();
      if (traced) {
        trace_->interval(TraceUnit::skim_controller, kStall, requested, end - transfer,
                         "stall: DRAM channel busy", tag);
        trace_->interval(TraceUnit::dram, kBusy, end - transfer, end, "forward hidden states", tag);
      }
      wait_until(end);
    }
    if (traced) trace_->open(TraceUnit::skim_controller, kStall, "stall: done FIFO full", tag);
    const Cycles before = now_cycles();
    done->write(job);
    stall_ += (now_cycles() - before).count();
    if (traced) trace_->close(TraceUnit::skim_controller);
  }
}

ModuleActivity SkimController::activity() const {
  return {"skim_controller", busy_, stall_,
          {{"macs", macs_}, {"token_ops", token_ops_}, {"score_adds", score_adds_}}};
}

}  // namespace attnsim

#include "arch/skim_controller.h"

namespace attnsim {

SkimController::SkimController(sc_core::sc_module_name name, const SkimControllerParams& p, int hidden_bits,
                               DramChannel& dram)
    : Stage(name, TraceUnit::skim_controller, Cycles(0), "stall: done FIFO full"),
      p_(p),
      hidden_bits_(hidden_bits),
      dram_(dram) {}

StageWork SkimController::begin(SkimJob& job) {
  const uint64_t mpc = p_.macs_per_cycle, tpc = p_.tokens_per_cycle;
  const Cycles busy(ceil_div(job.predictor_macs, mpc) + ceil_div(job.tokens_scanned, tpc) +
                    ceil_div(job.rank_ops, tpc) + ceil_div(job.pool_macs, mpc));
  return {busy, "skim job", {job.layer, -1, -1}};
}

// Counts the job, then writes the newly skimmed tokens' hidden states to the forwarding
// buffer through the DRAM channel (waiting behind other transfers is stall).
void SkimController::end(SkimJob& job, const StageWork& work, bool traced) {
  macs_ += job.predictor_macs + job.pool_macs;
  token_ops_ += job.tokens_scanned + job.rank_ops + job.tokens_forwarded;
  score_adds_ += job.score_adds;
  const uint64_t bytes = ceil_div(job.tokens_forwarded * job.d_model * hidden_bits_, 8);
  if (bytes == 0) return;
  dram_.count_write(bytes);
  const Cycles requested = now_cycles();
  const DramChannel::Transfer t = dram_.reserve(requested, bytes);
  add_stall(t.start - requested);
  if (traced) {
    tracer()->interval(TraceUnit::skim_controller, kStall, requested, t.start, "stall: DRAM channel busy", work.tag);
    tracer()->interval(TraceUnit::dram, kBusy, t.start, t.end, "forward hidden states", work.tag);
  }
  wait_until(t.end);
}

ModuleActivity SkimController::activity() const {
  return {"skim_controller", busy_cycles(), stall_cycles(),
          {{"macs", macs_}, {"token_ops", token_ops_}, {"score_adds", score_adds_}}};
}

}  // namespace attnsim

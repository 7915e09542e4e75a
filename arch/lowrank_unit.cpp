#include "arch/lowrank_unit.h"

#include "arch/candidates.h"
#include "core/cycles.h"

#include <algorithm>
#include <stdexcept>

namespace attnsim {

namespace {

// Busy cycles of work on a pipeline of `macs` MACs and `exps` exponentials per cycle: the
// two run side by side.
Cycles pipeline_busy(uint64_t macs, uint64_t exps, const LowRankParams& p) {
  return Cycles(std::max(ceil_div(macs, p.macs_per_cycle), ceil_div(exps, p.exps_per_cycle)));
}

}  // namespace

LowRankHead::LowRankHead(const LowRankParams& p, const HeadWork& w)
    : w_(w.layer->performer.empty()
             ? lowrank::gaussian_features(*p.features / 2, w.d(), static_cast<uint64_t>(p.seed), w.layer_index(), w.head)
             : w.layer->performer.at(w.head)),
      summary_(w_, w.k_deq.data(), w.v_deq.data(), w.m(), w.d()),
      causal_(w.layer->causal) {
  if (2 * w_.rows != *p.features)
    throw std::logic_error("Performer matrix of " + std::to_string(w_.rows) + " rows where the plan says m = " +
                           std::to_string(*p.features));
  const uint64_t m = 2 * static_cast<uint64_t>(w_.rows), d = w.d();
  per_key_macs_ = (m / 2) * d + d + m * d + m;
  if (!causal_) {
    key_macs_ = static_cast<uint64_t>(w.m()) * per_key_macs_;
    key_exps_ = static_cast<uint64_t>(w.m()) * m;
  }
}

void LowRankHead::Rows::combine(const HeadWork& w, RowData& row, RowOutcome& out) {
  const int d = w.d(), m = h_.summary_.features();
  log_phi_q_.resize(m);
  lowrank::log_features(h_.w_, w.q_deq.data() + static_cast<size_t>(row.row) * d, d, log_phi_q_.data());
  scores_.resize(row.survivor_scores.size());
  for (size_t x = 0; x < scores_.size(); ++x) scores_[x] = static_cast<double>(row.survivor_scores[x]) * w.score_scale;
  const lowrank::KeySums* sums = &h_.summary_.all();
  if (h_.causal_) {
    prefix_.advance_to(visible_key_count(row.row, w.m(), true) - 1);
    sums = &prefix_.sums();
  }
  row.out.resize(d);
  lowrank::combine(h_.summary_, log_phi_q_.data(), row.survivor_ids, scores_, *sums, row.out.data());
  row.plain_output = false;
  const uint64_t um = m, ud = d, kept = row.survivor_ids.size();
  out.lowrank_macs = (um / 2) * ud + ud + um * ud + um + kept * (um + ud) + (h_.causal_ ? h_.per_key_macs_ : 0);
  out.lowrank_exps = um + (h_.causal_ ? um : 0);
}

LowRankKeySide::LowRankKeySide(sc_core::sc_module_name name, const LowRankParams& p)
    : Stage(name, TraceUnit::lowrank_unit, Cycles(0), "stall: head queue full"), p_(p) {}

StageWork LowRankKeySide::begin(std::shared_ptr<HeadWork>& head) {
  return {pipeline_busy(head->lowrank_head_macs, head->lowrank_head_exps, p_), "key summary",
          {head->layer_index(), head->head, -1}};
}

void LowRankKeySide::end(std::shared_ptr<HeadWork>& head, const StageWork&, bool) {
  macs_ += head->lowrank_head_macs;
  exps_ += head->lowrank_head_exps;
}

LowRankQuerySide::LowRankQuerySide(sc_core::sc_module_name name, const LowRankParams& p)
    : Stage(name, TraceUnit::lowrank_unit, Cycles(static_cast<uint64_t>(p.latency_cycles)), "stall: output FIFO full"),
      p_(p) {}

StageWork LowRankQuerySide::begin(RowToken& row) {
  const RowOutcome& o = row.outcome();
  return {pipeline_busy(o.lowrank_macs, o.lowrank_exps, p_), "row", {row.head->layer_index(), row.head->head, row.row}};
}

void LowRankQuerySide::end(RowToken& row, const StageWork&, bool) {
  macs_ += row.outcome().lowrank_macs;
  exps_ += row.outcome().lowrank_exps;
  divides_ += static_cast<uint64_t>(row.head->d());
}

ModuleActivity lowrank_activity(const LowRankKeySide& keys, const LowRankQuerySide& queries) {
  return {"lowrank_unit", keys.busy_cycles() + queries.busy_cycles(), keys.stall_cycles() + queries.stall_cycles(),
          {{"macs", keys.macs() + queries.macs()}, {"exps", keys.exps() + queries.exps()}, {"divides", queries.divides()}}};
}

}  // namespace attnsim

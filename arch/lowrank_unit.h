#pragma once
// lowrank_unit: Scatterbrain's low-rank part (Performer positive random features) and the
// combination with the sparse part (Chen et al., NeurIPS 2021); SEMANTICS §5 is the
// contract, docs/candidates.md states every rule, arch/lowrank_math.h the arithmetic.
//
// What it does (`lowrank_unit.enabled`): with W [m/2, d] (from the trace, or seeded
// Gaussian; loaded with the head by the DMA), it keeps per head the key-value summary
// sum_j phi(k_j) v_j^T and sum_j phi(k_j) (causal: a running prefix over keys 0..i), and
// per query row replaces the softmax-normalized output of the survivors K_i by
//   o_i = (sum_{j in K_i} (e_ij - phi_i.phi_j) v_j + phi_i . sum_j phi_j v_j^T)
//       / (sum_{j in K_i} (e_ij - phi_i.phi_j) + phi_i . sum_j phi_j)
// with e_ij the survivors' exponentials the softmax unit produced and the sums over every
// key the query may see: filtered keys and keys outside C_i fall back to the low-rank
// estimate, and with candidates "all" and dense scoring o_i is exact attention. With
// `candidates.source = "none"` C_i is empty and o_i is pure Performer attention.
//
// Two pipelines, each `macs_per_cycle` MACs and `exps_per_cycle` exponential units:
//  - key side, per head, between the DMA (or the candidate unit) and the QK unit (it works
//    on the next head while the QK unit scores this one): the keys' features and the
//    summary, busy max(ceil(M a / macs_per_cycle), ceil(M m / exps_per_cycle)) with
//    a = (m/2) d + d + m d + m MACs per key (projections, |k'|^2, phi v^T, phi);
//    causal heads do this work row by row on the query side instead (the prefix);
//  - query side, per row, between the AV unit and the write-back: busy
//    max(ceil(macs / macs_per_cycle), ceil(exps / exps_per_cycle)), macs = (m/2) d + d
//    (phi_i) + m d + m (phi_i against the summary) + |K_i| (m + d) (each survivor's
//    phi_i.phi_j and its correction of the output), exps = m; causal rows add key i's a
//    MACs and m exps; output ready latency_cycles later.
// Stall: blocked on a full output (either pipeline).
//
// Params: LowRankParams below. Counters: macs, exps, divides (d per row: the shared
// normalizer). Module busy and stall are the two pipelines' summed (so busy can exceed the
// run's cycles when both work at once).
#include "arch/lowrank_math.h"
#include "arch/pipeline.h"
#include "arch/stage.h"
#include "core/activity.h"
#include "core/params.h"

#include <systemc>

#include <memory>
#include <optional>

namespace attnsim {

struct LowRankParams {
  bool enabled;
  std::optional<int> features;  // m; absent: twice the rows of the trace's matrices, else kDefaultFeatures
  int macs_per_cycle;
  int exps_per_cycle;
  int latency_cycles;
  int seed;  // for the feature matrices drawn when the trace has none

  static constexpr int kDefaultFeatures = 64;  // SEMANTICS §6

  static const ParamTable<LowRankParams>& table() {
    static const ParamTable<LowRankParams> t{
        "lowrank_unit", "Scatterbrain low-rank unit (Performer features) and the sparse + low-rank combination.",
        {field(&LowRankParams::enabled, "enabled", false).doc("Combine the survivors with the low-rank estimate of every other key."),
         field(&LowRankParams::features, "features", json())
             .doc("m: random features (even); absent: twice the rows of the trace's performer matrices, else 64. With matrices in the trace it must equal 2 x their rows.")
             .min(2)
             .max(65536),
         field(&LowRankParams::macs_per_cycle, "macs_per_cycle", 512)
             .unit("MACs/cycle").doc("MACs of each pipeline (key side, query side).").min(1).max(plausible::kPerCycle),
         field(&LowRankParams::exps_per_cycle, "exps_per_cycle", 16)
             .unit("exps/cycle").doc("Exponentials of each pipeline per cycle.").min(1).max(plausible::kPerCycle),
         field(&LowRankParams::latency_cycles, "latency_cycles", 4)
             .unit("cycles").doc("Query side: pipeline latency from a row's last MAC to its output.").min(0).max(plausible::kLatencyCycles),
         field(&LowRankParams::seed, "seed", 1).doc("Seed of the feature matrices drawn when the trace has none.").min(0)}};
    return t;
  }
};

// The functional part of one head: features, summary, and the row combination.
class LowRankHead {
 public:
  LowRankHead(const LowRankParams& p, const HeadWork& w);

  // Per thread, for rows in increasing order: the running prefix of causal heads.
  class Rows {
   public:
    explicit Rows(const LowRankHead& h) : h_(h), prefix_(h.summary_) {}
    // Replaces row.out by the combination and records the row's work in `out`.
    void combine(const HeadWork& w, RowData& row, RowOutcome& out);

   private:
    const LowRankHead& h_;
    lowrank::KeyPrefix prefix_;
    std::vector<double> log_phi_q_, scores_;
  };

  uint64_t key_side_macs() const { return key_macs_; }
  uint64_t key_side_exps() const { return key_exps_; }
  uint64_t param_bytes() const { return static_cast<uint64_t>(w_.rows) * w_.cols * 4; }

 private:
  Matrix w_;
  lowrank::HeadSummary summary_;
  bool causal_;
  uint64_t per_key_macs_, key_macs_ = 0, key_exps_ = 0;
};

class LowRankModel {
 public:
  explicit LowRankModel(const LowRankParams& p) : p_(p) {}
  // `head`'s dequantized K and V (HeadWork::k_deq, v_deq) must be set.
  std::unique_ptr<LowRankHead> for_head(const HeadWork& head) const { return std::make_unique<LowRankHead>(p_, head); }
  const LowRankParams& params() const { return p_; }

 private:
  LowRankParams p_;
};

// Its two pipelines; busy and stall are summed into one module, "lowrank_unit".
class LowRankKeySide : public Stage<std::shared_ptr<HeadWork>> {
 public:
  LowRankKeySide(sc_core::sc_module_name name, const LowRankParams& p);
  uint64_t macs() const { return macs_; }
  uint64_t exps() const { return exps_; }

 private:
  StageWork begin(std::shared_ptr<HeadWork>& head) override;
  void end(std::shared_ptr<HeadWork>& head, const StageWork& work, bool traced) override;
  LowRankParams p_;
  uint64_t macs_ = 0, exps_ = 0;
};

class LowRankQuerySide : public Stage<RowToken> {
 public:
  LowRankQuerySide(sc_core::sc_module_name name, const LowRankParams& p);
  uint64_t macs() const { return macs_; }
  uint64_t exps() const { return exps_; }
  uint64_t divides() const { return divides_; }

 private:
  StageWork begin(RowToken& row) override;
  void end(RowToken& row, const StageWork& work, bool traced) override;
  LowRankParams p_;
  uint64_t macs_ = 0, exps_ = 0, divides_ = 0;
};

// "lowrank_unit": both pipelines' busy, stall and counts summed.
ModuleActivity lowrank_activity(const LowRankKeySide& keys, const LowRankQuerySide& queries);

}  // namespace attnsim

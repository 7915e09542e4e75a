#include "arch/lsh_unit.h"

#include "arch/lsh_math.h"
#include "core/cycles.h"

#include <stdexcept>

namespace attnsim {

namespace {

class LshHeadCandidates : public CostedHeadCandidates {
 public:
  LshHeadCandidates(const LshUnitParams& p, const HeadWork& w) {
    const LayerContext& ctx = *w.layer;
    const int d = w.d(), rounds = *p.rounds;
    const Matrix directions = ctx.lsh_directions.empty()
                                  ? lsh::gaussian_directions(rounds, d, static_cast<uint64_t>(p.seed), w.layer_index(), w.head)
                                  : ctx.lsh_directions.at(w.head);
    if (directions.rows != rounds)
      throw std::logic_error(std::to_string(directions.rows) + " LSH directions where the plan says " +
                             std::to_string(rounds));
    clusters_ = lsh::hash_head(w.q_deq.data(), w.n(), w.k_deq.data(), w.m(), d, directions, p.cluster_size,
                               ctx.causal);
    cost(p, w);
  }

  // Merged when the row is scored (rows in parallel): the union's cost is costed per head.
  void row(int i, std::vector<int32_t>& out) const override { clusters_.candidates(i, out); }
  uint64_t param_bytes() const override { return direction_words_ * 4; }

 private:
  void cost(const LshUnitParams& p, const HeadWork& w) {
    const uint64_t n = w.n(), m = w.m(), d = w.d(), rounds = *p.rounds, width = p.sorter_width;
    const uint64_t macs = rounds * (n + m) * d;
    uint64_t sort = 0, sort_ops = 0;
    const auto sorted = [&](uint64_t items) {
      const uint64_t c = lsh::sort_cycles(items, width);
      sort += c;
      sort_ops += c == 0 ? 0 : items * (c / ceil_div(items, width));  // elements x passes
    };
    for (uint64_t r = 0; r < rounds; ++r) {
      sorted(n);
      sorted(m);
      for (const auto& cluster : clusters_.members[r]) sorted(cluster.size());
    }
    uint64_t merge = 0, merge_ops = 0;
    for (int i = 0; i < w.n(); ++i) {
      const uint64_t u = clusters_.merged(i);
      merge += ceil_div(u, width), merge_ops += u;
    }
    cycles_ = ceil_div(macs, p.macs_per_cycle) + sort + merge;
    direction_words_ = rounds * d;
    counts_ = {{"projection_macs", macs}, {"sort_ops", sort_ops}, {"merge_ops", merge_ops},
               {"direction_writes", direction_words_}};
  }

  lsh::HeadClusters clusters_;
  uint64_t direction_words_ = 0;
};

class LshGenerator : public CandidateGenerator {
 public:
  explicit LshGenerator(const LshUnitParams& p) : p_(p) {
    if (!p_.rounds) throw std::logic_error("LSH generator built without a resolved lsh_unit.rounds");
  }
  std::string name() const override { return "lsh"; }
  std::string unit() const override { return "lsh_unit"; }
  ModuleActivity activity_template() const override {
    return {"lsh_unit", 0, 0, {{"projection_macs", 0}, {"sort_ops", 0}, {"merge_ops", 0}, {"direction_writes", 0}}};
  }
  bool uses_dequantized_rows() const override { return true; }
  std::unique_ptr<HeadCandidates> for_head(const HeadWork& head) const override {
    return std::make_unique<LshHeadCandidates>(p_, head);
  }

 private:
  LshUnitParams p_;
};

}  // namespace

std::unique_ptr<CandidateGenerator> make_lsh_generator(const json& resolved_config) {
  return std::make_unique<LshGenerator>(LshUnitParams::table().from(resolved_config.at("lsh_unit")));
}

}  // namespace attnsim

#include "arch/tree_engine.h"

#include "arch/tree_math.h"
#include "core/cycles.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace attnsim {

namespace {

const double* row_of(const std::vector<double>& m, int r, int d) { return m.data() + static_cast<size_t>(r) * d; }

// TC: the outputs of every query, computed in row order (causal rows see the node sums of
// keys 0..i only, so keys and queries alternate).
struct TcResult {
  std::vector<double> out;         // n x d
  std::vector<int32_t> attended;   // nodes attended per query
};

TcResult tc_attention(const TreeParams& tree, const HeadWork& w, bool causal) {
  const int n = w.n(), m = w.m(), d = w.d(), D = tree.depth;
  const int nodes = (1 << (D + 1)) - 1;
  std::vector<std::vector<int>> key_path(m);
  for (int j = 0; j < m; ++j) tree::route(tree, row_of(w.k_deq, j, d), &key_path[j]);
  std::vector<double> ksum(static_cast<size_t>(nodes) * d, 0.0), vsum(ksum.size(), 0.0);
  std::vector<int64_t> count(nodes, 0);
  const auto add_key = [&](int j) {
    for (int node : key_path[j]) {
      ++count[node];
      for (int t = 0; t < d; ++t) {
        ksum[static_cast<size_t>(node) * d + t] += w.k_deq[static_cast<size_t>(j) * d + t];
        vsum[static_cast<size_t>(node) * d + t] += w.v_deq[static_cast<size_t>(j) * d + t];
      }
    }
  };
  if (!causal)
    for (int j = 0; j < m; ++j) add_key(j);
  TcResult r;
  r.out.assign(static_cast<size_t>(n) * d, 0.0);
  r.attended.assign(n, 0);
  const double inv_sqrt_d = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<int> path;
  std::vector<double> logits, kbar(d);
  std::vector<int> used;
  for (int i = 0; i < n; ++i) {
    if (causal && i < m) add_key(i);
    tree::route(tree, row_of(w.q_deq, i, d), &path);
    logits.clear();
    used.clear();
    for (int node : path) {
      if (count[node] == 0) continue;  // no key reached it
      double logit = 0;
      for (int t = 0; t < d; ++t) {
        kbar[t] = ksum[static_cast<size_t>(node) * d + t] / static_cast<double>(count[node]);
        logit += w.q_deq[static_cast<size_t>(i) * d + t] * kbar[t];
      }
      logits.push_back(logit * inv_sqrt_d);
      used.push_back(node);
    }
    r.attended[i] = static_cast<int32_t>(used.size());
    if (used.empty()) continue;
    const double top = *std::max_element(logits.begin(), logits.end());
    double total = 0;
    for (double& l : logits) total += (l = std::exp(l - top));
    double* out = r.out.data() + static_cast<size_t>(i) * d;
    for (size_t x = 0; x < used.size(); ++x) {
      const double p = logits[x] / total;
      const int node = used[x];
      for (int t = 0; t < d; ++t) out[t] += p * (vsum[static_cast<size_t>(node) * d + t] / static_cast<double>(count[node]));
    }
  }
  return r;
}

class TreeHeadCandidates : public CostedHeadCandidates {
 public:
  TreeHeadCandidates(const TreeEngineParams& p, const HeadWork& w) : p_(p), causal_(w.layer->causal), d_(w.d()) {
    const LayerContext& ctx = *w.layer;
    const int d = w.d(), depth = *p.depth;
    tree_ = ctx.trees.empty()
                ? tree::build_tree(w.k_deq.data(), w.m(), d, depth, static_cast<uint64_t>(p.seed), w.layer_index(), w.head)
                : ctx.trees.at(w.head);
    if (tree_.depth != depth)
      throw std::logic_error("tree of depth " + std::to_string(tree_.depth) + " where the plan says " +
                             std::to_string(depth));
    if (p.attention == TreeAttention::tc) {
      tc_ = tc_attention(tree_, w, causal_);
    } else {
      std::vector<int> leaf_of_key(w.m());
      for (int j = 0; j < w.m(); ++j) leaf_of_key[j] = tree::route(tree_, row_of(w.k_deq, j, d));
      buckets_ = tree::bucket_keys(leaf_of_key, 1 << depth);
      queries_ = &w.q_deq;  // routed when each row is scored (rows run in parallel)
    }
    cost(w);
  }

  void row(int i, std::vector<int32_t>& out) const override {
    out.clear();
    if (p_.attention == TreeAttention::tc) return;  // TC rows attend node aggregates, no key
    const int f = tree::route(tree_, row_of(*queries_, i, d_));
    const auto first = buckets_.ids.begin() + buckets_.start[f], last = buckets_.ids.begin() + buckets_.start[f + 1];
    out.assign(first, causal_ ? std::upper_bound(first, last, i) : last);
  }
  uint64_t param_bytes() const override { return node_words() * 4; }
  bool attends_aggregates() const override { return p_.attention == TreeAttention::tc; }
  int attend(int i, double* out) const override {
    std::copy(tc_.out.begin() + static_cast<size_t>(i) * d_, tc_.out.begin() + static_cast<size_t>(i + 1) * d_, out);
    return tc_.attended[i];
  }

 private:
  // The tree's parameters: 2^D - 1 nodes of d weights and a bias, one 32-bit word each.
  uint64_t node_words() const { return ((uint64_t{1} << tree_.depth) - 1) * (static_cast<uint64_t>(d_) + 1); }

  void cost(const HeadWork& w) {
    const uint64_t m = w.m(), n = w.n(), d = w.d(), D = tree_.depth, mpc = p_.macs_per_stage;
    counts_ = {{"split_macs", (m + n) * D * d},
               {"node_reads", (m + n) * D * (d + 1)},
               {"node_writes", node_words()}};
    if (p_.attention == TreeAttention::tf) {
      const uint64_t leaves = uint64_t{1} << D;
      cycles_ = tree::pipeline_cycles(m + n, ceil_div(d, mpc), static_cast<int>(D)) +
                tree::counting_sort_cycles(m, leaves, p_.sort_ops_per_cycle);
      counts_.push_back({"sort_ops", 2 * m + leaves});
      return;
    }
    const uint64_t tk = ceil_div(3 * d, mpc), tq = ceil_div(2 * d, mpc);
    cycles_ = m * tk + n * tq + D * std::max(tk, tq);
    uint64_t attended = 0;
    for (int32_t a : tc_.attended) attended += static_cast<uint64_t>(a);
    counts_.push_back({"accumulate_adds", m * (D + 1) * 2 * d});
    counts_.push_back({"score_macs", attended * d});
    counts_.push_back({"divides", 2 * attended});
    counts_.push_back({"node_sum_reads", attended * d});
  }

  TreeEngineParams p_;
  bool causal_;
  int d_;
  TreeParams tree_;
  tree::Buckets buckets_;
  const std::vector<double>* queries_ = nullptr;  // the head's dequantized Q (HeadWork::q_deq)
  TcResult tc_;
};

class TreeGenerator : public CandidateGenerator {
 public:
  explicit TreeGenerator(const TreeEngineParams& p) : p_(p) {
    if (!p_.depth) throw std::logic_error("tree generator built without a resolved tree_engine.depth");
  }
  std::string name() const override { return "tree"; }
  std::string unit() const override { return "tree_engine"; }
  ModuleActivity activity_template() const override {
    ModuleActivity a{"tree_engine", 0, 0, {{"split_macs", 0}, {"node_reads", 0}, {"node_writes", 0}}};
    if (p_.attention == TreeAttention::tf) {
      a.counters.push_back({"sort_ops", 0});
    } else {
      for (const char* c : {"accumulate_adds", "score_macs", "divides", "node_sum_reads"}) a.counters.push_back({c, 0});
    }
    return a;
  }
  bool uses_dequantized_rows() const override { return true; }
  std::unique_ptr<HeadCandidates> for_head(const HeadWork& head) const override {
    return std::make_unique<TreeHeadCandidates>(p_, head);
  }

 private:
  TreeEngineParams p_;
};

}  // namespace

std::unique_ptr<CandidateGenerator> make_tree_generator(const json& resolved_config) {
  return std::make_unique<TreeGenerator>(TreeEngineParams::table().from(resolved_config.at("tree_engine")));
}

}  // namespace attnsim

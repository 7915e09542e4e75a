#pragma once
// tree_engine: Treeformer's tree-lookup engine (Madaan et al., ICLR 2023), a candidate
// generator (arch/candidates.h, `candidates.source = "tree"`); SEMANTICS §5 is the
// contract, docs/candidates.md states every rule with examples.
//
// What it does, per head: its node buffer holds the tree of depth D (2^D - 1 split nodes
// w_n, b_n; from the trace, or built from the keys, arch/tree_math.h), loaded by the DMA
// with the head. The keys, then the queries (dequantized, float64), stream through a
// routing pipeline of D stages (stage s holds the nodes of level s; a vector leaves a
// stage for the left child iff w_n . x + b_n < 0).
//  - TF attention (`attention = "tf"`): the keys are bucketed by leaf with a counting sort
//    (histogram, prefix sum, scatter); C_i = the keys in query i's leaf (causal: j <= i),
//    which the QK unit then scores in its mode (dense, latte, early_term).
//  - TC attention (`"tc"`): as the keys stream, each stage (and a leaf stage) adds the key
//    and its value into the sums of the node it passes; a query then attends, with one
//    softmax, to the D + 1 nodes of its path, node n standing for the mean key and mean
//    value of the keys routed through it (causal: of keys j <= i; keys and queries then
//    alternate, key i before query i); nodes no key reached are skipped; logit =
//    q . kbar_n / sqrt(d). The stage that holds the node scores the query on the way
//    (q . ksum_n, divided by the node's count). The QK unit does nothing; the softmax unit
//    normalizes the path's logits and the AV unit weights the node value sums.
//
// Timing rule, per head, before the QK unit starts it (the DMA hands the head to this
// unit, which hands it on; it works on the next head while the QK unit scores this one):
//   TF: routing (M + N + D - 1) * t, t = ceil(d / macs_per_stage), then the counting sort
//       ceil(M / ops) + ceil(2^D / ops) + ceil(M / ops), ops = sort_ops_per_cycle;
//   TC: D + 1 stages, a key t_k = ceil(3d / macs_per_stage) cycles per stage (split and
//       the 2d adds into the node sums), a query t_q = ceil(2d / macs_per_stage) (split
//       and score): M t_k + N t_q + D max(t_k, t_q) (a proportionate flow shop).
// Stall: blocked on a full head queue.
//
// Params: TreeEngineParams below. Counters: split_macs ((M + N) D d), node_reads (words of
// node parameters, (M + N) D (d + 1)), node_writes (the tree loaded, (2^D - 1)(d + 1));
// TF: sort_ops (2M + 2^D); TC: accumulate_adds (M (D + 1) 2d), score_macs (per query and
// path node attended, d), divides (two per query and node attended: the score's and the
// value weight's division by the node count), node_sum_reads (the AV unit's reads of node
// value sums, d per node attended).
#include "arch/candidates.h"
#include "core/params.h"

#include <optional>
#include <string>

namespace attnsim {

enum class TreeAttention { tf, tc };

inline const Choices<TreeAttention>& tree_attentions() {
  static const Choices<TreeAttention> c{{"tf", TreeAttention::tf}, {"tc", TreeAttention::tc}};
  return c;
}

struct TreeEngineParams {
  std::optional<int> depth;  // D; absent: the trace's trees', else kDefaultDepth
  TreeAttention attention;
  int macs_per_stage;
  int sort_ops_per_cycle;
  int seed;  // for the trees the simulator builds when the trace has none

  static constexpr int kDefaultDepth = 4;  // SEMANTICS §6
  static constexpr int kMaxDepth = 20;

  static const ParamTable<TreeEngineParams>& table() {
    static const ParamTable<TreeEngineParams> t{
        "tree_engine", "Treeformer tree-lookup engine (candidates.source = \"tree\").",
        {field(&TreeEngineParams::depth, "depth", json())
             .doc("D: levels of split nodes; absent: the depth of the trace's trees, else 4. With trees in the trace it must equal theirs.")
             .min(1)
             .max(kMaxDepth),
         choice(&TreeEngineParams::attention, "attention", TreeAttention::tf, tree_attentions())
             .doc("tf: the QK unit scores the keys of the query's leaf; tc: the query attends to the mean keys and values of its path's nodes."),
         field(&TreeEngineParams::macs_per_stage, "macs_per_stage", 16)
             .unit("MACs/cycle")
             .doc("MACs of one routing stage: a d-wide split takes ceil(d / macs_per_stage) cycles.")
             .min(1).max(plausible::kPerCycle),
         field(&TreeEngineParams::sort_ops_per_cycle, "sort_ops_per_cycle", 8)
             .unit("ops/cycle")
             .doc("Counting-sort throughput (histogram increments, prefix-sum adds, scatter writes).")
             .min(1).max(plausible::kPerCycle),
         field(&TreeEngineParams::seed, "seed", 1).doc("Seed of the trees built when the trace has none.").min(0)}};
    return t;
  }
};

// The generator "tree" (registered in arch/candidates.cpp). `resolved_config` must hold
// tree_engine.depth (the run plan fills it from the trace when the config leaves it out).
std::unique_ptr<CandidateGenerator> make_tree_generator(const json& resolved_config);

}  // namespace attnsim

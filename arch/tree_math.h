#pragma once
// Pure functional and timing rules of the tree-lookup engine (Treeformer, SEMANTICS §5),
// no SystemC; arch/tree_engine.h is the unit, docs/candidates.md states every rule.
//
// A tree of depth D has 2^D - 1 split nodes in heap order (root 0, children 2n+1 and
// 2n+2); the leaves are 2^D - 1 .. 2^(D+1) - 2, numbered 0 .. 2^D - 1 here (leaf index =
// node - (2^D - 1)). Node n sends a vector x left iff w_n . x + b_n < 0. Vectors are the
// dequantized q and k rows, in float64.
#include "workloads/trace.h"

#include <cstdint>
#include <vector>

namespace attnsim::tree {

// w_n . x + b_n, the sum in index order (the same value wherever it is computed).
double split_value(const TreeParams& t, int node, const double* x);

// The leaf (0 .. 2^D - 1) x reaches; `path`, when given, receives the D + 1 nodes from the
// root to the leaf (heap numbering, the leaf as a heap node).
int route(const TreeParams& t, const double* x, std::vector<int>* path = nullptr);

// A tree of depth D built from the keys [m x d] when the trace has none: at each node the
// keys that reach it are split through the median of their projections on their principal
// direction (power iteration from a seeded Gaussian start, 4 steps on the centred keys;
// a node of more than 128 keys estimates it on every ceil(s/128)-th of them),
// b = -median, so with distinct projections a node sends floor(s/2) of its s keys left.
// A node reached by fewer than two keys, or by keys without spread, splits on the seeded
// start direction (normalized) through the median (0 with no key). Start directions are
// drawn depth first (a node, then its left subtree, then its right) from the stream
// (seed, layer, head) of core/random.h: the same keys and seed give the same tree.
TreeParams build_tree(const double* keys, int m, int d, int depth, uint64_t seed, int layer, int head);

// Keys grouped by leaf (a counting sort): keys of leaf f are ids[start[f] .. start[f+1]),
// ascending.
struct Buckets {
  std::vector<int32_t> start;  // 2^D + 1 offsets
  std::vector<int32_t> ids;    // m key ids
};
Buckets bucket_keys(const std::vector<int>& leaf_of_key, int leaves);

// ---- timing (arch/tree_engine.h) ----------------------------------------------------------

// A pipeline of `stages` identical stages, every stage spending t_v cycles on vector v
// (vectors in order): the last leaves after sum_v t_v + (stages - 1) * max_v t_v cycles
// (a proportionate flow shop). 0 vectors: 0.
uint64_t pipeline_cycles(const std::vector<uint64_t>& per_vector, int stages);
// The same when every vector takes t: (count + stages - 1) * t (0 for count 0).
uint64_t pipeline_cycles(uint64_t count, uint64_t t, int stages);

// Counting sort of m keys into `leaves` buckets at `ops` operations per cycle: histogram
// (m increments), prefix sum (leaves adds), scatter (m writes), one after another:
// ceil(m/ops) + ceil(leaves/ops) + ceil(m/ops).
uint64_t counting_sort_cycles(uint64_t m, uint64_t leaves, uint64_t ops);

}  // namespace attnsim::tree

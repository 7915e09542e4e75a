#pragma once
// Pure functional and timing rules of the LSH unit (Scatterbrain's sparse part,
// SEMANTICS §5), no SystemC; arch/lsh_unit.h is the unit, docs/candidates.md the rules.
//
// For each hash round r (direction u_r), the queries and the keys are projected on u_r
// (dequantized q and k, float64), each list is sorted by its projections (ties: lower
// index) and cut into clusters of c consecutive items; key j is a candidate of query i if
// in some round they sit in clusters of the same index (causal: j <= i).
#include "workloads/trace.h"

#include <cstdint>
#include <vector>

namespace attnsim::lsh {

// Seeded Gaussian directions [rounds, d] (stream (seed, layer, head) of core/random.h),
// used when the trace has none.
Matrix gaussian_directions(int rounds, int d, uint64_t seed, int layer, int head);

// The cluster index of each of `n` items of `rows` [n x d] on direction `u`:
// rank by (projection, index), then rank / c.
std::vector<int32_t> clusters_on(const double* rows, int n, int d, const double* u, int cluster_size);

// One head hashed: per round each query's cluster and each key cluster's members. The
// candidate lists are merged on demand, row by row (rows may be asked from several threads).
struct HeadClusters {
  std::vector<std::vector<int32_t>> query_cluster;           // [round][query]
  std::vector<std::vector<std::vector<int32_t>>> members;    // [round][cluster] -> key ids, ascending
  bool causal = false;
  // C_i: the merge of query i's R key clusters, duplicates dropped, j <= i when causal.
  void candidates(int i, std::vector<int32_t>& out) const;
  // u_i: the keys read from those clusters (duplicates and keys it may not see included).
  uint64_t merged(int i) const;
};
HeadClusters hash_head(const double* q, int n, const double* k, int m, int d, const Matrix& directions,
                       int cluster_size, bool causal);

// One head's candidate sets, all at once (hash_head, then every row).
struct HeadSets {
  std::vector<std::vector<int32_t>> candidates;  // per query: C_i ascending, visible keys only
  std::vector<uint64_t> merged;  // per query: keys read from its R key clusters (duplicates and
                                 // keys it may not see included): the union's work
  std::vector<std::vector<int32_t>> cluster_sizes;  // per round: size of each key cluster
};
HeadSets candidate_sets(const double* q, int n, const double* k, int m, int d, const Matrix& directions,
                        int cluster_size, bool causal);

// ---- timing (arch/lsh_unit.h) ----------------------------------------------------------

// A merge sorter that takes `width` elements per cycle per pass sorts n items in
// ceil(log2 n) passes: ceil(n / width) * ceil(log2 n) cycles (0 for n <= 1).
uint64_t sort_cycles(uint64_t n, uint64_t width);

}  // namespace attnsim::lsh

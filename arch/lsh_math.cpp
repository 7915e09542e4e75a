#include "arch/lsh_math.h"

#include "core/cycles.h"
#include "arch/seeded.h"

#include <algorithm>
#include <numeric>

namespace attnsim::lsh {

namespace {

constexpr uint64_t kDirectionPurpose = 0x6c73686469726563ULL;  // "lshdirec"

}  // namespace

Matrix gaussian_directions(int rounds, int d, uint64_t seed, int layer, int head) {
  return gaussian_matrix(rounds, d, seed, layer, head, kDirectionPurpose);
}

std::vector<int32_t> clusters_on(const double* rows, int n, int d, const double* u, int cluster_size) {
  std::vector<double> proj(n);
  for (int i = 0; i < n; ++i) proj[i] = dot_in_order(rows + static_cast<size_t>(i) * d, u, d);
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return proj[a] < proj[b]; });
  std::vector<int32_t> cluster(n);
  for (int rank = 0; rank < n; ++rank) cluster[order[rank]] = rank / cluster_size;
  return cluster;
}

HeadClusters hash_head(const double* q, int n, const double* k, int m, int d, const Matrix& directions,
                       int cluster_size, bool causal) {
  HeadClusters h;
  h.causal = causal;
  h.members.resize(directions.rows);
  h.query_cluster.resize(directions.rows);
  for (int r = 0; r < directions.rows; ++r) {
    h.query_cluster[r] = clusters_on(q, n, d, directions.row(r), cluster_size);
    const std::vector<int32_t> key_cluster = clusters_on(k, m, d, directions.row(r), cluster_size);
    h.members[r].assign((m + cluster_size - 1) / cluster_size, {});
    for (int j = 0; j < m; ++j) h.members[r][key_cluster[j]].push_back(j);  // ascending ids
  }
  return h;
}

void HeadClusters::candidates(int i, std::vector<int32_t>& out) const {
  out.clear();
  for (size_t r = 0; r < members.size(); ++r) {
    const int c = query_cluster[r][i];
    if (c >= static_cast<int>(members[r].size())) continue;  // N > M: no key cluster of that index
    const size_t before = out.size();
    out.insert(out.end(), members[r][c].begin(), members[r][c].end());  // ascending
    std::inplace_merge(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(before), out.end());
  }
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (causal) out.erase(std::upper_bound(out.begin(), out.end(), i), out.end());
}

uint64_t HeadClusters::merged(int i) const {
  uint64_t u = 0;
  for (size_t r = 0; r < members.size(); ++r) {
    const int c = query_cluster[r][i];
    if (c < static_cast<int>(members[r].size())) u += members[r][c].size();
  }
  return u;
}

HeadSets candidate_sets(const double* q, int n, const double* k, int m, int d, const Matrix& directions,
                        int cluster_size, bool causal) {
  const HeadClusters h = hash_head(q, n, k, m, d, directions, cluster_size, causal);
  HeadSets s;
  s.candidates.resize(n);
  for (int i = 0; i < n; ++i) {
    h.candidates(i, s.candidates[i]);
    s.merged.push_back(h.merged(i));
  }
  for (const auto& round : h.members) {
    s.cluster_sizes.emplace_back();
    for (const auto& c : round) s.cluster_sizes.back().push_back(static_cast<int32_t>(c.size()));
  }
  return s;
}

uint64_t sort_cycles(uint64_t n, uint64_t width) {
  if (n <= 1) return 0;
  uint64_t passes = 0;
  while ((uint64_t{1} << passes) < n) ++passes;  // ceil(log2 n)
  return ceil_div(n, width) * passes;
}

}  // namespace attnsim::lsh

// The LSH unit's pure rules (arch/lsh_math.h) on hand cases: clusters of sorted
// projections, the union over rounds, causality, the sort cycles, seeded directions.
#include "arch/lsh_math.h"

#include <catch2/catch.hpp>

#include <vector>

using namespace attnsim;

TEST_CASE("items are ranked by (projection, index) and cut into clusters of c") {
  // d = 1, direction 1: projections 5, -1, 3, -1, 0 -> order 1, 3 (tie: lower index first),
  // 4, 2, 0 -> ranks 4, 0, 3, 1, 2 -> clusters of 2: 2, 0, 1, 0, 1.
  const std::vector<double> rows = {5, -1, 3, -1, 0};
  const double u[1] = {1};
  CHECK(lsh::clusters_on(rows.data(), 5, 1, u, 2) == std::vector<int32_t>{2, 0, 1, 0, 1});
  CHECK(lsh::clusters_on(rows.data(), 5, 1, u, 10) == std::vector<int32_t>{0, 0, 0, 0, 0});
  const double down[1] = {-1};  // reversed: order 0, 2, 4, 1, 3 (the tie keeps index order)
  CHECK(lsh::clusters_on(rows.data(), 5, 1, down, 2) == std::vector<int32_t>{0, 1, 0, 2, 1});
}

TEST_CASE("a key is a candidate when it shares a cluster index with the query in some round") {
  // d = 1, N = M = 4, c = 2. Queries 4, 1, -2, 3; keys 10, -3, 2, 0.
  // Round 1 (direction 1): query clusters q2,q1 | q3,q0 -> q0 1, q1 0, q2 0, q3 1;
  //                        key clusters k1,k3 | k2,k0  -> k0 1, k1 0, k2 1, k3 0.
  // Round 2 (direction -1): queries q0,q3 | q1,q2 -> q0 0, q1 1, q2 1, q3 0;
  //                        keys k0,k2 | k3,k1      -> k0 0, k1 1, k2 0, k3 1.
  // Round 1 alone: q0 {0, 2}, q1 {1, 3}, q2 {1, 3}, q3 {0, 2}; round 2 gives the same sets.
  const std::vector<double> q = {4, 1, -2, 3}, k = {10, -3, 2, 0};
  Matrix one;
  one.rows = 1, one.cols = 1, one.values = {1};
  const lsh::HeadSets a = lsh::candidate_sets(q.data(), 4, k.data(), 4, 1, one, 2, false);
  CHECK(a.candidates == std::vector<std::vector<int32_t>>{{0, 2}, {1, 3}, {1, 3}, {0, 2}});
  CHECK(a.merged == std::vector<uint64_t>{2, 2, 2, 2});
  Matrix two;
  two.rows = 2, two.cols = 1, two.values = {1, -1};
  const lsh::HeadSets b = lsh::candidate_sets(q.data(), 4, k.data(), 4, 1, two, 2, false);
  // Each key collides in both rounds: listed once, but read twice by the merge.
  CHECK(b.candidates == a.candidates);
  CHECK(b.merged == std::vector<uint64_t>{4, 4, 4, 4});
  CHECK(b.cluster_sizes == std::vector<std::vector<int32_t>>{{2, 2}, {2, 2}});
  // Causal: query i keeps keys j <= i only.
  const lsh::HeadSets c = lsh::candidate_sets(q.data(), 4, k.data(), 4, 1, one, 2, true);
  CHECK(c.candidates == std::vector<std::vector<int32_t>>{{0}, {1}, {1}, {0, 2}});
}

TEST_CASE("with more queries than keys a query whose cluster has no key cluster gets none") {
  // N = 5, M = 2, c = 2: key clusters {0}; query cluster 2 (the largest query) has no keys.
  const std::vector<double> q = {1, 2, 3, 4, 5}, k = {0, 1};
  Matrix u;
  u.rows = 1, u.cols = 1, u.values = {1};
  const lsh::HeadSets s = lsh::candidate_sets(q.data(), 5, k.data(), 2, 1, u, 2, false);
  CHECK(s.candidates[0] == std::vector<int32_t>{0, 1});
  CHECK(s.candidates[4].empty());
}

TEST_CASE("the merge sorter takes ceil(n / w) x ceil(log2 n) cycles") {
  CHECK(lsh::sort_cycles(8, 4) == 2 * 3);
  CHECK(lsh::sort_cycles(5, 2) == 3 * 3);
  CHECK(lsh::sort_cycles(2, 8) == 1);
  CHECK(lsh::sort_cycles(1, 8) == 0);
  CHECK(lsh::sort_cycles(0, 8) == 0);
}

TEST_CASE("seeded directions are Gaussian, one stream per (seed, layer, head)") {
  const Matrix a = lsh::gaussian_directions(3, 16, 1, 0, 0);
  CHECK(a.rows == 3);
  CHECK(a.cols == 16);
  CHECK(lsh::gaussian_directions(3, 16, 1, 0, 0).values == a.values);  // deterministic
  CHECK(lsh::gaussian_directions(3, 16, 1, 0, 1).values != a.values);  // another head
  CHECK(lsh::gaussian_directions(3, 16, 2, 0, 0).values != a.values);  // another seed
  double mean = 0;
  const Matrix big = lsh::gaussian_directions(100, 100, 5, 2, 3);
  for (double x : big.values) mean += x;
  CHECK(std::abs(mean / big.values.size()) < 0.05);  // 10000 draws: sd of the mean 0.01
}

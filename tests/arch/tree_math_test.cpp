// The tree-lookup engine's pure rules (arch/tree_math.h) on hand cases: routing, the
// counting sort, the pipeline and sort cycles, and the trees built from the keys.
#include "arch/tree_math.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

using namespace attnsim;

namespace {

// Depth 2 over d = 2: the root splits on x0, both children on x1, all through 0:
// leaf 0 = (x0 < 0, x1 < 0), leaf 1 = (x0 < 0, x1 >= 0), leaf 2 = (x0 >= 0, x1 < 0), leaf 3.
TreeParams quadrants() {
  TreeParams t;
  t.depth = 2;
  t.w.rows = 3;
  t.w.cols = 2;
  t.w.values = {1, 0, 0, 1, 0, 1};
  t.b = {0, 0, 0};
  return t;
}

}  // namespace

TEST_CASE("a vector goes left at a node iff w . x + b < 0, down to its leaf") {
  const TreeParams t = quadrants();
  const double a[2] = {-1, -1}, b[2] = {-1, 2}, c[2] = {3, -1}, e[2] = {0, 0};
  CHECK(tree::route(t, a) == 0);
  CHECK(tree::route(t, b) == 1);
  CHECK(tree::route(t, c) == 2);
  CHECK(tree::route(t, e) == 3);  // 0 + 0 is not < 0: right, right
  std::vector<int> path;
  tree::route(t, c, &path);
  CHECK(path == std::vector<int>{0, 2, 5});  // root, right child, its left child (heap order)
  // A bias moves the hyperplane: x0 + (-5) < 0 sends (3, -1) left at the root.
  TreeParams shifted = t;
  shifted.b[0] = -5;
  CHECK(tree::route(shifted, c) == 0);
}

TEST_CASE("keys are bucketed by leaf with a counting sort, ascending within a leaf") {
  const tree::Buckets b = tree::bucket_keys({2, 0, 2, 1, 2}, 4);
  CHECK(b.start == std::vector<int32_t>{0, 1, 2, 5, 5});
  CHECK(b.ids == std::vector<int32_t>{1, 3, 0, 2, 4});
}

TEST_CASE("pipeline and counting-sort cycles") {
  // 8 vectors of 2 cycles per stage through 2 stages: the last leaves after (8 + 1) x 2.
  CHECK(tree::pipeline_cycles(8, 2, 2) == 18);
  CHECK(tree::pipeline_cycles(0, 2, 2) == 0);
  CHECK(tree::pipeline_cycles(1, 3, 4) == 12);  // one vector: 4 stages x 3
  // Proportionate flow shop: sum of the times plus (stages - 1) x the longest.
  CHECK(tree::pipeline_cycles(std::vector<uint64_t>{3, 1, 2}, 3) == 6 + 2 * 3);
  CHECK(tree::pipeline_cycles(std::vector<uint64_t>{}, 3) == 0);
  // 4 keys into 4 leaves at 2 ops per cycle: 2 (histogram) + 2 (prefix sum) + 2 (scatter).
  CHECK(tree::counting_sort_cycles(4, 4, 2) == 6);
  CHECK(tree::counting_sort_cycles(5, 16, 8) == 1 + 2 + 1);
}

TEST_CASE("a built tree splits every node's keys through their median: the leaves are balanced") {
  // 64 keys in d = 3 with distinct coordinates; depth 3 gives 8 leaves of 8 keys each.
  const int m = 64, d = 3;
  std::vector<double> keys(static_cast<size_t>(m) * d);
  for (int j = 0; j < m; ++j) {
    keys[j * d + 0] = (j * 37 % 64) - 31.5;
    keys[j * d + 1] = 0.25 * ((j * 11) % 17) - 2;
    keys[j * d + 2] = 0.01 * j;
  }
  const TreeParams t = tree::build_tree(keys.data(), m, d, 3, 7, 0, 1);
  CHECK(t.depth == 3);
  CHECK(t.w.rows == 7);
  std::vector<int> leaves(m);
  for (int j = 0; j < m; ++j) leaves[j] = tree::route(t, keys.data() + j * d);
  for (int f = 0; f < 8; ++f) CHECK(std::count(leaves.begin(), leaves.end(), f) == 8);
  // Deterministic: the same keys and seed give the same tree.
  const TreeParams again = tree::build_tree(keys.data(), m, d, 3, 7, 0, 1);
  CHECK(again.w.values == t.w.values);
  CHECK(again.b == t.b);
}

TEST_CASE("a node without keys still gets a split: its seeded direction through 0") {
  const double one_key[2] = {1, 2};
  const TreeParams t = tree::build_tree(one_key, 1, 2, 2, 3, 1, 0);
  // The root sees one key: it splits on its start direction through that key's projection,
  // which sends the key right (w . k + b = 0 is not < 0); the left child sees no key.
  CHECK(tree::route(t, one_key) >= 2);
  CHECK(t.b[1] == 0.0);
}

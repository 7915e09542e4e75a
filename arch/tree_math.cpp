#include "arch/tree_math.h"

#include "core/cycles.h"
#include "arch/seeded.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace attnsim::tree {

namespace {

constexpr uint64_t kBuildPurpose = 0x7472656562756c64ULL;  // "treebuld"
constexpr int kPowerSteps = 4;
constexpr size_t kPcaSample = 128;  // the direction is estimated on at most this many keys

// The same product with four partial sums (vectorizable): for the power iteration only,
// whose result needs no particular summation order (routing always uses dot_in_order()).
double dot4(const double* a, const double* b, int d) {
  double s[4] = {0, 0, 0, 0};
  int t = 0;
  for (; t + 4 <= d; t += 4)
    for (int u = 0; u < 4; ++u) s[u] += a[t + u] * b[t + u];
  for (; t < d; ++t) s[0] += a[t] * b[t];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

bool normalize(std::vector<double>& v) {
  const double n = std::sqrt(dot_in_order(v.data(), v.data(), static_cast<int>(v.size())));
  if (!(n > 0) || !std::isfinite(n)) return false;
  for (double& x : v) x /= n;
  return true;
}

// The principal direction of the keys `ids` (centred), by power iteration from `start`;
// `start` itself when the keys have no spread.
std::vector<double> principal_direction(const double* keys, int d, const std::vector<int32_t>& ids,
                                        const std::vector<double>& start) {
  std::vector<double> mean(d, 0.0);
  for (int32_t j : ids)
    for (int t = 0; t < d; ++t) mean[t] += keys[static_cast<size_t>(j) * d + t];
  for (double& x : mean) x /= static_cast<double>(ids.size());
  std::vector<double> centred(ids.size() * static_cast<size_t>(d));
  for (size_t x = 0; x < ids.size(); ++x)
    for (int t = 0; t < d; ++t) centred[x * d + t] = keys[static_cast<size_t>(ids[x]) * d + t] - mean[t];
  std::vector<double> v = start, next(d);
  for (int step = 0; step < kPowerSteps; ++step) {
    std::fill(next.begin(), next.end(), 0.0);
    for (size_t x = 0; x < ids.size(); ++x) {
      const double* row = centred.data() + x * d;
      const double c = dot4(row, v.data(), d);
      for (int t = 0; t < d; ++t) next[t] += c * row[t];
    }
    if (!normalize(next)) return start;
    v.swap(next);
  }
  return v;
}

void split_node(const double* keys, int d, int node, int depth_left, const std::vector<int32_t>& ids,
                TreeParams& t, Rng& rng) {
  if (depth_left == 0) return;
  std::vector<double> start(d);
  for (double& x : start) x = rng.normal();
  if (!normalize(start)) start.assign(d, 0.0), start[0] = 1.0;
  std::vector<int32_t> sample;  // every k-th key of the node, at most kPcaSample of them
  const size_t stride = std::max<size_t>(1, (ids.size() + kPcaSample - 1) / kPcaSample);
  for (size_t x = 0; x < ids.size(); x += stride) sample.push_back(ids[x]);
  const std::vector<double> w = sample.size() >= 2 ? principal_direction(keys, d, sample, start) : start;
  std::copy(w.begin(), w.end(), t.w.values.begin() + static_cast<size_t>(node) * d);
  t.b[node] = 0.0;  // set below through the median of the projections
  std::vector<double> proj;
  for (int32_t j : ids) proj.push_back(split_value(t, node, keys + static_cast<size_t>(j) * d));
  double median = 0.0;
  if (!proj.empty()) {
    std::vector<double> sorted = proj;
    std::sort(sorted.begin(), sorted.end());
    const size_t s = sorted.size();
    median = (sorted[(s - 1) / 2] + sorted[s / 2]) / 2;
  }
  t.b[node] = -median;
  std::vector<int32_t> left, right;
  for (size_t x = 0; x < ids.size(); ++x) (proj[x] + t.b[node] < 0 ? left : right).push_back(ids[x]);
  split_node(keys, d, 2 * node + 1, depth_left - 1, left, t, rng);
  split_node(keys, d, 2 * node + 2, depth_left - 1, right, t, rng);
}

}  // namespace

double split_value(const TreeParams& t, int node, const double* x) {
  return dot_in_order(t.w.row(node), x, t.w.cols) + t.b[node];
}

int route(const TreeParams& t, const double* x, std::vector<int>* path) {
  int node = 0;
  if (path) path->assign(1, 0);
  for (int level = 0; level < t.depth; ++level) {
    node = split_value(t, node, x) < 0 ? 2 * node + 1 : 2 * node + 2;
    if (path) path->push_back(node);
  }
  return node - ((1 << t.depth) - 1);
}

TreeParams build_tree(const double* keys, int m, int d, int depth, uint64_t seed, int layer, int head) {
  TreeParams t;
  t.depth = depth;
  const int nodes = (1 << depth) - 1;
  t.w.rows = nodes;
  t.w.cols = d;
  t.w.values.assign(static_cast<size_t>(nodes) * d, 0.0);
  t.b.assign(nodes, 0.0);
  std::vector<int32_t> all(m);
  std::iota(all.begin(), all.end(), 0);
  Rng rng = rng_stream(seed, layer, head, kBuildPurpose);
  split_node(keys, d, 0, depth, all, t, rng);
  return t;
}

Buckets bucket_keys(const std::vector<int>& leaf_of_key, int leaves) {
  Buckets b;
  b.start.assign(leaves + 1, 0);
  for (int f : leaf_of_key) ++b.start[f + 1];                     // histogram
  for (int f = 0; f < leaves; ++f) b.start[f + 1] += b.start[f];  // prefix sum
  b.ids.resize(leaf_of_key.size());
  std::vector<int32_t> next(b.start.begin(), b.start.end() - 1);
  for (size_t j = 0; j < leaf_of_key.size(); ++j) b.ids[next[leaf_of_key[j]]++] = static_cast<int32_t>(j);  // scatter
  return b;
}

uint64_t pipeline_cycles(const std::vector<uint64_t>& per_vector, int stages) {
  if (per_vector.empty()) return 0;
  uint64_t sum = 0, longest = 0;
  for (uint64_t t : per_vector) sum += t, longest = std::max(longest, t);
  return sum + static_cast<uint64_t>(stages - 1) * longest;
}

uint64_t pipeline_cycles(uint64_t count, uint64_t t, int stages) {
  return count == 0 ? 0 : (count + static_cast<uint64_t>(stages) - 1) * t;
}

uint64_t counting_sort_cycles(uint64_t m, uint64_t leaves, uint64_t ops) {
  return ceil_div(m, ops) + ceil_div(leaves, ops) + ceil_div(m, ops);
}

}  // namespace attnsim::tree
